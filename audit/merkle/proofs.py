"""RFC 9162 inclusion and consistency proofs: generation from a node reader, and verification.

Standard library only (see the package docstring)."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from audit.merkle.hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    NodeReader,
    _check_size,
    _largest_power_of_two_below,
    _range_hash,
    node_hash,
    root_from_leaf_hashes,
)

# --------------------------------------------------------------------------------------------------
# Proof generation (RFC 9162 sections 2.1.3.1 and 2.1.4.1)
# --------------------------------------------------------------------------------------------------


def _path(get_node: NodeReader, m: int, start: int, n: int, out: list[bytes]) -> None:
    """``PATH(m, D[start:start+n])``, appended to ``out`` from the leaf upwards."""
    if n <= 1:
        return
    k = _largest_power_of_two_below(n)
    if m < k:
        _path(get_node, m, start, k, out)
        out.append(_range_hash(get_node, start + k, start + n))
    else:
        _path(get_node, m - k, start + k, n - k, out)
        out.append(_range_hash(get_node, start, start + k))


def _subproof(get_node: NodeReader, m: int, start: int, n: int, complete: bool, out: list[bytes]) -> None:
    """``SUBPROOF(m, D[start:start+n], b)``; ``complete`` is the RFC's flag ``b``."""
    if m == n:
        if not complete:
            out.append(_range_hash(get_node, start, start + n))
        return
    k = _largest_power_of_two_below(n)
    if m <= k:
        _subproof(get_node, m, start, k, complete, out)
        out.append(_range_hash(get_node, start + k, start + n))
    else:
        _subproof(get_node, m - k, start + k, n - k, False, out)
        out.append(_range_hash(get_node, start, start + k))


def inclusion_proof_from_nodes(get_node: NodeReader, index: int, tree_size: int) -> list[bytes]:
    """RFC 9162 ``PATH(index, D[tree_size])`` using a perfect-subtree reader.

    Raises ``ValueError`` unless ``0 <= index < tree_size``.
    """
    _check_size(index, "index")
    _check_size(tree_size, "tree_size")
    if index >= tree_size:
        raise ValueError(f"index {index} is outside a tree of size {tree_size}")
    out: list[bytes] = []
    _path(get_node, index, 0, tree_size, out)
    return out


def consistency_proof_from_nodes(get_node: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 ``PROOF(old_size, D[new_size])`` using a perfect-subtree reader.

    ``old_size == 0`` and ``old_size == new_size`` give an empty proof (every tree extends the empty
    tree; a tree is consistent with itself). Raises ``ValueError`` if ``old_size > new_size``.
    """
    _check_size(old_size, "old_size")
    _check_size(new_size, "new_size")
    if old_size > new_size:
        raise ValueError(f"old_size {old_size} is larger than new_size {new_size}")
    out: list[bytes] = []
    if 0 < old_size < new_size:
        _subproof(get_node, old_size, 0, new_size, True, out)
    return out


def _recording_reader(needed: list[tuple[int, int]]) -> NodeReader:
    # The PATH/PROOF recursions branch on sizes only, never on hash values, so running them with a
    # placeholder hash lists exactly the nodes a real run will read.
    seen: set[tuple[int, int]] = set()

    def get_node(level: int, index: int) -> bytes:
        if (level, index) not in seen:
            seen.add((level, index))
            needed.append((level, index))
        return EMPTY_ROOT

    return get_node


def inclusion_proof_nodes(index: int, tree_size: int) -> list[tuple[int, int]]:
    """The ``(level, index)`` perfect subtrees that :func:`inclusion_proof_from_nodes` will read.

    Lets a database-backed reader prefetch every node of a proof in one query.
    """
    needed: list[tuple[int, int]] = []
    inclusion_proof_from_nodes(_recording_reader(needed), index, tree_size)
    return needed


def consistency_proof_nodes(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The ``(level, index)`` perfect subtrees that :func:`consistency_proof_from_nodes` will read."""
    needed: list[tuple[int, int]] = []
    consistency_proof_from_nodes(_recording_reader(needed), old_size, new_size)
    return needed


def _sequence_reader(leaf_hashes: Sequence[bytes]) -> NodeReader:
    def get_node(level: int, index: int) -> bytes:
        start = index << level
        return root_from_leaf_hashes(leaf_hashes[i] for i in range(start, start + (1 << level)))

    return get_node


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, tree_size: int | None = None) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of the first ``tree_size`` leaf hashes.

    Straightforward O(n) reference path; use :class:`MerkleTree` for many proofs over one log.
    """
    size = len(leaf_hashes) if tree_size is None else _check_size(tree_size, "tree_size")
    if size > len(leaf_hashes):
        raise ValueError(f"tree_size {size} exceeds the {len(leaf_hashes)} leaf hashes given")
    return inclusion_proof_from_nodes(_sequence_reader(leaf_hashes), index, size)


def consistency_proof(
    leaf_hashes: Sequence[bytes], old_size: int, new_size: int | None = None
) -> list[bytes]:
    """RFC 9162 consistency proof between the trees of the first ``old_size`` and ``new_size`` leaves.

    Straightforward O(n) reference path; use :class:`MerkleTree` for many proofs over one log.
    """
    size = len(leaf_hashes) if new_size is None else _check_size(new_size, "new_size")
    if size > len(leaf_hashes):
        raise ValueError(f"new_size {size} exceeds the {len(leaf_hashes)} leaf hashes given")
    return consistency_proof_from_nodes(_sequence_reader(leaf_hashes), old_size, size)


# --------------------------------------------------------------------------------------------------
# Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2): what a third party runs.
# These return False on malformed input instead of raising, since the input is untrusted.
# --------------------------------------------------------------------------------------------------


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Return True iff ``proof`` shows ``leaf_hash`` at ``index`` in the tree of ``tree_size`` with ``root``.

    Transcribes RFC 9162 section 2.1.3.2 step by step.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root) and _is_size(index) and _is_size(tree_size)):
        return False
    if not all(_is_hash(p) for p in proof):
        return False
    # 1. leaf_index >= tree_size fails.
    if index >= tree_size:
        return False
    # 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
    fn, sn, r = index, tree_size - 1, leaf_hash
    # 4. For each p in inclusion_path:
    for p in proof:
        if sn == 0:  # 4a
            return False
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            # If LSB(fn) is not set, shift until it is or fn is 0 (a no-op when it is set).
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    # 5. sn must be 0 and r must equal the root.
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Return True iff ``proof`` shows tree (``new_size``, ``new_root``) extends (``old_size``, ``old_root``).

    For ``0 < old_size < new_size`` this transcribes RFC 9162 section 2.1.4.2. The RFC leaves the edge
    cases undefined; here they are strict so that a verifier never accepts junk:

    * ``old_size == new_size``: the proof must be empty and the roots equal;
    * ``old_size == 0``: the proof must be empty and ``old_root`` must be ``MTH({})``;
    * ``old_size > new_size``: False.
    """
    if not (_is_size(old_size) and _is_size(new_size) and _is_hash(old_root) and _is_hash(new_root)):
        return False
    if not all(_is_hash(p) for p in proof):
        return False
    if old_size > new_size:
        return False
    if old_size == new_size:
        return len(proof) == 0 and hmac.compare_digest(old_root, new_root)
    if old_size == 0:
        return len(proof) == 0 and hmac.compare_digest(old_root, EMPTY_ROOT)
    # 1. An empty consistency_path fails.
    if not proof:
        return False
    path = list(proof)
    # 2. If first is an exact power of 2, prepend first_hash.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = old_size - 1, new_size - 1
    # 4. If LSB(fn) is set, right-shift both until it is not.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = first value of the path.
    fr = sr = path[0]
    # 6. For each subsequent value c:
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7. fr == first_hash, sr == second_hash and sn == 0.
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)
