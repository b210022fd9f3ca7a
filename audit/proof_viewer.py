"""The auditor's proof viewer: one event, or every event about one study, proven against a signed
checkpoint, drawn level by level; the consistency between two checkpoints; and the same evidence as
a ``concordance-proof-v1`` JSON document that ``verify_package.py`` checks offline.

Nothing here trusts the stored leaf hashes for the drawing: each leaf is recomputed from the event's
columns and walked up its inclusion path, so a rewritten event shows as a path that does not reach
the signed root (and its downloaded proof verifies as INVALID).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.utils import timezone

from audit import checkpoints
from audit.canonical import canonical_json
from audit.merkle import leaf_hash, node_hash, verify_consistency
from audit.models import LEAF_FIELDS, AuditEvent, Checkpoint, leaf_document
from audit.signing import key_fingerprint, public_key_pem
from audit.verify_package import PROOF_FORMAT

#: At most this many events of one study in a view or a document (the legal export has them all).
MAX_EVENTS = 200


class ProofError(Exception):
    """Why no proof can be shown, with the HTTP status that says so."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclasses.dataclass(frozen=True)
class PathStep:
    """One level of an inclusion path: the sibling subtree's hash, on which side it joins, and the
    parent it makes. Ranges are the leaves ``[lo, hi)`` each node covers."""

    level: int
    side: str  # "left" or "right": where the sibling sits
    sibling: str
    sibling_range: tuple[int, int]
    node: str
    node_range: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class EventProof:
    """An event, its leaf (stored and recomputed), its inclusion proof and the path it draws."""

    seq: int
    document: dict[str, Any]
    stored_leaf: str
    leaf: str  # recomputed from the event's columns
    proof: tuple[str, ...]
    steps: tuple[PathStep, ...]
    root: str  # where the path ends

    def reaches(self, signed_root: str) -> bool:
        """The recomputed leaf matches the stored one and its path ends at ``signed_root``."""
        return self.leaf == self.stored_leaf and self.root == signed_root


@dataclasses.dataclass(frozen=True)
class Consistency:
    """The RFC 9162 consistency proof between two signed checkpoints, and whether it verifies."""

    old: Checkpoint
    new: Checkpoint
    proof: tuple[str, ...]
    verified: bool


@dataclasses.dataclass
class ProofSet:
    """What the viewer shows and the download carries."""

    subject: dict[str, Any]
    checkpoint: Checkpoint
    signature_valid: bool
    events: list[EventProof]
    uncovered: int = 0  # events of the subject recorded after the checkpoint
    truncated: bool = False  # more than MAX_EVENTS events: only the first are shown
    consistency: Consistency | None = None

    @property
    def all_verified(self) -> bool:
        """Every drawn path reaches the signed root, the signature holds and so does the consistency."""
        root = self.checkpoint.root_hash
        consistent = self.consistency is None or self.consistency.verified
        return self.signature_valid and consistent and all(e.reaches(root) for e in self.events)

    def document(self) -> dict[str, Any]:
        """The ``concordance-proof-v1`` document (see ``audit/verify_package.py``)."""
        public = checkpoints.signing_key().public_key()
        chain = [self.consistency.old, self.checkpoint] if self.consistency else [self.checkpoint]
        consistency = (
            [
                {
                    "old_size": self.consistency.old.tree_size,
                    "new_size": self.checkpoint.tree_size,
                    "proof": list(self.consistency.proof),
                }
            ]
            if self.consistency
            else []
        )
        return {
            "format": PROOF_FORMAT,
            "created_at": timezone.now().isoformat().replace("+00:00", "Z"),
            "subject": self.subject,
            "public_key_pem": public_key_pem(public),
            "public_key_fingerprint": key_fingerprint(public),
            "checkpoints": [_checkpoint_json(cp) for cp in chain],
            "consistency": consistency,
            "events": [
                {
                    "seq": e.seq,
                    "leaf_hash": e.stored_leaf,
                    "event": e.document,
                    "inclusion_proof": list(e.proof),
                    "checkpoint_tree_size": self.checkpoint.tree_size,
                }
                for e in self.events
            ],
        }


def _checkpoint_json(cp: Checkpoint) -> dict[str, Any]:
    return {
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash,
        "timestamp_ms": cp.timestamp_ms,
        "signature": cp.signature,
    }


def current_fingerprint() -> str:
    """The fingerprint of the key that signs checkpoints now; ProofError 503 when it cannot be read."""
    try:
        return key_fingerprint(checkpoints.signing_key().public_key())
    except (FileNotFoundError, PermissionError, ValueError) as exc:
        raise ProofError(f"the signing key cannot be read: {exc}", status=503) from None


def recent_checkpoints(limit: int = 20) -> list[Checkpoint]:
    """The newest checkpoints signed with the current key, newest first (the viewer's choices)."""
    return list(
        Checkpoint.objects.filter(key_fingerprint=current_fingerprint()).order_by("-tree_size")[:limit]
    )


def checkpoint_of(tree_size: int | None) -> Checkpoint:
    """The checkpoint of ``tree_size`` signed with the current key, or the newest one."""
    signed = Checkpoint.objects.filter(key_fingerprint=current_fingerprint())
    found = (
        signed.filter(tree_size=tree_size) if tree_size is not None else signed.order_by("-tree_size")
    ).first()
    if found is None:
        raise ProofError(
            f"no signed checkpoint of tree size {tree_size}"
            if tree_size is not None
            else "no checkpoint signed yet"
        )
    return found


def prove_event(seq: int, *, tree_size: int | None = None, since: int | None = None) -> ProofSet:
    """The proof of event ``seq`` against checkpoint ``tree_size`` (default: the newest)."""
    if not AuditEvent.objects.filter(seq=seq).exists():
        raise ProofError(f"no audit event {seq} has been recorded")
    return _prove([seq], {"kind": "event", "seq": seq}, tree_size, since)


def prove_study(
    study_id: int, label: str, *, tree_size: int | None = None, since: int | None = None
) -> ProofSet:
    """The proofs of the events about one study (``label``: how the auditor named it)."""
    seqs = list(
        AuditEvent.objects.filter(study_id=study_id)
        .order_by("seq")
        .values_list("seq", flat=True)[: MAX_EVENTS + 1]
    )
    if not seqs:
        raise ProofError("no audit event mentions this study")
    proofs = _prove(seqs[:MAX_EVENTS], {"kind": "study", "study": label}, tree_size, since)
    proofs.truncated = len(seqs) > MAX_EVENTS
    return proofs


def _prove(seqs: list[int], subject: dict[str, Any], tree_size: int | None, since: int | None) -> ProofSet:
    checkpoint = checkpoint_of(tree_size)
    covered = [seq for seq in seqs if seq < checkpoint.tree_size]
    found = checkpoints.leaves_and_inclusion_proofs(covered, checkpoint.tree_size) if covered else {}
    rows = AuditEvent.objects.filter(seq__in=covered).order_by("seq").values_list(*LEAF_FIELDS)
    events = [_event_proof(row, *found[row[0]], checkpoint.tree_size) for row in rows]
    proofs = ProofSet(
        subject=subject,
        checkpoint=checkpoint,
        signature_valid=checkpoints.checkpoint_signature_valid(checkpoint),
        events=events,
        uncovered=len(seqs) - len(covered),
    )
    if since is not None:
        proofs.consistency = consistency_between(since, checkpoint)
    return proofs


def consistency_between(old_size: int, new: Checkpoint) -> Consistency:
    """The consistency proof from the checkpoint of ``old_size`` to ``new``."""
    if old_size >= new.tree_size:
        raise ProofError("the earlier checkpoint must be smaller than the later one", status=400)
    old = checkpoint_of(old_size)
    proof = checkpoints.consistency_proof(old.tree_size, new.tree_size)
    verified = verify_consistency(
        old.tree_size, new.tree_size, bytes.fromhex(old.root_hash), bytes.fromhex(new.root_hash), proof
    ) and checkpoints.checkpoint_signature_valid(old)
    return Consistency(old, new, tuple(h.hex() for h in proof), verified)


def _event_proof(row: tuple, stored: bytes, proof: list[bytes], tree_size: int) -> EventProof:
    document = leaf_document(*row)
    leaf = leaf_hash(canonical_json(document))
    steps = inclusion_steps(leaf, row[0], tree_size, proof)
    root = steps[-1].node if steps else leaf.hex()
    return EventProof(row[0], document, stored.hex(), leaf.hex(), tuple(h.hex() for h in proof), steps, root)


def sibling_ranges(index: int, tree_size: int) -> list[tuple[int, int]]:
    """The leaf range ``[lo, hi)`` of each inclusion-proof hash of leaf ``index``, bottom up (the
    RFC 6962 PATH split: the largest power of two below the size goes left)."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, tree_size
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo = lo + k
    return ranges[::-1]


def inclusion_steps(leaf: bytes, index: int, tree_size: int, proof: list[bytes]) -> tuple[PathStep, ...]:
    """Walk ``leaf`` up its inclusion ``proof``: one :class:`PathStep` per level, to the root."""
    ranges = sibling_ranges(index, tree_size)
    if len(ranges) != len(proof):
        raise ProofError(f"the inclusion proof has {len(proof)} hashes, the tree needs {len(ranges)}", 500)
    steps, node, span = [], leaf, (index, index + 1)
    for level, (sibling, (lo, hi)) in enumerate(zip(proof, ranges, strict=True), start=1):
        left = lo < span[0]
        node = node_hash(sibling, node) if left else node_hash(node, sibling)
        span = (min(lo, span[0]), max(hi, span[1]))
        steps.append(PathStep(level, "left" if left else "right", sibling.hex(), (lo, hi), node.hex(), span))
    return tuple(steps)
