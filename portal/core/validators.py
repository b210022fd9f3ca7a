"""Checks that services make themselves (they are called from the API, pages, commands and the shell)."""

from __future__ import annotations

from portal.core.errors import InvalidRecord


def require_text(value: str, field: str, what: str) -> None:
    """Refuse an empty or blank required text with :class:`InvalidRecord` naming ``field``."""
    if not value or not value.strip():
        raise InvalidRecord(f"{what} is required.", field=field)
