"""Appending to the audit log: :func:`record` is the one way every app writes an audit event.

An event is written inside the caller's transaction (``transaction.atomic`` is required): the change
and its event commit together or not at all. Appending is one sequence number (:mod:`audit.sequencer`,
no lock held across the transaction) and one INSERT; the integrator (:mod:`audit.integrator`) adds
committed events to the Merkle tree in batches, in ``seq`` order, and signs checkpoints.

Inside :func:`batch` (one ingested message, one FHIR Bundle) ``record`` only collects the event; the
block's events are appended together when it ends, with one sequence statement and one INSERT: the
same events, in the same order, with the same timestamps and hashes as one append each.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone

from audit import sequencer
from audit.leaf import leaf_digest
from audit.merkle import CompactRange
from audit.models import LEAF_FIELDS, ActorKind, AuditEvent, AuditLogHead

MAX_USER_AGENT = 256


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
    (seq,) = sequencer.allocate(1)
    insert_events([seal(event, seq)])
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
    """Number, hash and insert unsealed events in their order: one sequence statement, one INSERT."""
    if not events:
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
    """
    fields = AuditEvent._meta.concrete_fields
    size = max(1, connection.ops.bulk_batch_size(fields, events) or len(events))
    with connection.cursor() as cursor:
        for start in range(0, len(events), size):
            chunk = events[start : start + size]
            values = [f.get_db_prep_save(getattr(e, f.attname), connection) for e in chunk for f in fields]
            cursor.execute(_insert_sql(len(chunk)), values)
    for event in events:
        event._state.adding = False
        event._state.db = connection.alias


def _insert_sql(rows: int) -> str:
    key = (connection.alias, rows)
    sql = _INSERT_SQL.get(key)
    if sql is None:
        quote = connection.ops.quote_name
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
    return AuditEvent(
        recorded_at=recorded_at,
        action=entry["action"],
        object_type=entry.get("object_type", ""),
        object_id=str(object_id) if object_id not in (None, "") else "",
        patient_id=entry.get("patient_id"),
        study_id=entry.get("study_id"),
        details=entry.get("details") or {},
        client_address=context.client_address,
        user_agent=context.user_agent[:MAX_USER_AGENT],
        channel=context.channel,
        **actor_fields,
    )


def current_root() -> tuple[int, bytes]:
    """The integrated tree's size and Merkle root (SHA-256 of nothing for the empty log).

    Events recorded but not yet integrated are not counted: see :func:`audit.integrator.integrate`.
    """
    head = AuditLogHead.objects.filter(pk=1).first()
    if head is None:
        return 0, CompactRange().root()
    return head.size, CompactRange.from_state(head.frontier).root()
