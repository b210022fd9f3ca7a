"""Dates as the portal reads them: days in the portal's time zone, date parameters and command options."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.core.management.base import CommandError
from django.utils import timezone

from portal.core.errors import InvalidRecord


def day_start(day: dt.date) -> dt.datetime:
    """The first instant of ``day`` in the portal's time zone (``settings.TIME_ZONE``), as counsel and QA
    read dates: a range ``date_from..date_to`` is ``day_start(date_from) <= t < day_start(date_to + 1)``."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def parse_date_param(value: str, field: str) -> dt.date:
    """A date parameter of a request (YYYY-MM-DD); :class:`InvalidRecord` (400) naming ``field`` otherwise."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRecord(f"{field} must be a date (YYYY-MM-DD).", field=field) from exc


def parse_date_option(value: str, option: str) -> dt.date:
    """A command-line date (YYYY-MM-DD); :class:`CommandError` naming ``option`` otherwise."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{option} must be a date (YYYY-MM-DD), not {value[:40]!r}.") from exc


def date_option(option: str) -> Callable[[str], dt.date]:
    """An argparse ``type=`` for a date option, e.g. ``type=date_option("--before")``."""
    return lambda value: parse_date_option(value, option)
