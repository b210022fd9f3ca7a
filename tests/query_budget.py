"""Query budgets of page tests that hold on every database the suite runs on."""

from __future__ import annotations


def audit_appends(count: int = 1) -> int:
    """Statements that ``count`` audit appends cost beyond SQLite's: none.

    An append is two statements on SQLite (the number, the INSERT) and one on PostgreSQL (an
    INSERT that takes its number from the server-side ``audit_allocate``; two for a batch), so
    SQLite's count is the bound the page budgets (maxima) hold on both. Kept so that the page
    budgets say where audit appends would count if that changed.
    """
    del count  # the same on every database
    return 0
