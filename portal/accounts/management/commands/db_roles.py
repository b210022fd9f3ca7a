"""``manage.py db_roles --runtime-role concordance_app [--apply | --check]``: the runtime role's grants.

The immutability triggers (audit.immutability) hold against anyone who cannot disable them, and on
PostgreSQL only a table's owner (or a superuser) can disable or drop a trigger. So the tables are
owned by a separate owner role that runs migrations, and web, workers and beat connect as a runtime
role that holds only row privileges: SELECT, INSERT, UPDATE, DELETE on the working tables, SELECT and
INSERT on the evidence tables (the ones carrying the triggers). Run this as the owner after every
``migrate``: it prints the statements, ``--apply`` executes them, ``--check`` verifies the runtime
role's position and exits non-zero when it could tamper with the evidence tables (docs/deployment.md).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

# Tables whose triggers call the immutability function: found in the catalogue, not listed by hand,
# so a table made immutable by a later migration is covered without editing this command.
EVIDENCE_TABLES_SQL = """
SELECT DISTINCT c.relname
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_proc p ON p.oid = t.tgfoid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND p.proname = 'concordance_forbid_change' AND n.nspname = current_schema()
ORDER BY c.relname
"""

# What would let a role get around the triggers: owning a table (ALTER TABLE ... DISABLE TRIGGER,
# DROP TRIGGER), superuser (session_replication_role = replica), UPDATE/DELETE/TRUNCATE on evidence.
RISKS_SQL = """
SELECT 'superuser' FROM pg_roles WHERE rolname = %(role)s AND (rolsuper OR rolbypassrls)
UNION ALL
SELECT 'owns ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND pg_has_role(%(role)s, c.relowner, 'USAGE')
UNION ALL
SELECT privilege || ' on ' || relname
  FROM unnest(%(tables)s::text[]) AS relname, unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE']) AS privilege
 WHERE has_table_privilege(%(role)s, quote_ident(relname), privilege)
"""


def grant_statements(*, runtime_role: str, evidence_tables: list[str]) -> list[str]:
    """The GRANT/REVOKE statements that give ``runtime_role`` row privileges and nothing more."""
    role = connection.ops.quote_name(runtime_role)
    statements = [
        f"GRANT CONNECT ON DATABASE {connection.ops.quote_name(connection.settings_dict['NAME'])} TO {role}",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"REVOKE CREATE ON SCHEMA public FROM {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    ]
    if evidence_tables:
        tables = ", ".join(connection.ops.quote_name(t) for t in evidence_tables)
        statements.append(f"REVOKE UPDATE, DELETE, TRUNCATE ON {tables} FROM {role}")
    return statements


def runtime_role_risks(*, runtime_role: str, evidence_tables: list[str]) -> list[str]:
    """What ``runtime_role`` could do to get around the triggers (empty: nothing)."""
    with connection.cursor() as cursor:
        cursor.execute(RISKS_SQL, {"role": runtime_role, "tables": evidence_tables})
        return [row[0] for row in cursor.fetchall()]


class Command(BaseCommand):
    """Grant the runtime database role row privileges only, or check that it has no more."""

    help = "Print, apply (--apply) or check (--check) the runtime PostgreSQL role's privileges."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--runtime-role", required=True, help="the role web, workers and beat log in as")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--apply", action="store_true", help="execute the statements (run as the owner)")
        action.add_argument(
            "--check", action="store_true", help="fail if the runtime role can bypass triggers"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                "Database roles apply to PostgreSQL; SQLite has no roles (see docs/deployment.md)."
            )
        runtime_role: str = options["runtime_role"]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_user, EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s)", [runtime_role]
            )
            current, exists = cursor.fetchone()
            cursor.execute(EVIDENCE_TABLES_SQL)
            evidence = [row[0] for row in cursor.fetchall()]
        if not exists:
            raise CommandError(f"No role {runtime_role!r}: create it first (CREATE ROLE ... LOGIN).")
        if not evidence:
            raise CommandError("No immutability triggers found: run `manage.py migrate` first.")

        if options["check"]:
            risks = runtime_role_risks(runtime_role=runtime_role, evidence_tables=evidence)
            if risks:
                raise CommandError(
                    f"Role {runtime_role!r} can bypass the immutability triggers: {'; '.join(risks)}"
                )
            self.stdout.write(
                f"ok: {runtime_role} holds row privileges only ({len(evidence)} evidence tables)"
            )
            return

        if runtime_role == current:
            raise CommandError("Run this as the tables' owner, not as the runtime role itself.")
        statements = grant_statements(runtime_role=runtime_role, evidence_tables=evidence)
        if not options["apply"]:
            self.stdout.write(";\n".join(statements) + ";")
            return
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        risks = runtime_role_risks(runtime_role=runtime_role, evidence_tables=evidence)
        if risks:
            raise CommandError(f"Grants applied, but {runtime_role!r} can still: {'; '.join(risks)}")
        self.stdout.write(f"granted {runtime_role} row privileges on {connection.settings_dict['NAME']}")
