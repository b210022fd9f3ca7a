"""Full verification of the audit log: every leaf, every checkpoint, every consistency proof.

Run by ``manage.py verify_audit`` and by a nightly beat task; each run is stored as a VerificationRun
for the auditor's page. The check trusts nothing in the database: leaves are recomputed from the
event columns, roots from the recomputed leaves, and checkpoints are checked against the public key.
"""

from __future__ import annotations

import base64
import dataclasses

from django.db import transaction
from django.utils import timezone

from audit import checkpoints
from audit.canonical import canonical_json
from audit.merkle import CompactRange, leaf_hash, verify_consistency
from audit.models import LEAF_FIELDS, AuditEvent, AuditLogHead, Checkpoint, VerificationRun, leaf_document
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
    """Verify the whole log and the checkpoints; stop at the first failure and say where and why."""
    public_key = checkpoints.signing_key().public_key()
    pending = list(Checkpoint.objects.order_by("tree_size"))
    accumulator = CompactRange()
    checked = 0
    previous: Checkpoint | None = None

    def fail(seq: int | None, message: str) -> Verdict:
        return Verdict(False, accumulator.size, checked, seq, message)

    last_seq = -1
    rows = AuditEvent.objects.order_by("seq").values_list(*LEAF_FIELDS, "leaf_hash")
    for row in rows.iterator(chunk_size=BATCH):
        seq, stored = row[0], row[-1]
        if seq != last_seq + 1:
            return fail(last_seq + 1, f"event {last_seq + 1} is missing (next stored event is {seq})")
        last_seq = seq
        recomputed = leaf_hash(canonical_json(leaf_document(*row[:-1])))
        if recomputed.hex() != stored:
            return fail(seq, "the event's content does not match its leaf hash (altered)")
        accumulator.append(recomputed)
        while pending and pending[0].tree_size == accumulator.size:
            checkpoint = pending.pop(0)
            problem = _check_checkpoint(checkpoint, accumulator.root(), previous, public_key)
            if problem:
                return fail(seq, problem)
            checked += 1
            previous = checkpoint
    if pending:
        return fail(
            accumulator.size,
            f"a signed checkpoint covers {pending[0].tree_size} events but the log "
            f"holds only {accumulator.size} (events removed from the end)",
        )
    head = AuditLogHead.objects.filter(pk=1).first()
    if head is not None and head.size != accumulator.size:
        return fail(
            min(head.size, accumulator.size),
            f"the log head counts {head.size} events but {accumulator.size} are stored",
        )
    if head is not None and CompactRange.from_state(head.frontier).root() != accumulator.root():
        return fail(None, "the log head's Merkle frontier does not match the events")
    return Verdict(True, accumulator.size, checked)


def _check_checkpoint(checkpoint: Checkpoint, root: bytes, previous: Checkpoint | None, public_key) -> str:  # noqa: ANN001
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        signed_root = bytes.fromhex(checkpoint.root_hash)
    except ValueError:
        return f"checkpoint at size {checkpoint.tree_size} is malformed"
    if not verify_tree_head(
        public_key, checkpoint.tree_size, signed_root, checkpoint.timestamp_ms, signature
    ):
        return f"checkpoint at size {checkpoint.tree_size} has an invalid signature (forged)"
    if signed_root != root:
        return (
            f"the events up to {checkpoint.tree_size} do not hash to the signed root of that checkpoint "
            "(history rewritten)"
        )
    if checkpoints.root_at(checkpoint.tree_size) != root:
        return f"stored Merkle nodes disagree with the events at size {checkpoint.tree_size}"
    if previous is not None:
        proof = checkpoints.consistency_proof(previous.tree_size, checkpoint.tree_size)
        if not verify_consistency(
            previous.tree_size, checkpoint.tree_size, bytes.fromhex(previous.root_hash), signed_root, proof
        ):
            return (
                f"checkpoint at size {checkpoint.tree_size} is not consistent with the one at "
                f"{previous.tree_size}"
            )
    return ""


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
