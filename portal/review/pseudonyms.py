"""Stable pseudonyms for radiologists: the same reader label on every page, export and chart.

``HMAC-SHA256(key, user id)``: without the key nobody can go from "Reader 7F3A9C" back to the user, and
the label never changes while the key does not. The key is ``CONCORDANCE_PSEUDONYM_KEY`` when set
(rotate it to re-pseudonymise), else derived from ``SECRET_KEY`` with its own salt.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

PREFIX = "Reader"


def _key() -> bytes:
    explicit = getattr(settings, "CONCORDANCE_PSEUDONYM_KEY", "") or ""
    if explicit:
        return explicit.encode("utf-8")
    return hashlib.sha256(b"concordance.review.pseudonym|" + settings.SECRET_KEY.encode("utf-8")).digest()


def pseudonym(user_id: int | None) -> str:
    """The reader label of a user id, e.g. "Reader 7F3A9C" (24 bits: collisions are rare in a department)."""
    if user_id is None:
        return "Unknown reader"
    digest = hmac.new(_key(), str(int(user_id)).encode("ascii"), hashlib.sha256).hexdigest()
    return f"{PREFIX} {digest[:6].upper()}"


def display_name(user_id: int | None, *, full_name: str, username: str, reveal: bool) -> str:
    """What a viewer sees for a radiologist: the name for those allowed, else the pseudonym."""
    if not reveal:
        return pseudonym(user_id)
    return full_name.strip() or username


def clinician_pseudonym(clinician_id: int) -> str:
    """The reader label of a clinician with no portal account (known only from the RIS feed)."""
    digest = hmac.new(_key(), f"clinician:{int(clinician_id)}".encode("ascii"), hashlib.sha256).hexdigest()
    return f"{PREFIX} {digest[:6].upper()}"
