"""Appending to the audit log: :func:`record` is the one way every app writes an audit event.

An event is written inside the caller's transaction (``transaction.atomic`` is required): the change
and its event commit together or not at all. The log head row is locked for the rest of that
transaction, which assigns gapless sequence numbers and keeps the Merkle tree fork-free.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.canonical import canonical_json
from audit.merkle import CompactRange, leaf_hash
from audit.models import ActorKind, AuditEvent, AuditLogHead, AuditNode

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
    head = locked_head()
    event = AuditEvent(
        seq=head.size,
        recorded_at=timezone.now(),
        action=action,
        object_type=object_type,
        object_id=str(object_id) if object_id not in (None, "") else "",
        patient_id=patient_id,
        study_id=study_id,
        details=details or {},
        client_address=context.client_address,
        user_agent=context.user_agent[:MAX_USER_AGENT],
        channel=context.channel,
        **actor_fields_of(actor),
    )
    leaf = leaf_hash(canonical_json(event.leaf_document()))
    event.leaf_hash = leaf.hex()
    event.save(force_insert=True)
    _append_to_tree(head, leaf)
    return event


def locked_head() -> AuditLogHead:
    """The log head row, locked until the end of the caller's transaction (created on first use)."""
    head = AuditLogHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        AuditLogHead.objects.get_or_create(pk=1)
        head = AuditLogHead.objects.select_for_update().get(pk=1)
    return head


def _append_to_tree(head: AuditLogHead, leaf: bytes) -> None:
    """Append the leaf to the frontier and store every perfect subtree it completes (level >= 1)."""
    accumulator = CompactRange.from_state(head.frontier)
    created = accumulator.append(leaf)
    nodes = [AuditNode(level=n.level, index=n.index, hash=n.hash.hex()) for n in created if n.level > 0]
    if nodes:
        AuditNode.objects.bulk_create(nodes)
    state = [list(item) for item in accumulator.to_state()]
    AuditLogHead.objects.filter(pk=1).update(size=accumulator.size, frontier=state)
    head.size, head.frontier = accumulator.size, state


def current_root() -> tuple[int, bytes]:
    """The log's current size and Merkle root (SHA-256 of nothing for the empty log)."""
    with transaction.atomic():
        head = locked_head()
        return head.size, CompactRange.from_state(head.frontier).root()
