"""``audit/``: every audit event that touches the scope, each with its RFC 9162 inclusion proof.

Each event is proven against the first signed checkpoint that covers it (the earliest moment the log
committed to it), and every checkpoint used is chained to the newest one by a consistency proof, so
one pinned key and one published checkpoint are enough to trust the whole file. A fresh checkpoint is
signed at build time when the log has grown since the last one, so the export's own request is covered.

De-identified packages cannot carry the events themselves (actors, addresses and record ids are
identifying): ``audit/events.jsonl`` is then empty and ``audit/redacted_events.jsonl`` lists each
event's sequence number, leaf hash and inclusion proof, which the verifier also checks.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db.models import Q

from audit import checkpoints as audit_checkpoints
from audit.canonical import canonical_json
from audit.merkle import (
    consistency_proof_from_nodes,
    consistency_proof_nodes,
    inclusion_proof_from_nodes,
    inclusion_proof_nodes,
    leaf_hash,
)
from audit.models import LEAF_FIELDS, AuditEvent, AuditNode, Checkpoint, leaf_document
from audit.signing import key_fingerprint
from portal.legal.export.errors import ExportError
from portal.legal.export.zipwriter import PackageWriter

EVENTS_NAME = "audit/events.jsonl"
REDACTED_NAME = "audit/redacted_events.jsonl"
CONSISTENCY_NAME = "audit/consistency.json"
_BATCH = 200
_IN_CHUNK = 500


@dataclass
class ScopeRefs:
    """What the events must touch: ids gathered while the records were written."""

    study_ids: list[int] = field(default_factory=list)
    patient_ids: set[int] = field(default_factory=set)
    objects: dict[str, set[str]] = field(default_factory=dict)

    def add(self, object_type: str, object_id: object) -> None:
        """Remember one object reference (type + id, as audit events store them)."""
        self.objects.setdefault(object_type, set()).add(str(object_id))


def _chunks(items: list, size: int = _IN_CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def event_seqs(refs: ScopeRefs, up_to: int) -> list[int]:
    """Sequence numbers (ascending, below ``up_to``) of the events touching the scope."""
    found: set[int] = set()
    base = AuditEvent.objects.filter(seq__lt=up_to)
    for ids in _chunks(refs.study_ids):
        found.update(base.filter(study_id__in=ids).values_list("seq", flat=True))
    # Patient-level events (patient created, demographics updated) carry no study.
    for ids in _chunks(sorted(refs.patient_ids)):
        found.update(base.filter(patient_id__in=ids, study_id__isnull=True).values_list("seq", flat=True))
    for object_type, object_ids in refs.objects.items():
        for ids in _chunks(sorted(object_ids)):
            found.update(
                base.filter(Q(object_type=object_type) & Q(object_id__in=ids)).values_list("seq", flat=True)
            )
    return sorted(found)


def _reader(needed: Iterable[tuple[int, int]]):  # a merkle.NodeReader
    """Fetch the given perfect-subtree hashes in a few queries and serve them to the proof builders."""
    needed = set(needed)
    found: dict[tuple[int, int], bytes] = {}
    leaves = sorted(index for level, index in needed if level == 0)
    for ids in _chunks(leaves):
        for seq, digest in AuditEvent.objects.filter(seq__in=ids).values_list("seq", "leaf_hash"):
            found[(0, seq)] = bytes.fromhex(digest)
    by_level: dict[int, list[int]] = {}
    for level, index in needed:
        if level:
            by_level.setdefault(level, []).append(index)
    for level, indexes in by_level.items():
        for ids in _chunks(sorted(indexes)):
            rows = AuditNode.objects.filter(level=level, index__in=ids).values_list("index", "hash")
            for index, digest in rows:
                found[(level, index)] = bytes.fromhex(digest)

    def get_node(level: int, index: int) -> bytes:
        try:
            return found[(level, index)]
        except KeyError:
            raise ExportError(f"audit log node ({level}, {index}) is missing; run verify_audit") from None

    return get_node


def _checkpoint_json(cp: Checkpoint) -> dict:
    return {
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash,
        "timestamp_ms": cp.timestamp_ms,
        "signature": cp.signature,
    }


def write_audit(writer: PackageWriter, refs: ScopeRefs, *, redacted: bool) -> tuple[list[dict], list[int]]:
    """Write the audit files; return the checkpoints (manifest form) used and the exported seqs."""
    audit_checkpoints.create_checkpoint()  # no-op when nothing was appended since the last one
    fingerprint = key_fingerprint(audit_checkpoints.signing_key().public_key())
    # Only checkpoints signed by the key the package carries can be verified with it.
    sizes = list(
        Checkpoint.objects.filter(key_fingerprint=fingerprint)
        .order_by("tree_size")
        .values_list("tree_size", flat=True)
    )
    if not sizes:
        raise ExportError("no signed checkpoint of the audit log exists for the current signing key")
    latest = sizes[-1]
    seqs = event_seqs(refs, latest)

    used: set[int] = {latest}
    if redacted:
        writer.write_bytes(EVENTS_NAME, b"", media_type="application/jsonl")
    with writer.open(REDACTED_NAME if redacted else EVENTS_NAME, media_type="application/jsonl") as out:
        for batch in _chunks(seqs, _BATCH):
            targets = {seq: sizes[bisect.bisect_right(sizes, seq)] for seq in batch}
            used.update(targets.values())
            get_node = _reader(n for seq, size in targets.items() for n in inclusion_proof_nodes(seq, size))
            rows = (
                AuditEvent.objects.filter(seq__in=batch)
                .order_by("seq")
                .values_list(*LEAF_FIELDS, "leaf_hash")
            )
            for row in rows:
                seq, stored = row[0], row[-1]
                document = leaf_document(*row[:-1])
                if leaf_hash(canonical_json(document)).hex() != stored:
                    raise ExportError(f"audit event {seq} does not match its leaf hash; run verify_audit")
                size = targets[seq]
                proof = [h.hex() for h in inclusion_proof_from_nodes(get_node, seq, size)]
                record = {
                    "seq": seq,
                    "leaf_hash": stored,
                    "inclusion_proof": proof,
                    "checkpoint_tree_size": size,
                }
                if not redacted:
                    record["event"] = document
                out.write(canonical_json(record) + b"\n")

    chosen = list(
        Checkpoint.objects.filter(key_fingerprint=fingerprint, tree_size__in=used).order_by("tree_size")
    )
    pairs = list(zip(chosen, chosen[1:], strict=False))
    get_node = _reader(n for a, b in pairs for n in consistency_proof_nodes(a.tree_size, b.tree_size))
    consistency = [
        {
            "old_size": a.tree_size,
            "new_size": b.tree_size,
            "proof": [h.hex() for h in consistency_proof_from_nodes(get_node, a.tree_size, b.tree_size)],
        }
        for a, b in pairs
    ]
    writer.write_json(CONSISTENCY_NAME, consistency)
    return [_checkpoint_json(cp) for cp in chosen], seqs
