"""Single sign-on through an OpenID Connect provider (mozilla-django-oidc), roles from a groups claim.

Accounts are found by the provider's ``sub`` claim (stable; an e-mail address can be reassigned),
never by e-mail. A first sign-in creates the account under the username claim, unless a local account
has that name already: then the sign-in is refused (an identity provider never takes over a local
account). Sessions are re-checked with the provider by mozilla-django-oidc's SessionRefresh
middleware every ``CONCORDANCE_OIDC_RECHECK_S`` seconds, so a leaver loses access within that time.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from audit import log as audit
from portal.accounts import directory
from portal.accounts.models import DirectorySource


def _granted(claims: dict[str, Any]) -> set[str]:
    groups = claims.get(settings.CONCORDANCE_OIDC_GROUPS_CLAIM) or []
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list):
        return set()
    return directory.roles_for(
        [str(group) for group in groups], settings.CONCORDANCE_OIDC_ROLE_GROUPS, case_insensitive=False
    )


class DirectoryOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, keyed by ``sub`` and syncing roles from the groups claim."""

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        """A sign-in needs a subject."""
        return isinstance(claims.get("sub"), str) and 0 < len(claims["sub"]) <= 255

    def filter_users_by_claims(self, claims: dict[str, Any]) -> QuerySet[User]:
        """The account linked to this subject (none before the first sign-in)."""
        return User.objects.filter(
            directory_identity__source=DirectorySource.OIDC, directory_identity__subject=claims["sub"]
        )

    def _context(self) -> audit.AuditContext:
        return audit.AuditContext.from_request(getattr(self, "request", None))

    def create_user(self, claims: dict[str, Any]) -> User:
        """A new account for a first sign-in, under the username claim (refused when it is taken)."""
        username = str(claims.get(settings.CONCORDANCE_OIDC_USERNAME_CLAIM) or claims["sub"])
        try:
            if len(username) > 150:  # refused, not cut: a cut name could be someone else's
                raise ValidationError("too long")
            UnicodeUsernameValidator()(username)
        except ValidationError as exc:
            raise SuspiciousOperation("the provider's username is not a valid username") from exc
        with transaction.atomic():
            if User.objects.filter(username__iexact=username).exists():
                raise SuspiciousOperation("a local account has this username")
            user = User(username=username, email=str(claims.get("email") or "")[:254])
            user.set_unusable_password()
            user.save()
            return self._signed_in(user, claims)

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        """A returning account: its roles follow the groups claim."""
        return self._signed_in(user, claims)

    def _signed_in(self, user: User, claims: dict[str, Any]) -> User:
        try:
            return directory.directory_signed_in(
                user,
                source=DirectorySource.OIDC,
                subject=claims["sub"],
                granted=_granted(claims),
                context=self._context(),
            )
        except directory.DirectoryRefusal as exc:
            raise SuspiciousOperation(str(exc)) from exc
