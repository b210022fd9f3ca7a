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

from audit.merkle.hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    Node,
    NodeReader,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    root_from_nodes,
)
from audit.merkle.proofs import (
    consistency_proof,
    consistency_proof_from_nodes,
    consistency_proof_nodes,
    inclusion_proof,
    inclusion_proof_from_nodes,
    inclusion_proof_nodes,
    verify_consistency,
    verify_inclusion,
)
from audit.merkle.trees import CompactRange, MerkleAccumulator, MerkleTree

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
