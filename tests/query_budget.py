"""Query budgets of page tests that hold on every database the suite runs on."""

from __future__ import annotations

from django.db import connection


def audit_appends(count: int = 1) -> int:
    """Statements that ``count`` audit appends cost beyond SQLite's.

    On PostgreSQL the sequencer also takes a ROW EXCLUSIVE lock on the event table before it draws a
    number (audit/sequencer.py), one more statement per append; SQLite draws numbers without one.
    """
    return count if connection.vendor == "postgresql" else 0
