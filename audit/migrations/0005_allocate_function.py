"""PostgreSQL: the sequencer's lock, xid and numbers in one server-side function (one round trip)."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION audit_allocate(how_many integer) RETURNS SETOF bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- In this order, as audit/sequencer.py argues: the event table's ROW EXCLUSIVE lock marks this
    -- transaction as a possible owner of numbers, then its xid exists, then it takes the numbers.
    LOCK TABLE audit_auditevent IN ROW EXCLUSIVE MODE;
    PERFORM pg_current_xact_id();
    RETURN QUERY SELECT nextval('audit_event_seq') FROM generate_series(1, how_many);
END
$$
"""


def create_function(apps, schema_editor) -> None:  # noqa: ANN001
    """PostgreSQL only: SQLite draws numbers as max + 1 under its single writer."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_function(apps, schema_editor) -> None:  # noqa: ANN001
    """Reverse of :func:`create_function`."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS audit_allocate(integer)")


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_verification_jobs"),
    ]

    operations = [migrations.RunPython(create_function, drop_function, elidable=False)]
