"""Inclusion proof look-up for one event: the proof once it is integrated, or a clear "not yet".

This is the one function the audit API (``GET .../inclusion-proof``) and the auditor's proof viewer
call: an event that is recorded but not yet in the tree gets ``pending`` with the expected delay
(HTTP 202 with Retry-After, say), an unknown number ``unknown`` (404).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.db import connection

from audit import checkpoints, integrator
from audit.models import AuditEvent, AuditLogHead

INTEGRATED, PENDING, UNKNOWN = "integrated", "pending", "unknown"


@dataclasses.dataclass(frozen=True)
class InclusionAnswer:
    """The answer for one event: its proof, or why there is none yet."""

    status: str  # INTEGRATED, PENDING or UNKNOWN
    seq: int
    tree_size: int | None = None
    leaf_hash: str | None = None
    proof: tuple[str, ...] = ()
    retry_after_s: int | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the API."""
        return {**dataclasses.asdict(self), "proof": list(self.proof)}


def inclusion_lookup(seq: int, tree_size: int | None = None) -> InclusionAnswer:
    """The RFC 9162 inclusion proof of event ``seq`` in the tree of ``tree_size`` leaves.

    ``tree_size`` defaults to the latest signed checkpoint that covers the event, else to the
    integrated tree. Raises ``ValueError`` for a negative ``seq`` or a ``tree_size`` not above it.
    """
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError("seq must be a non-negative integer")
    if tree_size is not None and (isinstance(tree_size, bool) or not isinstance(tree_size, int)):
        raise ValueError("tree_size must be an integer")
    if tree_size is not None and tree_size <= seq:
        raise ValueError("tree_size must be above seq")
    integrated, covering = _sizes(seq)
    if tree_size is None:
        tree_size = covering if covering is not None else integrated
    if seq < integrated and tree_size <= integrated:
        try:
            leaf, proof = checkpoints.leaf_and_inclusion_proof(seq, tree_size)
        except LookupError as exc:  # a stored row is gone: verify_audit will say more
            return InclusionAnswer(UNKNOWN, seq, message=f"cannot build the proof: {exc}")
        return InclusionAnswer(
            INTEGRATED, seq, tree_size, leaf.hex(), tuple(h.hex() for h in proof), None, "integrated"
        )
    leaf = AuditEvent.objects.filter(seq=seq).values_list("leaf_hash", flat=True).first()
    if leaf is None:
        return InclusionAnswer(UNKNOWN, seq, message=f"no audit event {seq} has been committed")
    delay = integrator.expected_delay_s(AuditLogHead.objects.filter(pk=1).first())
    message = (
        f"audit event {seq} is recorded but not yet integrated into the Merkle tree "
        f"(integrated: {integrated} events); "
        + (f"expected within {delay} s" if delay is not None else "the integrator is not running")
    )
    return InclusionAnswer(PENDING, seq, tree_size, leaf, retry_after_s=delay, message=message)


def _sizes(seq: int) -> tuple[int, int | None]:
    """The integrated tree's size (0 before the first integration) and the size of the latest signed
    checkpoint that covers ``seq`` (None if none does yet), in one statement: with the nodes' query,
    an integrated event's proof is two round trips. Plain SQL: the ORM's compilation of the same
    query cost more CPU than the rest of the proof."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT size FROM audit_auditloghead WHERE id = 1), "
            "(SELECT max(tree_size) FROM audit_checkpoint WHERE tree_size > %s)",
            [seq],
        )
        size, covering = cursor.fetchone()
    return size or 0, covering
