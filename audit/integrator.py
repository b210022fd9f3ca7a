"""The integrator: adds committed events to the Merkle tree, batch by batch, in ``seq`` order.

Requests only insert events (:func:`audit.log.record`). A pass of the integrator, run by the dedicated
process (``manage.py audit_integrator``) or by Celery (``audit.tasks.integrate_log``), does in ONE
transaction: lock the log head row (the lease: a second integrator skips the pass, and a killed one
releases it with its connection), read the events after the integrated size in ``seq`` order, write a
void leaf for every number the sequencer proves abandoned (:mod:`audit.sequencer`), append the leaves
to the frontier, store every perfect subtree they complete (``AuditNode``) and move the head on.

Crash safety follows from that single transaction: a pass killed at any point (``kill -9``, a lost
connection, a database restart) leaves the head, the nodes and the voids exactly as before the pass,
and the next pass redoes it from the same head. Leaves are only ever appended after the head's size,
in ``seq`` order, so no signed checkpoint can be contradicted.
"""

from __future__ import annotations

import dataclasses
import time

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit import sequencer
from audit.log import AuditContext, actor_fields_of, build_event
from audit.merkle import CompactRange
from audit.models import AuditEvent, AuditLogHead, AuditNode

#: The action of the leaf that fills a sequence number released by a transaction that never committed.
VOID_ACTION = "audit.sequence_void"
VOID_DETAILS = {"reason": "sequence number released by a transaction that did not commit"}
VOID_CONTEXT = AuditContext(channel="audit.integrator")
#: Leaves per pass: one pass is one transaction, so this bounds the work a crash throws away.
DEFAULT_BATCH = 20_000
#: Seconds between passes of the dedicated integrator when it has caught up. An event's integration
#: delay is about this plus a pass (a pass of 750 leaves, 0.25 s at 3,000 appends/s, is ~30 ms), and
#: an idle pass costs ~2 ms of CPU (docs/audit.md): 0.5 s left the p95 delay at the 1 s aim's edge.
INTERVAL_S = 0.25


@dataclasses.dataclass(frozen=True)
class Pass:
    """What one integration pass did."""

    busy: bool = False  # another integrator held the lease; nothing was done
    integrated: int = 0  # leaves appended to the tree (voids included)
    voided: int = 0  # of which void leaves
    size: int = 0  # the tree's size after the pass
    waiting_at: int | None = None  # the first missing seq that may still be committed


def integrate(*, max_batch: int = DEFAULT_BATCH, hole_wait_s: float = 0.0, wait: bool = False) -> Pass:
    """Run one pass (at most ``max_batch`` leaves). ``hole_wait_s`` > 0 lets the pass wait that long
    for a blocking hole to be proven abandoned; ``wait`` waits for the lease instead of skipping.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    fresh = sequencer.take_fence() if not connection.in_atomic_block else (None, "")
    with transaction.atomic():
        head = lease(wait=wait)
        if head is None:
            return Pass(busy=True)
        bound, fence = _settled_bound(head, fresh)
        leaves, waiting = _plan(head.size, max_batch, bound)
        deadline = time.monotonic() + hole_wait_s
        # A hole blocks (waiting), or numbers were handed out beyond the last visible event (the
        # fence's L reaches past it): one check, or several within hole_wait_s, may settle them.
        while fence[0] is not None and fence[0] >= (
            waiting if waiting is not None else head.size + len(leaves)
        ):
            if sequencer.fence_settled(fence[1]):
                bound, fence = max(bound, fence[0] + 1), (None, "")
                leaves, waiting = _plan(head.size, max_batch, bound)
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        voided = _apply(head, leaves, fence)
        return Pass(integrated=len(leaves), voided=voided, size=head.size, waiting_at=waiting)


def integrate_all(*, hole_wait_s: float = 0.0, max_seconds: float = 60.0) -> Pass:
    """Passes until the tree has caught up with the committed events (or ``max_seconds`` passed)."""
    deadline = time.monotonic() + max_seconds
    total = voided = 0
    while True:
        step = integrate(hole_wait_s=hole_wait_s, wait=True)
        total, voided = total + step.integrated, voided + step.voided
        if step.integrated < DEFAULT_BATCH or time.monotonic() >= deadline:
            return dataclasses.replace(step, integrated=total, voided=voided)


def lease(*, wait: bool) -> AuditLogHead | None:
    """The log head, locked until the end of the current transaction; None when another integrator
    holds it and ``wait`` is false. Created on first use (and again after a flush).
    """
    query = AuditLogHead.objects.select_for_update(skip_locked=not wait).filter(pk=1)
    head = query.first()
    if head is None:
        AuditLogHead.objects.get_or_create(pk=1)
        head = query.first()
    return head


def _settled_bound(head: AuditLogHead, fresh: tuple[int | None, str]) -> tuple[int, tuple[int | None, str]]:
    """Every seq below the returned bound is final; and the fence to keep for the next pass.

    A stored fence is kept until it settles (the transactions it waits for only finish, so it
    settles however busy the log is); then it is consumed and ``fresh`` (taken before this pass's
    transaction) takes its place.
    """
    bound = head.size
    if head.fence_seq is not None and head.fence_xid:
        if not sequencer.fence_settled(head.fence_xid):
            return bound, (head.fence_seq, head.fence_xid)
        bound = max(bound, head.fence_seq + 1)
    return bound, fresh


def _plan(start: int, limit: int, bound: int) -> tuple[list[bytes | None], int | None]:
    """The next leaves from ``start``: stored leaf hashes in ``seq`` order, ``None`` for an abandoned
    number below ``bound``; stops at the first missing number that may still be committed.
    """
    rows = (
        AuditEvent.objects.filter(seq__gte=start, seq__lt=start + limit)
        .order_by("seq")
        .values_list("seq", "leaf_hash")
    )
    leaves: list[bytes | None] = []
    expected = start
    for seq, digest in rows.iterator(chunk_size=5_000):
        while expected < seq:
            if expected >= bound:
                return leaves, expected
            leaves.append(None)
            expected += 1
        leaves.append(bytes.fromhex(digest))
        expected += 1
    while expected < min(bound, start + limit):
        leaves.append(None)
        expected += 1
    return leaves, None


def _apply(head: AuditLogHead, leaves: list[bytes | None], fence: tuple[int | None, str]) -> int:
    """Write the voids, the completed subtrees and the new head; return the number of voids."""
    accumulator = CompactRange.from_state(head.frontier)
    if accumulator.size != head.size:
        raise RuntimeError(
            f"log head frontier covers {accumulator.size} leaves but its size says {head.size}"
        )
    now = timezone.now()
    system = actor_fields_of(None)
    voids: list[AuditEvent] = []
    nodes: list[AuditNode] = []
    for digest in leaves:
        if digest is None:
            void = build_event(
                accumulator.size, now, system, VOID_CONTEXT, {"action": VOID_ACTION, "details": VOID_DETAILS}
            )
            voids.append(void)
            digest = bytes.fromhex(void.leaf_hash)
        nodes.extend(
            AuditNode(level=n.level, index=n.index, hash=n.hash.hex())
            for n in accumulator.append(digest)
            if n.level
        )
    AuditEvent.objects.bulk_create(voids, batch_size=1_000)
    AuditNode.objects.bulk_create(nodes, batch_size=1_000)
    head.size, head.frontier = accumulator.size, [list(item) for item in accumulator.to_state()]
    head.fence_seq, head.fence_xid = fence
    if leaves:
        head.integrated_at = now
    AuditLogHead.objects.filter(pk=1).update(
        size=head.size,
        frontier=head.frontier,
        fence_seq=head.fence_seq,
        fence_xid=head.fence_xid,
        integrated_at=head.integrated_at,
    )
    return len(voids)


#: With no pass for this many seconds while events wait, the integrator is reported as stalled
#: (at least three missed passes of the scheduled integration, see :func:`_schedule_s`).
STALLED_AFTER_S = 30.0


def _schedule_s() -> float:
    """Seconds between passes: the dedicated integrator's interval, or Celery beat's
    ``AUDIT_INTEGRATE_SECONDS`` where beat integrates (the demo); the slower one is the promise."""
    return max(INTERVAL_S, float(getattr(settings, "AUDIT_INTEGRATE_SECONDS", 0) or 0))


def expected_delay_s(head: AuditLogHead | None) -> int | None:
    """Seconds within which a committed event should be integrated; None if the integrator looks
    stalled (no pass for :data:`STALLED_AFTER_S` or three scheduled intervals), so a caller can say
    so instead of promising.
    """
    if head is None or head.integrated_at is None:
        return None
    idle = (timezone.now() - head.integrated_at).total_seconds()
    every = _schedule_s()
    if idle > max(STALLED_AFTER_S, 3 * every):
        return None
    return max(1, round(every + INTERVAL_S + 0.5))
