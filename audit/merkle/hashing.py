"""RFC 9162 hashing: leaf and node hashes, perfect-subtree addressing and Merkle roots.

Standard library only (see the package docstring)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

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
