"""Full verification of the audit log: every leaf, every checkpoint, every consistency proof.

Run by ``manage.py verify_audit`` and by a nightly beat task; each run is stored as a VerificationRun
for the auditor's page. The check trusts nothing in the database: leaves are recomputed from the
event columns, roots from the recomputed leaves, and checkpoints are checked against the public key.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import transaction
from django.utils import timezone

from audit import checkpoints
from audit.canonical import canonical_json
from audit.merkle import CompactRange, leaf_hash, node_hash, verify_consistency
from audit.models import (
    LEAF_FIELDS,
    AuditEvent,
    AuditLogHead,
    AuditNode,
    Checkpoint,
    VerificationRun,
    leaf_document,
)
from audit.signing import verify_tree_head

BATCH = 5_000


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of one verification."""

    ok: bool
    tree_size: int
    checkpoints_checked: int
    first_failure_seq: int | None = None
    message: str = ""

    def summary(self) -> str:
        """One line for the command's output and the auditor's page."""
        if self.ok:
            return (
                f"audit log intact: {self.tree_size} events, {self.checkpoints_checked} signed checkpoints "
                "verified"
            )
        where = f" at event {self.first_failure_seq}" if self.first_failure_seq is not None else ""
        return f"audit log FAILED verification{where}: {self.message}"


def verify_log() -> Verdict:
    """Verify the whole log and the checkpoints; stop at the first failure and say where and why.

    Safe to run while writers append: the checkpoints are read first, then the log head, and only the
    events below the head's size are checked. Checkpoints and the head are written under the head's
    lock and the head only grows, so a checkpoint read before the head can never legitimately cover
    more events than the head counts; events appended after the head was read are left for the next
    run instead of being mistaken for a disagreement between the head and the events.
    """
    public_key = checkpoints.signing_key().public_key()
    pending = collections.deque(Checkpoint.objects.order_by("tree_size"))
    head = AuditLogHead.objects.filter(pk=1).first()
    accumulator = CompactRange()
    checked = 0
    previous: Checkpoint | None = None

    def fail(seq: int | None, message: str) -> Verdict:
        return Verdict(False, accumulator.size, checked, seq, message)

    if head is None:
        # The head row is created by the first append, in the same transaction as event 0.
        if AuditEvent.objects.exists():
            return fail(None, "the log head is missing although events are stored")
        size = 0
    else:
        size = head.size

    last_seq = -1
    for row in _event_rows(size):
        seq, stored = row[0], row[-1]
        if seq != last_seq + 1:
            return fail(last_seq + 1, f"event {last_seq + 1} is missing (next stored event is {seq})")
        last_seq = seq
        recomputed = leaf_hash(canonical_json(leaf_document(*row[:-1])))
        if recomputed.hex() != stored:
            return fail(seq, "the event's content does not match its leaf hash (altered)")
        accumulator.append(recomputed)
        while pending and pending[0].tree_size == accumulator.size:
            checkpoint = pending.popleft()
            problem = _check_checkpoint(checkpoint, accumulator.root(), previous, public_key)
            if problem is not None:
                return fail(*problem)
            checked += 1
            previous = checkpoint
    if pending:
        return fail(
            accumulator.size,
            f"a signed checkpoint covers {pending[0].tree_size} events but the log "
            f"holds only {accumulator.size} (events removed from the end)",
        )
    if accumulator.size != size:
        return fail(
            accumulator.size,
            f"event {accumulator.size} is missing: the log head counts {size} events but only "
            f"{accumulator.size} are stored (events removed from the end)",
        )
    if head is not None and CompactRange.from_state(head.frontier).root() != accumulator.root():
        return fail(None, "the log head's Merkle frontier does not match the events")
    return Verdict(True, accumulator.size, checked)


def _event_rows(size: int) -> Iterator[tuple]:
    """The leaf columns and stored leaf hash of events ``0 .. size - 1``, in order, streamed."""
    rows = AuditEvent.objects.filter(seq__lt=size).order_by("seq").values_list(*LEAF_FIELDS, "leaf_hash")
    return rows.iterator(chunk_size=BATCH)


def _check_checkpoint(
    checkpoint: Checkpoint, root: bytes, previous: Checkpoint | None, public_key: Ed25519PublicKey
) -> tuple[int, str] | None:
    """Check one checkpoint against the root recomputed from the events; (seq, why) if it fails.

    The seq points at the evidence: the last event a forged or inconsistent checkpoint covers, or the
    first event that may have been rewritten when the events no longer hash to the signed root.
    """
    last = checkpoint.tree_size - 1
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        signed_root = bytes.fromhex(checkpoint.root_hash)
    except ValueError:
        return last, f"checkpoint at size {checkpoint.tree_size} is malformed"
    if not verify_tree_head(
        public_key, checkpoint.tree_size, signed_root, checkpoint.timestamp_ms, signature
    ):
        return last, f"checkpoint at size {checkpoint.tree_size} has an invalid signature (forged)"
    if signed_root != root:
        # Events below the previous verified checkpoint hash to its signed root, so the rewrite
        # lies at or after it; the stored Merkle nodes may narrow it down to a pair of events.
        first = previous.tree_size if previous is not None else 0
        pair = _locate_rewrite(first, checkpoint.tree_size)
        where = (
            f"events {pair} and {pair + 1} no longer hash to their stored Merkle node"
            if pair is not None
            else f"an event from {first} on was rewritten"
        )
        return (
            pair if pair is not None else first,
            f"the events up to {checkpoint.tree_size} do not hash to the signed root of that checkpoint "
            f"(history rewritten: {where})",
        )
    try:
        if checkpoints.root_at(checkpoint.tree_size) != root:
            return last, f"stored Merkle nodes disagree with the events at size {checkpoint.tree_size}"
        proof = checkpoints.consistency_proof(previous.tree_size, checkpoint.tree_size) if previous else []
    except LookupError as exc:  # a stored node was deleted
        return last, f"{exc} (needed at checkpoint size {checkpoint.tree_size})"
    if previous is not None and not verify_consistency(
        previous.tree_size, checkpoint.tree_size, bytes.fromhex(previous.root_hash), signed_root, proof
    ):
        return last, (
            f"checkpoint at size {checkpoint.tree_size} is not consistent with the one at "
            f"{previous.tree_size}"
        )
    return None


def _locate_rewrite(first: int, end: int) -> int | None:
    """The first even seq ``2i`` in ``[first, end)`` whose pair of recomputed leaves does not hash to
    the stored level-1 node ``i``, or None (unpaired last event, or the nodes were rewritten too).

    Runs only after a checkpoint failed. Someone who rewrites an event and its leaf hash but not the
    perfect-subtree hashes stored when it was appended is located to a pair; the node cannot tell
    which of the two changed.
    """
    start = first - first % 2
    stored = {
        index: digest
        for index, digest in AuditNode.objects.filter(
            level=1, index__gte=start // 2, index__lt=end // 2
        ).values_list("index", "hash")
    }
    left: bytes | None = None
    rows = AuditEvent.objects.filter(seq__gte=start, seq__lt=end).order_by("seq").values_list(*LEAF_FIELDS)
    for row in rows.iterator(chunk_size=BATCH):
        digest = leaf_hash(canonical_json(leaf_document(*row)))
        if row[0] % 2 == 0:
            left = digest
            continue
        if left is not None and stored.get(row[0] // 2) != node_hash(left, digest).hex():
            return row[0] - 1
        left = None
    return None


def verify_and_store() -> tuple[Verdict, VerificationRun]:
    """Verify the log and keep the result for the auditor's page."""
    started = timezone.now()
    verdict = verify_log()
    with transaction.atomic():
        run = VerificationRun.objects.create(
            started_at=started,
            finished_at=timezone.now(),
            tree_size=verdict.tree_size,
            checkpoints_checked=verdict.checkpoints_checked,
            ok=verdict.ok,
            first_failure_seq=verdict.first_failure_seq,
            message=verdict.summary(),
        )
    return verdict, run
