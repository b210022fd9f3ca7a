"""Merkle tree hashing, proofs and verification in the style of RFC 9162 (Certificate Transparency v2).

This module is the tamper-evident core of the audit log. It depends on the standard library only, so a
copy of the verification half can ship inside legal export packages (see ``audit/verify_package.py``).

Definitions (RFC 9162 section 2.1.1), with ``HASH`` = SHA-256:

* ``MTH({})``            = ``HASH()`` (the hash of the empty string)
* ``MTH({d0})``          = ``HASH(0x00 || d0)``                     (:func:`leaf_hash`)
* ``MTH(D[n])``, n > 1   = ``HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` where ``k`` is the largest power
  of two smaller than ``n``                                          (:func:`node_hash`)

The 0x00 / 0x01 prefixes separate leaves from interior nodes, so nobody can present an interior node
as a leaf (second-preimage attack on unprefixed trees).

Addressing. Every *perfect* subtree of the tree is named ``(level, index)``: it covers the
``2**level`` leaves ``[index << level, (index + 1) << level)``. Such a subtree never changes once its
last leaf exists, whatever the tree grows to, which is what makes it cacheable and persistable. Every
hash that the RFC's PATH and PROOF algorithms need is either a perfect subtree or the right edge of a
tree of size ``n``, and a right edge is the fold of at most ``log2(n)`` perfect subtrees. The proof
generators below therefore ask a *node reader* ``get_node(level, index) -> bytes`` for perfect
subtrees only. Three readers are offered:

* :class:`MerkleTree`: all levels in compact in-memory ``bytearray`` s (64 bytes per leaf in total),
  built in one O(n) pass, then any proof for any tree size up to ``len(tree)`` in O(log n);
* :func:`inclusion_proof` / :func:`consistency_proof` over a plain sequence of leaf hashes: O(n) per
  call, meant as the simple reference path;
* a caller's own store: :meth:`CompactRange.append` returns every perfect subtree it completes, so the
  database layer can persist them as ``(level, index, hash)`` rows, and later fetch exactly the rows
  that :func:`inclusion_proof_nodes` / :func:`consistency_proof_nodes` list, in a single query.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleAccumulator",
    "MerkleTree",
    "Node",
    "NodeReader",
    "consistency_proof",
    "consistency_proof_from_nodes",
    "consistency_proof_nodes",
    "inclusion_proof",
    "inclusion_proof_from_nodes",
    "inclusion_proof_nodes",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "root_from_nodes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
#: ``MTH({})``: the root of the empty tree is SHA-256 of the empty string (RFC 9162 section 2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

#: ``get_node(level, index)`` returns the root of the perfect subtree over leaves
#: ``[index << level, (index + 1) << level)``; level 0 is the leaf hash itself.
NodeReader = Callable[[int, int], bytes]


class Node(NamedTuple):
    """A perfect subtree root: covers leaves ``[index << level, (index + 1) << level)``."""

    level: int
    index: int
    hash: bytes


def leaf_hash(data: bytes) -> bytes:
    """Return ``SHA-256(0x00 || data)``, the RFC 9162 leaf hash of one log entry."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return ``SHA-256(0x01 || left || right)``, the RFC 9162 interior node hash."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")
    return value


def _check_size(value: object, what: str) -> int:
    # bool is an int subclass; True as a tree size is always a bug upstream.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return value


def _largest_power_of_two_below(n: int) -> int:
    """The ``k`` of RFC 9162: the largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


# --------------------------------------------------------------------------------------------------
# Roots
# --------------------------------------------------------------------------------------------------


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """Return ``MTH`` of the given leaf hashes, consuming them as a stream.

    Memory is O(log n): the stack holds at most one perfect subtree per level (the binary
    representation of the count so far), so a database cursor can be fed straight in.
    """
    stack: list[bytes] = []
    count = 0
    sha256 = hashlib.sha256  # hot loop: a local name saves a global and an attribute lookup per node
    for h in hashes:
        if type(h) is not bytes or len(h) != HASH_SIZE:
            h = _check_hash(h, "leaf hash")
        # The number of trailing one bits of ``count`` is the number of perfect subtrees that
        # this leaf completes; merge them, exactly like a binary counter carrying.
        n = count
        while n & 1:
            h = sha256(_NODE_PREFIX + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        count += 1
    return _fold_right(stack)


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """Fold perfect subtree roots, largest (leftmost) first, into the root of their union.

    For a range whose size is ``2**a + 2**b + ...`` (``a > b > ...``) the RFC split point is always the
    highest bit, so ``MTH = node(S_a, node(S_b, ...))``: a right fold.
    """
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = node_hash(h, root)
    return root


def _range_nodes(start: int, end: int) -> list[tuple[int, int]]:
    """Decompose leaves ``[start, end)`` into perfect subtrees, largest first.

    Only called for ranges that are nodes of some RFC 9162 tree, where ``start`` is a multiple of the
    largest power of two not exceeding ``end - start``; the assertion guards that internal invariant.
    """
    out: list[tuple[int, int]] = []
    pos = start
    remaining = end - start
    while remaining:
        level = remaining.bit_length() - 1
        assert pos % (1 << level) == 0, "range is not aligned to a Merkle tree node"
        out.append((level, pos >> level))
        pos += 1 << level
        remaining -= 1 << level
    return out


def _range_hash(get_node: NodeReader, start: int, end: int) -> bytes:
    return _fold_right([get_node(level, index) for level, index in _range_nodes(start, end)])


def root_from_nodes(get_node: NodeReader, tree_size: int) -> bytes:
    """Return ``MTH(D[tree_size])`` from at most ``log2(tree_size) + 1`` perfect subtree roots."""
    _check_size(tree_size, "tree_size")
    return _range_hash(get_node, 0, tree_size)


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


# --------------------------------------------------------------------------------------------------
# Incremental accumulator
# --------------------------------------------------------------------------------------------------


class CompactRange:
    """The right frontier of an append-only Merkle tree: O(log n) state, O(log n) appends.

    The state is one perfect subtree root per set bit of ``size``, largest first; e.g. a log of 13
    events holds the roots over leaves [0, 8), [8, 12) and [12, 13). That is all that is needed to
    compute the current root and to keep appending, so the database layer can persist it (see
    :meth:`to_state`) next to the last event and append new events in O(log n) each.

    >>> acc = CompactRange()
    >>> created = acc.append(leaf_hash(b"event 0"))
    >>> acc.size, len(created)
    (1, 1)
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far (the tree size)."""
        return self._size

    def __len__(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> list[Node]:
        """Append one leaf hash; return the perfect subtrees this completes, smallest first.

        The first element is always the leaf itself at level 0. The database layer may store the
        returned nodes as ``(level, index, hash)`` rows to serve proofs later without an O(n) pass.
        """
        h = _check_hash(leaf_hash, "leaf hash")
        index = self._size
        created = [Node(0, index, h)]
        level = 0
        while index & 1:
            h = node_hash(self._stack.pop(), h)
            index >>= 1
            level += 1
            created.append(Node(level, index, h))
        self._stack.append(h)
        self._size += 1
        return created

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes (the created nodes are discarded)."""
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """``MTH`` of everything appended so far (``EMPTY_ROOT`` for an empty log)."""
        return _fold_right(self._stack)

    def frontier(self) -> list[Node]:
        """The frontier as :class:`Node` s, largest (leftmost) subtree first."""
        out: list[Node] = []
        pos = 0
        for level, h in zip(self._levels(), self._stack, strict=True):
            out.append(Node(level, pos >> level, h))
            pos += 1 << level
        return out

    def _levels(self) -> list[int]:
        return [bit for bit in range(self._size.bit_length() - 1, -1, -1) if self._size >> bit & 1]

    def to_state(self) -> list[tuple[int, str]]:
        """JSON-friendly state: ``[(level, hex hash), ...]``, largest subtree first.

        The size is implied (the sum of ``2**level``), so the state cannot disagree with it.
        """
        return [(level, h.hex()) for level, h in zip(self._levels(), self._stack, strict=True)]

    @classmethod
    def from_state(cls, state: Iterable[Sequence[object]]) -> CompactRange:
        """Rebuild from :meth:`to_state` output (tuples or JSON lists); raises ``ValueError`` if malformed."""
        levels: list[int] = []
        hashes: list[bytes] = []
        for item in state:
            if len(item) != 2:
                raise ValueError("each state item must be a (level, hex hash) pair")
            level, hex_hash = item
            if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level < 64:
                raise ValueError(f"invalid level {level!r}")
            if levels and level >= levels[-1]:
                raise ValueError("levels must be strictly decreasing")
            if not isinstance(hex_hash, str):
                raise ValueError("hash must be a hex string")
            hashes.append(_check_hash(bytes.fromhex(hex_hash), "frontier hash"))
            levels.append(level)
        acc = cls()
        acc._stack = hashes
        acc._size = sum(1 << level for level in levels)
        return acc

    def copy(self) -> CompactRange:
        """An independent copy (e.g. to compute a would-be root without committing)."""
        other = CompactRange()
        other._size = self._size
        other._stack = list(self._stack)
        return other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._stack == other._stack

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


#: Alias: the same object under the name used in the design notes.
MerkleAccumulator = CompactRange


# --------------------------------------------------------------------------------------------------
# In-memory tree with every perfect subtree cached
# --------------------------------------------------------------------------------------------------


class MerkleTree:
    """An append-only Merkle tree keeping every perfect subtree root, for fast proofs.

    Level ``L`` is one ``bytearray`` of concatenated 32-byte hashes; it holds ``size >> L`` complete
    subtrees. Level 0 holds the leaf hashes, so the whole tree costs about 64 bytes per leaf (64 MB
    for a million events) and is built in one O(n) pass. Because perfect subtrees never change as the
    log grows, a tree built up to the newest event answers inclusion and consistency proofs for
    *every* earlier checkpoint size in O(log n) node reads each.

    >>> t = MerkleTree.from_leaf_hashes(leaf_hash(bytes([i])) for i in range(5))
    >>> verify_inclusion(leaf_hash(b"\\x03"), 3, 5, t.inclusion_proof(3), t.root())
    True
    """

    __slots__ = ("_levels", "_size")

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Iterable[bytes]) -> MerkleTree:
        """Build a tree from an iterable of 32-byte leaf hashes (e.g. a database cursor).

        Builds level by level rather than by repeated :meth:`append`: same result, about twice as fast.
        """
        leaves = bytearray()
        for h in leaf_hashes:
            if type(h) is not bytes or len(h) != HASH_SIZE:
                h = _check_hash(h, "leaf hash")
            leaves += h
        tree = cls()
        tree._levels = [leaves]
        tree._size = len(leaves) // HASH_SIZE
        sha256 = hashlib.sha256
        pair = 2 * HASH_SIZE
        below = leaves
        while len(below) >= pair:
            upper = bytearray()
            # The view must be released before the bytearray can grow again (append() extends it).
            with memoryview(below) as view:
                for off in range(0, len(below) - pair + 1, pair):
                    upper += sha256(_NODE_PREFIX + view[off : off + pair]).digest()
            tree._levels.append(upper)
            below = upper
        return tree

    def __len__(self) -> int:
        return self._size

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash, completing parent subtrees as a binary counter carries (amortised O(1))."""
        h = (
            leaf_hash
            if type(leaf_hash) is bytes and len(leaf_hash) == HASH_SIZE
            else _check_hash(leaf_hash, "leaf hash")
        )
        levels = self._levels
        levels[0] += h
        index = self._size
        level = 0
        while index & 1:
            below = levels[level]
            off = (index - 1) * HASH_SIZE
            h = hashlib.sha256(_NODE_PREFIX + below[off : off + HASH_SIZE] + h).digest()
            level += 1
            index >>= 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += h
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes."""
        for h in leaf_hashes:
            self.append(h)

    def leaf_hash(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        return self.get_node(0, index)

    def leaf_hashes(self) -> Iterator[bytes]:
        """Iterate over all leaf hashes in order."""
        leaves = self._levels[0]
        for off in range(0, len(leaves), HASH_SIZE):
            yield bytes(leaves[off : off + HASH_SIZE])

    def get_node(self, level: int, index: int) -> bytes:
        """The perfect subtree root ``(level, index)``; raises ``IndexError`` if not yet complete.

        This is a :data:`NodeReader`, so it can be passed to the ``*_from_nodes`` functions.
        """
        if level < 0 or index < 0 or level >= len(self._levels):
            raise IndexError(f"no complete subtree at level {level}, index {index}")
        data = self._levels[level]
        off = index * HASH_SIZE
        if off + HASH_SIZE > len(data):
            raise IndexError(f"no complete subtree at level {level}, index {index}")
        return bytes(data[off : off + HASH_SIZE])

    def _size_arg(self, tree_size: int | None, what: str) -> int:
        if tree_size is None:
            return self._size
        _check_size(tree_size, what)
        if tree_size > self._size:
            raise ValueError(f"{what} {tree_size} exceeds the tree's {self._size} leaves")
        return tree_size

    def root(self, tree_size: int | None = None) -> bytes:
        """``MTH`` of the first ``tree_size`` leaves (default: all)."""
        return root_from_nodes(self.get_node, self._size_arg(tree_size, "tree_size"))

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of size ``tree_size`` (default: all)."""
        return inclusion_proof_from_nodes(self.get_node, index, self._size_arg(tree_size, "tree_size"))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from size ``old_size`` to ``new_size`` (default: all)."""
        return consistency_proof_from_nodes(self.get_node, old_size, self._size_arg(new_size, "new_size"))

    def compact_range(self, tree_size: int | None = None) -> CompactRange:
        """The :class:`CompactRange` frontier of the first ``tree_size`` leaves."""
        size = self._size_arg(tree_size, "tree_size")
        state = [(level, self.get_node(level, index).hex()) for level, index in _range_nodes(0, size)]
        return CompactRange.from_state(state)

    def __repr__(self) -> str:
        return f"MerkleTree(size={self._size}, root={self.root().hex()})"
