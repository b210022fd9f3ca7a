"""The runtime database role appends evidence but cannot change it, nor switch the triggers off.

PostgreSQL only, and never skipped: the test uses the server of DATABASE_URL when that is
PostgreSQL, else the local one at 127.0.0.1:5432 (trust authentication, as in CI and on the
development machine). In a scratch database of its own it creates an owner role and a runtime role
with unique names, migrates as the owner, grants with ``manage.py db_roles --apply`` (what
docs/deployment.md prescribes), then tries every way around the triggers as the runtime role.
Everything it creates is dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Scratch:
    """A scratch database with its owner and runtime roles on one server."""

    host: str
    port: int
    superuser: str
    database: str
    owner: str
    runtime: str

    def url(self, role: str) -> str:
        return f"postgresql://{role}@{self.host}:{self.port}/{self.database}"

    def connect(self, role: str, database: str | None = None) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host, port=self.port, user=role, dbname=database or self.database, autocommit=True
        )


def _server() -> tuple[str, int, str]:
    """Host, port and superuser of the PostgreSQL server to use."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(url)
        return parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres"
    return "127.0.0.1", 5432, "postgres"


def _manage(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "CELERY_TASK_ALWAYS_EAGER": "0"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )


@pytest.fixture(scope="module")
def scratch() -> Iterator[Scratch]:
    host, port, superuser = _server()
    suffix = secrets.token_hex(4)
    box = Scratch(
        host, port, superuser, f"concordance_roles_{suffix}", f"c_owner_{suffix}", f"c_app_{suffix}"
    )
    with box.connect(superuser, "postgres") as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(box.owner)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(box.runtime)))
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(box.database), sql.Identifier(box.owner)
            )
        )
    try:
        migrated = _manage("migrate", "--no-input", "-v", "0", url=box.url(box.owner))
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        granted = _manage("db_roles", "--runtime-role", box.runtime, "--apply", url=box.url(box.owner))
        assert granted.returncode == 0, granted.stderr[-3000:]
        yield box
    finally:
        with box.connect(superuser, "postgres") as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(box.database))
            )
            for role in (box.runtime, box.owner):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


APPEND_ONE_EVENT = """
from django.db import transaction
from audit import log as audit
with transaction.atomic():
    event = audit.record("fault.probe", actor=None, details={"probe": 1})
print(event.seq)
"""


def test_the_runtime_role_can_append_audit_events_through_the_application(scratch):
    result = _manage("shell", "-c", APPEND_ONE_EVENT, url=scratch.url(scratch.runtime))

    assert result.returncode == 0, result.stderr[-3000:]
    with scratch.connect(scratch.runtime) as conn:
        assert (
            conn.execute("SELECT count(*) FROM audit_auditevent WHERE action = 'fault.probe'").fetchone()[0]
            == 1
        )


def test_the_runtime_role_owns_nothing(scratch):
    with scratch.connect(scratch.superuser) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S')"
        ).fetchall()
    assert owners == [(scratch.owner,)]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'forged'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_no_update",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
        "DROP TRIGGER audit_auditevent_no_update ON audit_auditevent",
        "DROP TRIGGER audit_auditevent_no_delete ON audit_auditevent",
        "DROP FUNCTION concordance_forbid_change() CASCADE",
        "CREATE OR REPLACE FUNCTION concordance_forbid_change() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RETURN NEW; END $$",
        "SET session_replication_role = replica",
        "ALTER TABLE audit_auditevent OWNER TO CURRENT_USER",
        "UPDATE records_signedreport SET text = 'forged'",
        "DELETE FROM records_aioutput",
        "ALTER TABLE records_signedreport DISABLE TRIGGER ALL",
        "UPDATE audit_checkpoint SET root_hash = root_hash",
        "CREATE TABLE public.sneaky (id int)",
    ],
)
def test_the_runtime_role_cannot_change_evidence_or_the_triggers(scratch, statement):
    with scratch.connect(scratch.runtime) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)

    with scratch.connect(scratch.superuser) as conn:
        enabled = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%\\_no\\_%' AND tgenabled = 'O'"
        ).fetchone()[0]
    assert enabled >= 15  # every evidence table's triggers are still there and enabled


def test_even_the_owner_is_refused_by_the_triggers(scratch):
    appended = _manage("shell", "-c", APPEND_ONE_EVENT, url=scratch.url(scratch.owner))
    assert appended.returncode == 0, appended.stderr[-3000:]
    with scratch.connect(scratch.owner) as conn, pytest.raises(psycopg.errors.RestrictViolation):
        conn.execute("UPDATE audit_auditevent SET action = 'forged'")


def test_db_roles_check_passes_for_the_runtime_role_and_fails_for_the_owner(scratch):
    ok = _manage("db_roles", "--runtime-role", scratch.runtime, "--check", url=scratch.url(scratch.owner))
    bad = _manage("db_roles", "--runtime-role", scratch.owner, "--check", url=scratch.url(scratch.owner))

    assert ok.returncode == 0, ok.stderr
    assert "row privileges only" in ok.stdout
    assert bad.returncode != 0
    assert "owns audit_auditevent" in bad.stderr


@pytest.mark.django_db
def test_db_roles_refuses_clearly_where_it_cannot_work():
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.db import connection

    expected = "SQLite has no roles" if connection.vendor == "sqlite" else "No role"
    with pytest.raises(CommandError, match=expected):
        call_command("db_roles", "--runtime-role", "no_such_role_here", "--check")
