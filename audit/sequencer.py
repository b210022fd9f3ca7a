"""Sequencing: every audit event gets its leaf index (``seq``) when it is inserted, with no lock held
across the caller's transaction, and the integrated log stays gap-free and ordered.

Why this is safe (the argument the tests exercise, see docs/audit.md):

**SQLite** (the embedded default) runs every write transaction ``BEGIN IMMEDIATE``: one writer at a
time, from its first statement to its commit. ``seq = max(seq) + 1`` read inside that transaction is
therefore the next free number, a rolled-back transaction leaves nothing behind (the next writer
takes the same number again), and numbers become visible in increasing order. No holes ever exist.

**PostgreSQL** hands numbers out from a sequence (``nextval``: atomic, never blocks, never reused),
so concurrent request transactions never wait for each other. A transaction that rolls back (or
dies with its connection, or with the server) leaves a hole. Holes are filled later by the
integrator with an explicit *void* leaf, but only once the hole is *provably abandoned*:

1. :func:`allocate` makes sure the transaction has its transaction id (xid) *before* it takes a
   number: the server-side function ``audit_allocate`` (migration 0005) runs, in this order and in
   one round trip, ``LOCK TABLE`` (step 3), ``PERFORM pg_current_xact_id()`` (a PL/pgSQL statement
   of its own, so nothing can plan it away) and ``nextval``. A single append calls the same
   function as the row source of its INSERT (:func:`audit.log._append_one`): the same steps in
   the same order in the same transaction (the INSERT itself takes the same ROW EXCLUSIVE lock
   even earlier, when it is planned or its plan is checked), so nothing below changes.
2. Before each pass, outside any transaction, the integrator takes a *fence*: first ``L`` = the last
   number handed out, then ``X`` = a brand-new xid (``pg_current_xact_id()`` in a transaction of its
   own). xids are assigned in increasing order, so every transaction holding a number ``n <= L`` got
   its xid before ``X`` was assigned: its xid is below ``X``.
3. :func:`allocate` also takes the event table's ROW EXCLUSIVE lock before ``nextval`` (writers do
   not conflict with each other on it), so every owner holds that lock and its own xid lock until it
   ends. Once no transaction holding the table lock has an xid below ``X`` (``pg_locks``;
   :func:`fence_settled`, checked on a later pass), every owner of a number ``<= L`` has committed
   (its row is visible to any later statement) or aborted (its row will never exist). A number
   ``<= L`` with no visible row is then abandoned for good, and only then does the integrator write
   a void leaf for it. A live owner is never overtaken: until the fence settles
   the integrator stops at the first hole, so leaves are never reordered, and the primary key on
   ``seq`` refuses a duplicate even if this reasoning were wrong.

(Comparing against the snapshot's list of running xids is NOT enough: an xid at or above the
snapshot's ``xmax`` is running but not listed; the concurrency test caught exactly that. Waiting for
the snapshot's ``xmin`` instead is correct but waits for every transaction in the whole cluster.)

After a server crash PostgreSQL may skip up to 32 sequence values; those holes have no owner at all
and are voided the same way. The sequence must keep ``CACHE 1`` (per-session caches would hand out
numbers long before they are used).
"""

from __future__ import annotations

import sys
from typing import Any

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

try:
    import psycopg
except ImportError:  # an SQLite-only installation
    psycopg = None

#: The PostgreSQL sequence behind ``AuditEvent.seq`` (created by migration 0003).
SEQUENCE = "audit_event_seq"


def allocate(count: int = 1) -> list[int]:
    """Take ``count`` sequence numbers for events about to be inserted in the current transaction.

    Ascending; on PostgreSQL they need not be consecutive (other writers interleave), on SQLite they
    are. Must run inside ``transaction.atomic()`` (the caller checks).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    try:
        return _allocate(count)
    except InterfaceError as exc:
        # A connection killed under this transaction surfaces here as "connection already closed"
        # (InterfaceError, not a DatabaseError): report it as the outage it is, so that callers'
        # `except DatabaseError` (an HL7 NAK, a 503) answers cleanly.
        raise OperationalError(f"the database connection was lost: {exc}") from exc


if psycopg is not None:

    class _PreparedCursor(psycopg.Cursor):
        """Server-side binding, every statement prepared (named, per session) on its first execution."""

        def execute(
            self, query: Any, params: Any = None, *, prepare: bool | None = True, binary: bool | None = None
        ) -> Any:
            return super().execute(query, params, prepare=prepare, binary=binary)

        def _send_query_prepared(self, name: bytes, query: Any, *, binary: bool | None = None) -> None:
            # psycopg keeps no query for a prepared execution; Django's query log reads it from here.
            self._query = query
            super()._send_query_prepared(name, query, binary=binary)


def prepared_cursor(db: BaseDatabaseWrapper) -> CursorWrapper:
    """A cursor of ``db`` (the current connection, resolved once by the caller) for the statements
    of a single append, run thousands of times a second.

    On PostgreSQL (psycopg 3) its statements are bound on the server and prepared on their first
    execution in the session: the server then neither parses nor plans them again, and the client
    sends 15 values instead of quoting them into the text (Django's default cursor does both each
    time, and Django turns psycopg's automatic preparing off for poolers; a pooler in transaction
    mode must then pass protocol-level prepared statements, as PgBouncer >= 1.21 does). Django's
    wrapper stays around it: errors become ``django.db`` errors, and query logging and execute
    wrappers see every statement. Elsewhere: the connection's ordinary cursor.
    """
    if psycopg is None or db.vendor != "postgresql":
        return db.cursor()
    db.ensure_connection()
    raw = db.connection
    if raw.prepare_threshold is None:
        # Django turns preparing off (None), and psycopg then ignores prepare=True. A threshold never
        # reached prepares exactly the statements executed with prepare=True: these, and only these.
        raw.prepare_threshold = sys.maxsize
    with db.wrap_database_errors:
        # What BaseDatabaseWrapper.cursor() does with the cursor create_cursor() would have made.
        return db._prepare_cursor(_PreparedCursor(raw))


def _allocate(count: int) -> list[int]:
    db = connections[DEFAULT_DB_ALIAS]  # resolved once: each `connection.x` is a thread-local look-up
    with prepared_cursor(db) as cursor:
        if db.vendor == "postgresql":
            # One round trip: audit_allocate() (migration 0005) takes the table lock (ROW EXCLUSIVE:
            # writers never wait for each other; it marks this transaction as a possible owner of
            # numbers for fence_settled()), then makes sure the xid exists, then calls nextval.
            cursor.execute("SELECT audit_allocate(%s)", [count])
            return sorted(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT coalesce(max(seq), -1) + 1 FROM audit_auditevent")
        first = cursor.fetchone()[0]
    return list(range(first, first + count))


def take_fence() -> tuple[int | None, str]:
    """PostgreSQL: (last number handed out, a fresh xid assigned just after); else (None, "").

    Must run outside any transaction: the fresh xid has to be newer than every owner's.
    """
    if connection.vendor != "postgresql":
        return None, ""
    if connection.in_atomic_block:
        raise RuntimeError("a sequencing fence must be taken outside transaction.atomic()")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM audit_event_seq"
        )
        last = cursor.fetchone()[0]
        # A separate statement and transaction (autocommit): a new xid, above every owner's.
        cursor.execute("SELECT pg_current_xact_id()::text")
        xid = cursor.fetchone()[0]
    return last, xid


def fence_settled(xid: str) -> bool:
    """Has every possible owner of a number, with an xid below ``xid``, finished (this one excepted)?

    Possible owners are the transactions holding their lock on the event table (taken by
    :func:`allocate` before ``nextval``): long transactions elsewhere in the cluster, or in this
    database without audit events, do not hold the integrator back.
    """
    if connection.vendor != "postgresql":
        return True
    fence = int(xid) & 0xFFFFFFFF  # pg_locks shows 32-bit xids: compare modulo 2**32
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT own.transactionid::text FROM pg_locks AS rel JOIN pg_locks AS own "
            "ON own.virtualtransaction = rel.virtualtransaction "
            "AND own.locktype = 'transactionid' AND own.mode = 'ExclusiveLock' "
            "WHERE rel.locktype = 'relation' AND rel.granted "
            "AND rel.relation = 'audit_auditevent'::regclass "
            "AND rel.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND rel.pid IS DISTINCT FROM pg_backend_pid()"
        )
        running = [int(row[0]) for row in cursor.fetchall()]
    return not any(0 < (fence - owner) % 2**32 < 2**31 for owner in running)


def realign(target: BaseDatabaseWrapper) -> None:
    """Point the sequence just past the stored events (PostgreSQL). For test databases, where each
    test's transaction is rolled back but ``nextval`` is not: without this, the next test's events
    would start after hundreds of abandoned numbers, each integrated as a void leaf.
    """
    if target.vendor != "postgresql":
        return
    with target.cursor() as cursor:
        cursor.execute(
            "SELECT setval('audit_event_seq', coalesce((SELECT max(seq) + 1 FROM audit_auditevent), 0), "
            "false)"
        )


def reset(target: BaseDatabaseWrapper) -> None:
    """Restart the numbering at 0 (``manage.py flush`` of a test or demo database, never in use)."""
    if target.vendor != "postgresql":
        return
    with target.cursor() as cursor:
        cursor.execute("ALTER SEQUENCE audit_event_seq RESTART WITH 0")
