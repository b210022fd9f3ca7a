"""Signed checkpoints (tree heads) and Merkle proofs served from the database.

Proofs read only the O(log n) perfect-subtree hashes they need (leaves from AuditEvent, higher levels
from AuditNode), in one query, whatever the size of the log.
"""

from __future__ import annotations

import base64
import functools
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import connection, transaction

from audit import integrator
from audit.merkle import (
    CompactRange,
    consistency_proof_from_nodes,
    consistency_proof_nodes,
    inclusion_proof_from_nodes,
    inclusion_proof_nodes,
    root_from_nodes,
)
from audit.merkle.hashing import _range_nodes
from audit.models import Checkpoint
from audit.signing import key_fingerprint, load_or_create_private_key, sign_tree_head, verify_tree_head


@functools.cache
def _signing_key(path: Path, create: bool) -> Ed25519PrivateKey:
    return load_or_create_private_key(path, create=create)


def signing_key() -> Ed25519PrivateKey:
    """The portal's Ed25519 checkpoint key (file from AUDIT_SIGNING_KEY_FILE; created only for the demo)."""
    return _signing_key(Path(settings.AUDIT_SIGNING_KEY_FILE), bool(settings.AUDIT_SIGNING_KEY_CREATE))


#: How long a checkpoint waits for a hole in the sequence to be proven abandoned (PostgreSQL).
HOLE_WAIT_S = 2.0


def create_checkpoint() -> Checkpoint | None:
    """Integrate what has been committed, then sign the tree head and store it; None when the tree has
    not grown since the last checkpoint.

    Checkpoints are not themselves logged as events: each would grow the log and call for another.
    """
    key = signing_key()
    integrator.integrate_all(hole_wait_s=HOLE_WAIT_S)
    with transaction.atomic():
        head = integrator.lease(wait=True)  # no integrator pass can move the head between size and root
        size, root = head.size, CompactRange.from_state(head.frontier).root()
        if size == 0 or Checkpoint.objects.filter(tree_size__gte=size).exists():
            return None
        timestamp_ms = int(time.time() * 1000)
        signature = sign_tree_head(key, size, root, timestamp_ms)
        checkpoint = Checkpoint.objects.create(
            tree_size=size,
            root_hash=root.hex(),
            timestamp_ms=timestamp_ms,
            signature=base64.b64encode(signature).decode("ascii"),
            key_fingerprint=key_fingerprint(key.public_key()),
        )
    return checkpoint


def checkpoint_signature_valid(checkpoint: Checkpoint) -> bool:
    """Does the checkpoint's signature verify with the portal's public key?"""
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        root = bytes.fromhex(checkpoint.root_hash)
    except ValueError:
        return False
    return verify_tree_head(
        signing_key().public_key(), checkpoint.tree_size, root, checkpoint.timestamp_ms, signature
    )


def _reader(needed: list[tuple[int, int]]):  # noqa: ANN202 - returns a merkle.NodeReader
    """Fetch exactly the nodes a proof needs, in one query, then serve them to the proof algorithm.

    Leaves (level 0) are the events' stored leaf hashes, higher levels ``AuditNode`` rows; one
    ``UNION ALL`` reads both, with one ``index IN (...)`` condition per level, so the query stays
    exact (no cross product of levels and indexes) and the unique (level, index) index serves it.
    The SQL is written here rather than by the ORM: compiling a union of OR-ed filters cost more
    CPU than the whole rest of a proof, and these statements hold only integers from the caller.
    """
    by_level: dict[int, list[int]] = {}
    for level, index in sorted(set(needed)):
        by_level.setdefault(level, []).append(index)
    leaves = by_level.pop(0, [])
    parts: list[str] = []
    params: list[int] = []
    if leaves:
        parts.append(f"SELECT 0, seq, leaf_hash FROM audit_auditevent WHERE seq IN ({_marks(leaves)})")  # noqa: S608
        params += leaves
    if by_level:
        wanted = " OR ".join(
            f'(level = %s AND "index" IN ({_marks(indexes)}))' for indexes in by_level.values()
        )
        parts.append(f'SELECT level, "index", hash FROM audit_auditnode WHERE {wanted}')  # noqa: S608
        for level, indexes in by_level.items():
            params += [level, *indexes]
    found: dict[tuple[int, int], bytes] = {}
    if parts:
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params)
            for level, index, digest in cursor.fetchall():
                found[(level, index)] = bytes.fromhex(digest)

    def get_node(level: int, index: int) -> bytes:
        try:
            return found[(level, index)]
        except KeyError:
            raise LookupError(f"Merkle node ({level}, {index}) is missing from the database") from None

    return get_node


def _marks(values: list[int]) -> str:
    return ", ".join(["%s"] * len(values))


def inclusion_proof(seq: int, tree_size: int) -> list[bytes]:
    """RFC 9162 inclusion proof that event ``seq`` is in the tree of ``tree_size`` events."""
    return inclusion_proof_from_nodes(_reader(inclusion_proof_nodes(seq, tree_size)), seq, tree_size)


def leaf_and_inclusion_proof(seq: int, tree_size: int) -> tuple[bytes, list[bytes]]:
    """The stored leaf hash of event ``seq`` and its inclusion proof, read together (one query)."""
    get_node = _reader([(0, seq), *inclusion_proof_nodes(seq, tree_size)])
    return get_node(0, seq), inclusion_proof_from_nodes(get_node, seq, tree_size)


def leaves_and_inclusion_proofs(seqs: list[int], tree_size: int) -> dict[int, tuple[bytes, list[bytes]]]:
    """The stored leaf hash and inclusion proof of each event in ``seqs`` (all below ``tree_size``),
    every node they need read in one query."""
    needed = {(0, seq) for seq in seqs}
    for seq in seqs:
        needed.update(inclusion_proof_nodes(seq, tree_size))
    get_node = _reader(sorted(needed))
    return {seq: (get_node(0, seq), inclusion_proof_from_nodes(get_node, seq, tree_size)) for seq in seqs}


def consistency_proof(old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 consistency proof that the tree of ``new_size`` extends the tree of ``old_size``."""
    return consistency_proof_from_nodes(
        _reader(consistency_proof_nodes(old_size, new_size)), old_size, new_size
    )


def frontier_at(tree_size: int) -> list[bytes]:
    """The perfect subtree roots that make up the tree of ``tree_size`` events, largest first, read
    from the stored nodes (one per set bit of ``tree_size``): where an incremental check resumes.
    """
    needed = _range_nodes(0, tree_size)
    get_node = _reader(needed)
    return [get_node(level, index) for level, index in needed]


def root_at(tree_size: int) -> bytes:
    """The Merkle root of the first ``tree_size`` events, from O(log n) stored subtree hashes."""
    return root_from_nodes(_reader(_range_nodes(0, tree_size)), tree_size)
