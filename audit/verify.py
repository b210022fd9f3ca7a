"""Verification of the audit log: every leaf, every checkpoint, every consistency proof.

Run by ``manage.py verify_audit`` and by a beat task; each run is stored as a VerificationRun for the
auditor's page. The check trusts nothing in the database: leaves are recomputed from the event
columns, roots from the recomputed leaves, and checkpoints are checked against the public key.

*Full* verification recomputes every integrated leaf, in one process per core over contiguous ranges
(:mod:`audit.verify_ranges`). *Incremental* verification (the default of the command and of the beat
task) resumes from the largest checkpoint a previous successful run verified: that checkpoint's
signature is checked again and the stored subtree hashes that make up its tree must fold to its
signed root, then only the events after it are recomputed. Events before it are re-read only by a
full run, which should therefore still run regularly (weekly, say).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import transaction
from django.utils import timezone

from audit import checkpoints, verify_ranges
from audit.leaf import leaf_digest
from audit.merkle import CompactRange, node_hash, verify_consistency
from audit.merkle.hashing import _fold_right
from audit.models import (
    LEAF_FIELDS,
    AuditEvent,
    AuditLogHead,
    AuditNode,
    Checkpoint,
    VerificationOrigin,
    VerificationRun,
)
from audit.signing import verify_tree_head

BATCH = 5_000
NO_CHECKPOINT = "no signed checkpoint yet"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of one verification."""

    ok: bool
    tree_size: int
    checkpoints_checked: int
    first_failure_seq: int | None = None
    message: str = ""
    # Not part of equality: where the next incremental run may start, and how it ran.
    checkpoint_size: int | None = dataclasses.field(default=None, compare=False)
    resumed_from: int | None = dataclasses.field(default=None, compare=False)
    pending: int = dataclasses.field(default=0, compare=False)

    def summary(self) -> str:
        """One line for the command's output and the auditor's page."""
        if not self.ok:
            where = f" at event {self.first_failure_seq}" if self.first_failure_seq is not None else ""
            return f"audit log FAILED verification{where}: {self.message}"
        line = f"audit log intact: {self.tree_size} events, {self.checkpoints_checked} signed checkpoints"
        line += " verified"
        if self.checkpoint_size is None:
            line += f" ({NO_CHECKPOINT})"
        if self.resumed_from is not None:
            line += f", events from {self.resumed_from} on recomputed (incremental; --full rereads all)"
        if self.pending:
            line += f"; {self.pending} recorded events not yet integrated"
        return line


def verify_log(
    *,
    full: bool = True,
    workers: int | None = None,
    parallel_min: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Verdict:
    """Verify the integrated log and its checkpoints; stop at the first failure and say where and why.

    Safe to run while writers append and the integrator integrates: the checkpoints are read first,
    then the log head, and only the events below the head's size are checked. The head only grows,
    and checkpoints are signed from it, so a checkpoint read before the head never legitimately
    covers more events than the head counts. ``progress(done, total)`` is told how many of the events
    to recompute have been so far.
    """
    pending_checkpoints = collections.deque(Checkpoint.objects.order_by("tree_size"))
    head = AuditLogHead.objects.filter(pk=1).first()
    if head is None and (pending_checkpoints or AuditNode.objects.exists()):
        return Verdict(False, 0, 0, None, "the log head is missing although events were integrated")
    size = head.size if head is not None else 0
    # The key is needed only once there is a signature to check (a new log has none, nor a key file).
    public_key = checkpoints.signing_key().public_key() if pending_checkpoints else None
    walk = _Walk(public_key)
    if not full:
        problem = walk.resume(_last_verified_checkpoint(size))
        if problem is not None:
            return walk.fail(*problem)
    while pending_checkpoints and pending_checkpoints[0].tree_size <= walk.size:
        pending_checkpoints.popleft()  # verified by an earlier run, and re-anchored by resume()
    total = size - walk.size
    if progress is not None:
        progress(0, total)
    result = verify_ranges.recompute_all(
        walk.size,
        size,
        workers=workers,
        parallel_min=parallel_min or verify_ranges.PARALLEL_MIN,
        progress=(lambda done: progress(done, total)) if progress is not None else None,
    )
    problem = walk.absorb(result.leaves, pending_checkpoints)
    if problem is not None:
        return walk.fail(*problem)
    if result.failure_seq is not None:
        return walk.fail(*_missing_or_altered(result, pending_checkpoints, size))
    if pending_checkpoints:
        return walk.fail(walk.size, _checkpoint_beyond_the_log(pending_checkpoints[0], walk.size))
    if head is not None and CompactRange.from_state(head.frontier).root() != walk.root():
        return walk.fail(None, "the log head's Merkle frontier does not match the events")
    pending = AuditEvent.objects.filter(seq__gte=size).count()
    return walk.verdict(pending)


def _missing_or_altered(
    result: verify_ranges.RangeResult, pending: collections.deque, size: int
) -> tuple[int, str]:
    """The failure of a range that stopped early, worded for the auditor."""
    seq = result.failure_seq
    if not result.truncated:
        return seq, result.failure
    if pending:
        return seq, _checkpoint_beyond_the_log(pending[0], seq)
    return seq, (
        f"event {seq} is missing: the log head counts {size} events but only "
        f"{seq} are stored (events removed from the end)"
    )


def _checkpoint_beyond_the_log(checkpoint: Checkpoint, held: int) -> str:
    return (
        f"a signed checkpoint covers {checkpoint.tree_size} events but the log "
        f"holds only {held} (events removed from the end)"
    )


def _last_verified_checkpoint(size: int) -> Checkpoint | None:
    """The largest checkpoint a previous successful run verified (and that the head still covers)."""
    run = (
        VerificationRun.objects.filter(ok=True, checkpoint_size__isnull=False, checkpoint_size__lte=size)
        .order_by("-checkpoint_size")
        .first()
    )
    return Checkpoint.objects.filter(tree_size=run.checkpoint_size).first() if run is not None else None


class _Walk:
    """The tree being rebuilt from recomputed leaves, and the checkpoints verified on the way."""

    def __init__(self, public_key: Ed25519PublicKey | None) -> None:
        self.public_key = public_key
        self.stack: list[bytes] = []  # one perfect subtree root per set bit of size, largest first
        self.size = 0
        self.checked = 0
        self.previous: Checkpoint | None = None
        self.resumed_from: int | None = None

    def root(self) -> bytes:
        """The root of the leaves absorbed so far."""
        return _fold_right(self.stack)

    def fail(self, seq: int | None, message: str) -> Verdict:
        """A failed verdict at ``seq``."""
        return Verdict(False, self.size, self.checked, seq, message)

    def verdict(self, pending: int) -> Verdict:
        """The successful verdict."""
        size = self.previous.tree_size if self.previous is not None else None
        return Verdict(True, self.size, self.checked, None, "", size, self.resumed_from, pending)

    def resume(self, base: Checkpoint | None) -> tuple[int, str] | None:
        """Start after ``base``: its signature and the stored subtrees of its tree must match it."""
        if base is None:
            return None
        problem = _check_signature(base, self.public_key)
        if problem is not None:
            return problem
        try:
            stack = checkpoints.frontier_at(base.tree_size)
        except LookupError as exc:
            return base.tree_size - 1, f"{exc} (needed at checkpoint size {base.tree_size})"
        if _fold_right(stack) != bytes.fromhex(base.root_hash):
            return base.tree_size - 1, (
                f"stored Merkle nodes disagree with the signed checkpoint at size {base.tree_size}"
            )
        self.stack, self.size, self.previous = stack, base.tree_size, base
        self.checked, self.resumed_from = 1, base.tree_size
        return None

    def absorb(self, leaves: bytes, pending: collections.deque) -> tuple[int, str] | None:
        """Append recomputed leaves, checking each checkpoint as its size is reached."""
        sha256, stack, size = hashlib.sha256, self.stack, self.size
        view = memoryview(leaves)
        for offset in range(0, len(leaves), 32):
            digest = bytes(view[offset : offset + 32])
            carry = size
            while carry & 1:  # merge the perfect subtrees this leaf completes, as a binary counter carries
                digest = sha256(b"\x01" + stack.pop() + digest).digest()
                carry >>= 1
            stack.append(digest)
            size += 1
            while pending and pending[0].tree_size == size:
                self.size = size
                checkpoint = pending.popleft()
                problem = _check_checkpoint(checkpoint, self.root(), self.previous, self.public_key)
                if problem is not None:
                    return problem
                self.checked += 1
                self.previous = checkpoint
        self.size = size
        return None


def _check_signature(checkpoint: Checkpoint, public_key: Ed25519PublicKey | None) -> tuple[int, str] | None:
    """(seq, why) unless the checkpoint is well-formed and signed by the portal's key."""
    last = checkpoint.tree_size - 1
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        signed_root = bytes.fromhex(checkpoint.root_hash)
    except ValueError:
        return last, f"checkpoint at size {checkpoint.tree_size} is malformed"
    if public_key is None or not verify_tree_head(
        public_key, checkpoint.tree_size, signed_root, checkpoint.timestamp_ms, signature
    ):
        return last, f"checkpoint at size {checkpoint.tree_size} has an invalid signature (forged)"
    return None


def _check_checkpoint(
    checkpoint: Checkpoint, root: bytes, previous: Checkpoint | None, public_key: Ed25519PublicKey | None
) -> tuple[int, str] | None:
    """Check one checkpoint against the root recomputed from the events; (seq, why) if it fails.

    The seq points at the evidence: the last event a forged or inconsistent checkpoint covers, or the
    first event that may have been rewritten when the events no longer hash to the signed root.
    """
    last = checkpoint.tree_size - 1
    problem = _check_signature(checkpoint, public_key)
    if problem is not None:
        return problem
    signed_root = bytes.fromhex(checkpoint.root_hash)
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
        digest = leaf_digest(*row)
        if row[0] % 2 == 0:
            left = digest
            continue
        if left is not None and stored.get(row[0] // 2) != node_hash(left, digest).hex():
            return row[0] - 1
        left = None
    return None


def verify_and_store(
    *,
    full: bool = True,
    workers: int | None = None,
    origin: str = VerificationOrigin.COMMAND,
    requested_by: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Verdict, VerificationRun]:
    """Verify the log (fully, or incrementally with ``full=False``) and keep the result for the
    auditor's page and for the next incremental run; ``origin`` says what asked for it."""
    started = timezone.now()
    verdict = verify_log(full=full, workers=workers, progress=progress)
    with transaction.atomic():
        run = VerificationRun.objects.create(
            started_at=started,
            finished_at=timezone.now(),
            tree_size=verdict.tree_size,
            checkpoints_checked=verdict.checkpoints_checked,
            ok=verdict.ok,
            first_failure_seq=verdict.first_failure_seq,
            message=verdict.summary(),
            checkpoint_size=verdict.checkpoint_size,
            full=verdict.resumed_from is None,
            origin=origin,
            requested_by=requested_by,
        )
    return verdict, run
