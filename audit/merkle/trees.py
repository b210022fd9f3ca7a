"""Append-only Merkle trees: the O(log n) frontier (:class:`CompactRange`) and the in-memory tree
with every perfect subtree cached (:class:`MerkleTree`). Standard library only."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence

from audit.merkle.hashing import (
    _NODE_PREFIX,
    HASH_SIZE,
    Node,
    _check_hash,
    _check_size,
    _fold_right,
    _range_nodes,
    node_hash,
    root_from_nodes,
)
from audit.merkle.proofs import (
    consistency_proof_from_nodes,
    inclusion_proof_from_nodes,
)

# --------------------------------------------------------------------------------------------------
# Incremental accumulator
# --------------------------------------------------------------------------------------------------


class CompactRange:
    """The right frontier of an append-only Merkle tree: O(log n) state, O(log n) appends.

    The state is one perfect subtree root per set bit of ``size``, largest first; e.g. a log of 13
    events holds the roots over leaves [0, 8), [8, 12) and [12, 13). That is all that is needed to
    compute the current root and to keep appending, so the database layer can persist it (see
    :meth:`to_state`) next to the last event and append new events in O(log n) each.

    >>> from audit.merkle import leaf_hash
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

    >>> from audit.merkle import leaf_hash, verify_inclusion
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
