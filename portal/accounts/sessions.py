"""The signed-in sessions of accounts: listing them for admins and ending them at once.

Sessions live in Django's session table, keyed by a secret; admins never see that key, only a short
:func:`session_id` derived from it. Listing decodes every unexpired session (a hospital has at most a
few thousand at a time); the session itself carries when and from where it signed in (stored at login).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.utils import timezone

LOGIN_AT_KEY = "concordance_login_at"
LOGIN_ADDRESS_KEY = "concordance_login_address"
LAST_ACTIVITY_KEY = "concordance_last_activity"


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    """One signed-in session as an admin sees it (never its key)."""

    session_id: str
    user_id: int
    signed_in_at: dt.datetime | None
    last_activity_at: dt.datetime | None
    client_address: str
    expires_at: dt.datetime


def session_id(session_key: str) -> str:
    """A short public name for a session: 16 hex digits of the key's SHA-256 (not reversible)."""
    return hashlib.sha256(session_key.encode("ascii")).hexdigest()[:16]


def _timestamp(value: Any) -> dt.datetime | None:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    return None


def _signed_in() -> list[tuple[Session, dict[str, Any], int]]:
    """Every unexpired session that belongs to an account, decoded: (row, data, user id)."""
    found = []
    for row in Session.objects.filter(expire_date__gt=timezone.now()).order_by("expire_date"):
        data = row.get_decoded()
        raw_user = data.get(SESSION_KEY)
        if raw_user is None or not str(raw_user).isdigit():
            continue
        found.append((row, data, int(raw_user)))
    return found


def sessions_of(user_id: int | None = None) -> list[SessionInfo]:
    """The signed-in sessions of one account (``user_id``), or of every account, soonest to expire first."""
    return [
        SessionInfo(
            session_id=session_id(row.session_key),
            user_id=uid,
            signed_in_at=_timestamp(data.get(LOGIN_AT_KEY)),
            last_activity_at=_timestamp(data.get(LAST_ACTIVITY_KEY)),
            client_address=str(data.get(LOGIN_ADDRESS_KEY, ""))[:64],
            expires_at=row.expire_date,
        )
        for row, data, uid in _signed_in()
        if user_id is None or uid == user_id
    ]


def end_sessions(*, user_id: int, only: str | None = None) -> int:
    """Delete the sessions of ``user_id`` (or only the one named ``only``); how many ended.

    The next request with such a session's cookie is anonymous: it ends at once, not at expiry.
    """
    keys = [
        row.session_key
        for row, _, uid in _signed_in()
        if uid == user_id and (only is None or session_id(row.session_key) == only)
    ]
    Session.objects.filter(session_key__in=keys).delete()
    return len(keys)
