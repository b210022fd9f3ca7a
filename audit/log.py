"""Appending to the audit log: :func:`record` is the one way every app writes an audit event.

An event is written inside the caller's transaction (``transaction.atomic`` is required): the change
and its event commit together or not at all. Appending is one sequence number (:mod:`audit.sequencer`,
no lock held across the transaction) and one INSERT; on PostgreSQL a single event is one statement,
the INSERT taking its number from the sequencer's function and hashing the leaf around it
(:func:`_append_one`). The integrator (:mod:`audit.integrator`) adds committed events to the Merkle
tree in batches, in ``seq`` order, and signs checkpoints.

Inside :func:`batch` (one ingested message, one FHIR Bundle) ``record`` only collects the event; the
block's events are appended together when it ends, with one sequence statement and one INSERT: the
same events, in the same order, with the same timestamps and hashes as one append each.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from hashlib import sha256
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DataError, InterfaceError, OperationalError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CharField, IntegerField
from django.http import HttpRequest
from django.utils import timezone

from audit import sequencer
from audit.leaf import leaf_digest, leaf_parts
from audit.merkle import CompactRange
from audit.models import LEAF_FIELDS, ActorKind, AuditEvent, AuditLogHead

MAX_USER_AGENT = 256

#: The event table's columns in the model's order, which the positional constructor in
#: :func:`unsealed_event` and the statements of :func:`_append_one` rely on.
COLUMNS = ("seq", *LEAF_FIELDS[1:], "leaf_hash")
if tuple(field.attname for field in AuditEvent._meta.concrete_fields) != COLUMNS:
    raise ImproperlyConfigured(f"AuditEvent's columns are no longer {COLUMNS}: update audit.log")


@dataclasses.dataclass(frozen=True)
class AuditContext:
    """Where an action came from: the client's address, its user agent and the page or endpoint."""

    client_address: str = ""
    user_agent: str = ""
    channel: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest | None, channel: str | None = None) -> AuditContext:
        """Build the context of an HTTP request (REMOTE_ADDR only: X-Forwarded-For is spoofable)."""
        if request is None:
            return cls(channel=channel or "")
        meta = request.META
        return cls(
            client_address=str(meta.get("REMOTE_ADDR", ""))[:64],
            user_agent=str(meta.get("HTTP_USER_AGENT", ""))[:MAX_USER_AGENT],
            channel=(channel or f"{request.method} {request.path}")[:128],
        )


SYSTEM = AuditContext(channel="system")


def actor_fields_of(actor: AbstractBaseUser | AnonymousUser | None) -> dict[str, Any]:
    """The actor columns of an event: kind (user, service, system, anonymous), id and username."""
    if actor is None:
        return {"actor_kind": ActorKind.SYSTEM, "actor_id": None, "actor_username": ""}
    if not actor.is_authenticated:
        return {"actor_kind": ActorKind.ANONYMOUS, "actor_id": None, "actor_username": ""}
    # Cached on the user object: one request often records several events for the same actor.
    is_service = getattr(actor, "_audit_is_service", None)
    if is_service is None:
        is_service = actor.groups.filter(name="integration").exists()  # type: ignore[union-attr]
        actor._audit_is_service = is_service  # type: ignore[union-attr]
    return {
        "actor_kind": ActorKind.SERVICE if is_service else ActorKind.USER,
        "actor_id": actor.pk,
        "actor_username": actor.get_username(),
    }


def cache_actor_kind(actor: AbstractBaseUser, *, is_service: bool) -> None:
    """Remember whether ``actor`` is a service account (member of the ``integration`` group), for
    the request: the role check has already read the account's groups, the events need not again."""
    actor._audit_is_service = is_service  # type: ignore[attr-defined]


def record(
    action: str,
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    context: AuditContext = SYSTEM,
    object_type: str = "",
    object_id: Any = "",
    patient_id: int | None = None,
    study_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the audit log, in the caller's transaction.

    ``details`` must be JSON-serialisable and must not carry report text or other PHI beyond the
    references the event needs (the log is exported to audit repositories).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("audit.record() must run inside transaction.atomic() with the change it records")
    event = unsealed_event(
        timezone.now(),
        actor_fields_of(actor),
        context,
        {
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "patient_id": patient_id,
            "study_id": study_id,
            "details": details,
        },
    )
    pending = getattr(connection, _BATCH, None)
    if pending is not None:
        # Inside batch(): appended with the block's other events when it ends (seq and hash then).
        pending.append(event)
        return event
    append_sealed([event])
    return event


# The connection attribute holding the events of the open batch() (connections are per thread).
_BATCH = "_audit_batch_events"


@contextmanager
def batch() -> Iterator[None]:
    """Collect the events :func:`record` is given inside the block; append them when it ends.

    Must sit inside the ``transaction.atomic()`` of the change (the events are written before the
    block returns, so before the transaction commits). A block that raises appends nothing. A batch
    nested in another joins it: its events are appended when the outermost block ends, and are
    dropped if the nested block raises (as its savepoint rolls back its rows). Usable as a decorator.
    """
    pending: list[AuditEvent] | None = getattr(connection, _BATCH, None)
    if pending is not None:
        mark = len(pending)
        try:
            yield
        except BaseException:
            del pending[mark:]
            raise
        return
    events: list[AuditEvent] = []
    setattr(connection, _BATCH, events)
    try:
        yield
        setattr(connection, _BATCH, None)
        append_sealed(events)
    finally:
        setattr(connection, _BATCH, None)


def batch_open() -> bool:
    """True inside :func:`batch` on this thread's connection."""
    return getattr(connection, _BATCH, None) is not None


def append_sealed(events: list[AuditEvent]) -> None:
    """Number, hash and insert unsealed events in their order: one sequence statement, one INSERT;
    one statement for a single event on PostgreSQL (:func:`_append_one`)."""
    if not events:
        return
    db = connections[DEFAULT_DB_ALIAS]
    if len(events) == 1 and db.vendor == "postgresql" and _append_one(db, events[0]):
        return
    for event, seq in zip(events, sequencer.allocate(len(events)), strict=True):
        seal(event, seq)
    insert_events(events)


# INSERT statements built once per (database alias, rows per statement): compiling the ORM's INSERT
# cost ~170 us of CPU per append, a third of an append's client CPU.
_INSERT_SQL: dict[tuple[str, int], str] = {}


def insert_events(events: list[AuditEvent]) -> None:
    """INSERT sealed events (numbered and hashed) in their order: the rows ``save(force_insert=True)``
    or ``bulk_create`` would write, each value prepared by its field, one statement per batch.

    One event (every :func:`record` outside a batch) goes through the sequencer's prepared cursor.
    """
    db = connections[DEFAULT_DB_ALIAS]  # resolved once: each `connection.x` is a thread-local look-up
    if len(events) == 1:
        with sequencer.prepared_cursor(db) as cursor:
            cursor.execute(_insert_sql(db, 1), _db_values(db, events[0]))
    else:
        size = max(1, db.ops.bulk_batch_size(AuditEvent._meta.concrete_fields, events) or len(events))
        with db.cursor() as cursor:
            for start in range(0, len(events), size):
                chunk = events[start : start + size]
                cursor.execute(_insert_sql(db, len(chunk)), [v for e in chunk for v in _db_values(db, e)])
    for event in events:
        event._state.adding = False
        event._state.db = db.alias


def _db_values(db: BaseDatabaseWrapper, event: AuditEvent) -> list[Any]:
    """The column values of ``event`` as its fields prepare them for ``db``.

    A ``CharField`` returns an exact ``str`` unchanged (``to_python``), an ``IntegerField`` None,
    on every backend: those columns skip the field's three calls.
    """
    values = []
    for field in AuditEvent._meta.concrete_fields:
        value = getattr(event, field.attname)
        if not (type(value) is str and isinstance(field, CharField)) and not (
            value is None and isinstance(field, IntegerField)
        ):
            value = field.get_db_prep_save(value, db)
        values.append(value)
    return values


def _append_one(db: BaseDatabaseWrapper, event: AuditEvent) -> bool:
    """PostgreSQL: number, hash and insert one event in one statement, so one round trip.

    The INSERT selects its row from ``audit_allocate(1)`` (the sequencer's lock, xid and number,
    in that order, in this transaction: :mod:`audit.sequencer`'s argument is unchanged) and hashes
    the leaf in the server: SHA-256 of the leaf's bytes before the number, the number, and the
    bytes after it (:func:`audit.leaf.leaf_parts`). The hash the row got is checked against the
    one computed here; a difference (impossible unless the encodings part) refuses the append.
    """
    parts = leaf_parts(*[getattr(event, name) for name in LEAF_FIELDS[1:]])
    if parts is None:
        return False  # the leaf cannot be split around its number: the two-statement path
    before, after = parts
    values = _db_values(db, event)[1:-1]  # seq and leaf_hash come from the statement
    try:
        with sequencer.prepared_cursor(db) as cursor:
            cursor.execute(_append_one_sql(db), [*values, before, after])
            seq, stored_hash = cursor.fetchone()
    except InterfaceError as exc:  # a killed connection, reported as sequencer.allocate() does
        raise OperationalError(f"the database connection was lost: {exc}") from exc
    event.seq = seq
    event.leaf_hash = sha256(before + str(seq).encode() + after).hexdigest()
    if event.leaf_hash != stored_hash:
        db.set_rollback(True)  # the row must not commit, even if the caller swallows the error
        raise DataError(f"audit event {seq}: the database hashed its leaf differently; not appended")
    event._state.adding = False
    event._state.db = db.alias
    return True


def _append_one_sql(db: BaseDatabaseWrapper) -> str:
    key = (db.alias, 0)
    sql = _INSERT_SQL.get(key)
    if sql is None:
        quote = db.ops.quote_name
        fields = AuditEvent._meta.concrete_fields
        # Typed placeholders: a SELECT list does not take its types from the target columns. Text,
        # not varchar(n), for strings: assigning text to a varchar(n) column refuses a value that
        # is too long, as the plain INSERT does, where a cast to varchar(n) would cut it.
        values = [f"%s::{'text' if isinstance(f, CharField) else f.db_type(db)}" for f in fields[1:-1]]
        # Built from the model's own table and column names and placeholders only: no value is spliced.
        sql = _INSERT_SQL[key] = (
            f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
            f"SELECT number, {', '.join(values)}, "
            "encode(sha256(%s::bytea || convert_to(number::text, 'UTF8') || %s::bytea), 'hex') "
            f"FROM audit_allocate(1) AS number RETURNING {quote('seq')}, {quote('leaf_hash')}"
        )
    return sql


def _insert_sql(db: BaseDatabaseWrapper, rows: int) -> str:
    key = (db.alias, rows)
    sql = _INSERT_SQL.get(key)
    if sql is None:
        quote = db.ops.quote_name
        fields = AuditEvent._meta.concrete_fields
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        # Built from the model's own table and column names and placeholders only: no value is spliced.
        sql = _INSERT_SQL[key] = (
            f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES {', '.join([row] * rows)}"
        )
    return sql


def build_event(
    seq: int,
    recorded_at: dt.datetime,
    actor_fields: dict[str, Any],
    context: AuditContext,
    entry: dict[str, Any],
) -> AuditEvent:
    """An unsaved event with its leaf hash; ``entry`` holds what :func:`record` takes as keywords."""
    return seal(unsealed_event(recorded_at, actor_fields, context, entry), seq)


def seal(event: AuditEvent, seq: int) -> AuditEvent:
    """Give an unsealed event its sequence number and the leaf hash that covers it."""
    event.seq = seq
    # leaf_digest is canonical_json(event.leaf_document()) hashed, without building the document.
    event.leaf_hash = leaf_digest(*[getattr(event, name) for name in LEAF_FIELDS]).hex()
    return event


def unsealed_event(
    recorded_at: dt.datetime,
    actor_fields: dict[str, Any],
    context: AuditContext,
    entry: dict[str, Any],
) -> AuditEvent:
    """An unsaved event without its number and hash yet (see :func:`seal`)."""
    object_id = entry.get("object_id", "")
    # Positional, in COLUMNS order (Model.__init__ with keywords looks every field up by name, a
    # tenth of an append's client CPU); seq None and leaf_hash "" as the keyword form leaves them.
    return AuditEvent(
        None,
        recorded_at,
        actor_fields["actor_kind"],
        actor_fields["actor_id"],
        actor_fields["actor_username"],
        entry["action"],
        entry.get("object_type", ""),
        str(object_id) if object_id not in (None, "") else "",
        entry.get("patient_id"),
        entry.get("study_id"),
        entry.get("details") or {},
        context.client_address,
        context.user_agent[:MAX_USER_AGENT],
        context.channel,
        "",
    )


def current_root() -> tuple[int, bytes]:
    """The integrated tree's size and Merkle root (SHA-256 of nothing for the empty log).

    Events recorded but not yet integrated are not counted: see :func:`audit.integrator.integrate`.
    """
    head = AuditLogHead.objects.filter(pk=1).first()
    if head is None:
        return 0, CompactRange().root()
    return head.size, CompactRange.from_state(head.frontier).root()
