"""API tokens for integrations: issuing secrets, and the one authentication class the API uses.

``Authorization: Token <secret>`` stays the API's only way in for service accounts. Secrets issued in
the portal start with :data:`SECRET_PREFIX` and are looked up by their SHA-256 digest; keys of Django
REST framework's older ``authtoken`` table (40 hex digits, no prefix, made by ``run_demo`` and older
installations) are still accepted through the same header until an admin replaces them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from portal.accounts.models import ApiToken

SECRET_PREFIX = "cct_"  # noqa: S105 - the marker of portal-issued secrets, not a secret
# The last-use time is written at most this often per token: not one UPDATE per API call.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def new_secret() -> str:
    """A fresh secret: the prefix and 256 random bits (43 URL-safe characters)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def digest_of(secret: str) -> str:
    """The stored form of a secret: its SHA-256 digest in hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def display_prefix(secret: str) -> str:
    """The first characters of a secret, kept so that an admin can tell tokens apart."""
    return secret[: len(SECRET_PREFIX) + 6]


class ApiTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <secret>``: portal-issued (hashed) tokens, and legacy DRF keys.

    A revoked token, or any token of a deactivated account, is refused with 401.
    """

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        """The (user, token) pair for ``key``, or AuthenticationFailed."""
        if not key.startswith(SECRET_PREFIX):
            return super().authenticate_credentials(key)
        token = ApiToken.objects.select_related("user").filter(digest=digest_of(key), revoked_at=None).first()
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token
