"""Entry points of the processes that :mod:`audit.verify_ranges` spawns.

Nothing here imports Django at module level: a spawned process unpickles these functions before
Django is set up, and importing the models first would fail with "Apps aren't loaded yet".
"""

from __future__ import annotations

from typing import Any


def start(database_name: str) -> None:
    """Set up Django in a fresh worker process, reading the caller's database."""
    import django

    django.setup()
    from django.db import connections

    connections["default"].settings_dict["NAME"] = database_name


def recompute(bounds: tuple[int, int]) -> Any:
    """Recompute one range (a :class:`audit.verify_ranges.RangeResult`), then close the connection."""
    from django.db import connections

    from audit import verify_ranges

    try:
        return verify_ranges.recompute(*bounds)
    finally:
        connections.close_all()
