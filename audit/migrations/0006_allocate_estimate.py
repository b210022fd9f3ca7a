"""PostgreSQL: the planner's estimate for ``audit_allocate`` is one row (it returns ``how_many``).

A set-returning function is estimated at 1,000 rows by default. A single append is one INSERT that
selects its row from ``audit_allocate(1)`` (:func:`audit.log._append_one`), prepared once per
session; at 1,000 rows its generic plan looks dearer than planning it again for every execution, so
the server re-planned every append. At one row the generic plan is kept, as it should be.
"""

from django.db import migrations


def set_estimate(rows: int):  # noqa: ANN201
    """A migration step setting the function's row estimate (PostgreSQL only)."""

    def step(apps, schema_editor) -> None:  # noqa: ANN001
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER FUNCTION audit_allocate(integer) ROWS {rows}")

    return step


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_allocate_function"),
    ]

    operations = [migrations.RunPython(set_estimate(1), set_estimate(1000), elidable=False)]
