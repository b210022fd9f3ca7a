"""Accounts beyond Django's user: API tokens for integrations and links to a sign-in directory.

An :class:`ApiToken` keeps only the SHA-256 digest of its secret: the secret is shown once, when it is
issued, and a leaked database does not leak working credentials. The secret is 256 random bits, so a
fast hash is enough (no password-style stretching is needed against guessing).

A :class:`DirectoryIdentity` says that an account is managed by the hospital's directory (LDAP/Active
Directory or an OpenID Connect provider): its roles come from there and it loses access when the
directory disables it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ApiToken(models.Model):
    """A bearer secret for an integration (RIS, PACS, monitoring), issued and revoked in the portal.

    ``prefix`` is the secret's first characters, shown so that an admin can tell tokens apart; the
    secret itself is never stored. A revoked token stays as a record of what was issued.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="api_token_name_not_empty"),
            models.CheckConstraint(condition=Q(digest__regex=r"^[0-9a-f]{64}$"), name="api_token_digest_hex"),
        ]
        indexes = [models.Index(fields=["user", "revoked_at"])]

    def __str__(self) -> str:
        return f"API token {self.pk} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        """Not revoked (the account's own state is checked at authentication)."""
        return self.revoked_at is None


class DirectorySource(models.TextChoices):
    """Where a directory-managed account signs in."""

    LDAP = "ldap", "LDAP / Active Directory"
    OIDC = "oidc", "OpenID Connect"


class DirectoryIdentity(models.Model):
    """Links an account to its entry in the hospital's directory.

    ``subject`` is the entry's stable key: the LDAP username, or the OpenID Connect ``sub`` claim
    (never the e-mail address, which can be reassigned). ``disabled_by_directory`` records that the
    directory, not an admin, switched the account off, so that the directory may switch it on again.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="directory_identity"
    )
    source = models.CharField(max_length=8, choices=DirectorySource.choices)
    subject = models.CharField(max_length=255)
    disabled_by_directory = models.BooleanField(default=False)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "subject"], name="directory_identity_unique"),
            models.CheckConstraint(condition=~Q(subject=""), name="directory_identity_subject_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.source} identity of account {self.user_id}"
