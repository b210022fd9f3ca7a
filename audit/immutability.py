"""Database-enforced immutability: triggers that refuse UPDATE, DELETE and TRUNCATE.

Evidence tables (AI outputs, signed reports, audit events, checkpoints) must not change even for
someone with raw SQL access through the application's database role. The triggers raise an error
that Django reports as ``IntegrityError``. On PostgreSQL only the tables' owner can disable them, and
the runtime role should not own the tables (see docs/deployment.md); on SQLite there are no roles, so
the guarantee is against the application and casual SQL, and the audit log's signed checkpoints catch
anyone who drops the triggers.

:func:`suspended` exists for the two legitimate destructive operations, both run by the owner:
the retention purge (which refuses rows under legal hold) and ``manage.py flush`` in test databases.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from django.db import migrations
from django.db.backends.base.base import BaseDatabaseWrapper

MESSAGE = "concordance: records in this table are immutable"

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION concordance_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE} (% on %)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;
"""


def _trigger_names(table: str) -> tuple[str, str, str]:
    return f"{table}_no_update", f"{table}_no_delete", f"{table}_no_truncate"


def install_sql(vendor: str, table: str) -> list[str]:
    """The statements that make ``table`` append-only on ``vendor`` ('postgresql' or 'sqlite')."""
    no_update, no_delete, no_truncate = _trigger_names(table)
    if vendor == "postgresql":
        return [
            _PG_FUNCTION,
            f'DROP TRIGGER IF EXISTS {no_update} ON "{table}"',
            f'DROP TRIGGER IF EXISTS {no_delete} ON "{table}"',
            f'DROP TRIGGER IF EXISTS {no_truncate} ON "{table}"',
            f'CREATE TRIGGER {no_update} BEFORE UPDATE ON "{table}" FOR EACH ROW '
            "EXECUTE FUNCTION concordance_forbid_change()",
            f'CREATE TRIGGER {no_delete} BEFORE DELETE ON "{table}" FOR EACH ROW '
            "EXECUTE FUNCTION concordance_forbid_change()",
            f'CREATE TRIGGER {no_truncate} BEFORE TRUNCATE ON "{table}" FOR EACH STATEMENT '
            "EXECUTE FUNCTION concordance_forbid_change()",
        ]
    if vendor == "sqlite":
        # SQLite has no TRUNCATE; "DELETE FROM t" without WHERE is covered by the DELETE trigger.
        return [
            f"DROP TRIGGER IF EXISTS {no_update}",
            f"DROP TRIGGER IF EXISTS {no_delete}",
            f'CREATE TRIGGER {no_update} BEFORE UPDATE ON "{table}" '
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE} (UPDATE on {table})'); END",
            f'CREATE TRIGGER {no_delete} BEFORE DELETE ON "{table}" '
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE} (DELETE on {table})'); END",
        ]
    raise NotImplementedError(f"immutability triggers are not written for the {vendor!r} database")


def _drop_sql(vendor: str, table: str) -> list[str]:
    no_update, no_delete, no_truncate = _trigger_names(table)
    if vendor == "postgresql":
        return [f'DROP TRIGGER IF EXISTS {name} ON "{table}"' for name in (no_update, no_delete, no_truncate)]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in (no_update, no_delete)]


def install(connection: BaseDatabaseWrapper, tables: Iterable[str]) -> None:
    """Create (or re-create) the immutability triggers on ``tables``."""
    with connection.cursor() as cursor:
        for table in tables:
            for statement in install_sql(connection.vendor, table):
                cursor.execute(statement)


def uninstall(connection: BaseDatabaseWrapper, tables: Iterable[str]) -> None:
    """Drop the triggers (used only by migrations that reverse their creation)."""
    with connection.cursor() as cursor:
        for table in tables:
            for statement in _drop_sql(connection.vendor, table):
                cursor.execute(statement)


def migration_operation(*tables: str) -> migrations.RunPython:
    """A migration operation that installs the triggers on ``tables`` for the current vendor."""

    def forwards(apps, schema_editor) -> None:  # noqa: ANN001
        install(schema_editor.connection, tables)

    def backwards(apps, schema_editor) -> None:  # noqa: ANN001
        uninstall(schema_editor.connection, tables)

    return migrations.RunPython(forwards, backwards, elidable=False)


IMMUTABLE_TABLES: list[str] = []


def register(*tables: str) -> None:
    """Declare tables as immutable so :func:`suspended` knows every one of them."""
    for table in tables:
        if table not in IMMUTABLE_TABLES:
            IMMUTABLE_TABLES.append(table)


@contextlib.contextmanager
def suspended(connection: BaseDatabaseWrapper, tables: Iterable[str] | None = None) -> Iterator[None]:
    """Lift the triggers for the duration of the block, then put them back, even on error.

    Needs the tables' owner on PostgreSQL. Meant for the retention purge and test-database flushes.
    """
    names = [t for t in (tables if tables is not None else IMMUTABLE_TABLES) if t in _existing(connection)]
    uninstall(connection, names)
    try:
        yield
    finally:
        install(connection, names)


def _existing(connection: BaseDatabaseWrapper) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))
