"""Sign-in through LDAP / Active Directory (django-auth-ldap), with roles from directory groups.

Loaded only when ``CONCORDANCE_LDAP_SERVER_URI`` is set (see :mod:`portal.accounts.directory_config`):
python-ldap comes with the optional ``directory`` extra. Besides signing in, the backend answers
:meth:`DirectoryBackend.revalidate`, which :class:`portal.accounts.middleware.DirectoryRevalidationMiddleware`
calls on the requests of a directory session, so that someone disabled in (or removed from) the
directory loses access at their next request, not at their next sign-in.
"""

from __future__ import annotations

import contextvars
import enum
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.dispatch import receiver
from django_auth_ldap.backend import LDAPBackend, ldap_error

from audit import log as audit
from portal.accounts import directory
from portal.accounts.models import DirectorySource

# LDAP errors seen while one re-check runs (django-auth-ldap reports them by signal, not by raising).
_errors: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("ldap_errors", default=None)


@receiver(ldap_error, dispatch_uid="concordance-ldap-error")
def _note_error(sender: Any, context: str = "", **_: Any) -> None:
    seen = _errors.get()
    if seen is not None:
        seen.append(context)


class Verdict(enum.StrEnum):
    """What the directory says about a signed-in account now."""

    ACTIVE = "active"
    GONE = "gone"  # disabled or removed in the directory
    UNREACHABLE = "unreachable"  # no answer: the session ends (fail closed), the account stays on


def _granted(ldap_user: Any) -> set[str]:
    return directory.roles_for(ldap_user.group_dns, settings.CONCORDANCE_LDAP_ROLE_GROUPS)


class DirectoryBackend(LDAPBackend):
    """django-auth-ldap's backend, creating only directory-linked accounts and syncing their roles."""

    def get_or_build_user(self, username: str, ldap_user: Any) -> tuple[User, bool]:
        """The account for ``username``; refuses a local account of the same name (never taken over)."""
        user, built = super().get_or_build_user(username, ldap_user)
        if not built and not directory.identity_allows(user, source=DirectorySource.LDAP):
            raise ldap_user.AuthenticationFailed("a local account has this username")
        return user, built

    def authenticate_ldap_user(self, ldap_user: Any, password: str) -> User | None:
        """Check the password with the directory, then link the account and give it its roles."""
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        try:
            return directory.directory_signed_in(
                user,
                source=DirectorySource.LDAP,
                subject=user.get_username(),
                granted=_granted(user.ldap_user),
                context=audit.AuditContext.from_request(getattr(ldap_user, "_request", None)),
            )
        except directory.DirectoryRefusal:
            return None

    def revalidate(self, user: User, *, context: audit.AuditContext) -> Verdict:
        """Ask the directory about ``user`` now (with the service account); resync roles if active."""
        seen: list[str] = []
        token = _errors.set(seen)
        try:
            found = self.populate_user(user.get_username())
        finally:
            _errors.reset(token)
        if found is None:
            return Verdict.UNREACHABLE if seen else Verdict.GONE
        directory.directory_signed_in(
            found,
            source=DirectorySource.LDAP,
            subject=found.get_username(),
            granted=_granted(found.ldap_user),
            context=context,
        )
        return Verdict.ACTIVE
