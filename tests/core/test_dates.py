"""Dates as the portal reads them (portal/core/dates.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management.base import CommandError
from django.test import override_settings

from portal.core.dates import date_option, day_start, parse_date_option, parse_date_param
from portal.core.errors import InvalidRecord


def test_a_day_starts_at_midnight_in_the_portal_time_zone():
    with override_settings(TIME_ZONE="Pacific/Auckland"):
        start = day_start(dt.date(2026, 1, 11))
    assert start.astimezone(dt.UTC) == dt.datetime(2026, 1, 10, 11, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "bad", ["2026-13-01", "yesterday; DROP TABLE records_study", "<script>alert(1)</script>", "", "x" * 5000]
)
def test_a_bad_date_option_is_refused_by_name_and_shortly(bad):
    with pytest.raises(CommandError, match="--before must be a date \\(YYYY-MM-DD\\)") as caught:
        date_option("--before")(bad)
    assert len(str(caught.value)) < 120


def test_a_good_date_option():
    assert parse_date_option("2026-02-28", "--from") == dt.date(2026, 2, 28)


@pytest.mark.parametrize("bad", ["2026-02-30", "' OR 1=1 --", "<img src=x onerror=alert(1)>", "x" * 1000])
def test_a_bad_date_parameter_is_a_400_naming_the_field(bad):
    with pytest.raises(InvalidRecord, match="date_from must be a date") as caught:
        parse_date_param(bad, "date_from")
    assert (caught.value.status, caught.value.field) == (400, "date_from")
