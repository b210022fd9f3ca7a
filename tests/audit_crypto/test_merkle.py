"""audit.merkle against published RFC 6962 / CT vectors and an independent recursive reference."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import merkle
from audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleAccumulator,
    MerkleTree,
    consistency_proof,
    consistency_proof_from_nodes,
    consistency_proof_nodes,
    inclusion_proof,
    inclusion_proof_from_nodes,
    inclusion_proof_nodes,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    root_from_nodes,
    verify_consistency,
    verify_inclusion,
)
from audit.merkle.hashing import _range_nodes

# ------------------------------------------------------------------------------------------------
# Published vectors (certificate-transparency reference test data, RFC 6962 leaves)
# ------------------------------------------------------------------------------------------------

CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H_LEAF0 = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
H_LEAF1 = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
H_2_4 = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
H_4_8 = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
H_LEAF4 = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
H_6_8 = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
H_LEAF5 = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
CT_INCLUSION = [
    (0, 1, []),
    (0, 8, [H_LEAF1, H_2_4, H_4_8]),
    (5, 8, [H_LEAF4, H_6_8, CT_ROOTS[4]]),
    (2, 3, [CT_ROOTS[2]]),
    (1, 5, [H_LEAF0, H_2_4, H_LEAF4]),
]
CT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, [H_LEAF1, H_2_4, H_4_8]),
    (6, 8, [H_LEAF5, H_6_8, CT_ROOTS[4]]),
    (2, 5, [H_2_4, H_LEAF4]),
]

CT_HASHES = [leaf_hash(d) for d in CT_LEAVES]


def hexes(proof: list[bytes]) -> list[str]:
    return [h.hex() for h in proof]


def test_hash_primitives_match_ct_reference() -> None:
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    assert leaf_hash(b"").hex() == H_LEAF0
    assert leaf_hash(bytes.fromhex("101112131415161718191a1b1c1d1e1f")).hex() == (
        "3bfb960453ebaebf33727da7a1f4db38acc051d381b6da20d6d4e88f0eabfd7a"
    )
    left = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    right = bytes.fromhex("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f")
    assert node_hash(left, right).hex() == "1a378704c17da31e2d05b6d121c2bb2c7d76f6ee6fa8f983e596c2d034963c57"


@pytest.mark.parametrize("size", range(9))
def test_roots_match_published_vectors(size: int) -> None:
    hashes = CT_HASHES[:size]
    assert root_from_leaf_hashes(hashes).hex() == CT_ROOTS[size]
    assert root_from_leaf_hashes(iter(hashes)).hex() == CT_ROOTS[size]  # a one-shot stream works
    acc = CompactRange()
    acc.extend(hashes)
    assert acc.root().hex() == CT_ROOTS[size]
    assert MerkleTree.from_leaf_hashes(CT_HASHES).root(size).hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "expected"), CT_INCLUSION)
def test_inclusion_proofs_match_published_vectors(index: int, size: int, expected: list[str]) -> None:
    assert hexes(inclusion_proof(CT_HASHES, index, size)) == expected
    assert hexes(MerkleTree.from_leaf_hashes(CT_HASHES).inclusion_proof(index, size)) == expected
    proof = [bytes.fromhex(h) for h in expected]
    assert verify_inclusion(CT_HASHES[index], index, size, proof, bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "expected"), CT_CONSISTENCY)
def test_consistency_proofs_match_published_vectors(old: int, new: int, expected: list[str]) -> None:
    assert hexes(consistency_proof(CT_HASHES, old, new)) == expected
    assert hexes(MerkleTree.from_leaf_hashes(CT_HASHES).consistency_proof(old, new)) == expected
    proof = [bytes.fromhex(h) for h in expected]
    assert verify_consistency(old, new, bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new]), proof)


def test_consistency_rejects_published_bad_variants() -> None:
    old_root, new_root = bytes.fromhex(CT_ROOTS[6]), bytes.fromhex(CT_ROOTS[8])
    good = [bytes.fromhex(h) for h in (H_LEAF5, H_6_8, CT_ROOTS[4])]
    assert verify_consistency(6, 8, old_root, new_root, good)
    assert not verify_consistency(6, 8, old_root, new_root, good[:2])  # proof too short
    flipped = bytearray(good[1])
    flipped[0] ^= 1
    assert not verify_consistency(6, 8, old_root, new_root, [good[0], bytes(flipped), good[2]])
    assert not verify_consistency(8, 6, new_root, old_root, good)  # newer tree smaller


# ------------------------------------------------------------------------------------------------
# Independent reference: RFC 9162 section 2.1 transcribed recursively over lists of entries
# ------------------------------------------------------------------------------------------------


def ref_mth(entries: list[bytes]) -> bytes:
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(entries[:k]) + ref_mth(entries[k:])).digest()


def ref_path(m: int, entries: list[bytes]) -> list[bytes]:
    n = len(entries)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return ref_path(m, entries[:k]) + [ref_mth(entries[k:])]
    return ref_path(m - k, entries[k:]) + [ref_mth(entries[:k])]


def ref_subproof(m: int, entries: list[bytes], b: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if b else [ref_mth(entries)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return ref_subproof(m, entries[:k], b) + [ref_mth(entries[k:])]
    return ref_subproof(m - k, entries[k:], False) + [ref_mth(entries[:k])]


ENTRIES = [f"entry-{i}".encode() for i in range(70)]
HASHES = [leaf_hash(e) for e in ENTRIES]
BIG_TREE = MerkleTree.from_leaf_hashes(HASHES)


@pytest.mark.parametrize("size", range(1, 71))
def test_against_reference_all_indices_and_old_sizes(size: int) -> None:
    entries = ENTRIES[:size]
    root = ref_mth(entries)
    # The root of a different tree size (the size is bound to the root by the signed tree head).
    grown_root = ref_mth([*entries, b"one more"])
    assert BIG_TREE.root(size) == root
    assert root_from_leaf_hashes(HASHES[:size]) == root
    for index in range(size):
        expected = ref_path(index, entries)
        proof = BIG_TREE.inclusion_proof(index, size)
        assert proof == expected, (index, size)
        assert verify_inclusion(HASHES[index], index, size, proof, root)
        # The same proof must not prove anything else.
        assert not verify_inclusion(HASHES[index], index, size + 1, proof, grown_root)
        if size > 1:
            assert not verify_inclusion(HASHES[index], (index + 1) % size, size, proof, root)
            assert not verify_inclusion(HASHES[(index + 1) % size], index, size, proof, root)
            assert not verify_inclusion(HASHES[index], index, size, proof[:-1], root)
        assert not verify_inclusion(HASHES[index], index, size, [*proof, root], root)
    for old in range(1, size + 1):
        expected = ref_subproof(old, entries, True)
        proof = BIG_TREE.consistency_proof(old, size)
        assert proof == expected, (old, size)
        old_root = ref_mth(ENTRIES[:old])
        assert verify_consistency(old, size, old_root, root, proof)
        if old < size:
            assert not verify_consistency(old, size, root, old_root, proof)
            assert not verify_consistency(old, size + 1, old_root, grown_root, proof)
            assert not verify_consistency(old, size, old_root, root, proof[:-1])
            assert not verify_consistency(old, size, old_root, root, [*proof, root])
            for i in range(len(proof)):
                bad = list(proof)
                bad[i] = bytes([bad[i][0] ^ 0x80]) + bad[i][1:]
                assert not verify_consistency(old, size, old_root, root, bad), (old, size, i)


def test_pure_functions_match_tree_on_a_sample() -> None:
    for size in (1, 2, 3, 7, 8, 9, 31, 64, 70):
        for index in range(0, size, 5):
            assert inclusion_proof(HASHES, index, size) == BIG_TREE.inclusion_proof(index, size)
        for old in range(0, size + 1, 4):
            assert consistency_proof(HASHES, old, size) == BIG_TREE.consistency_proof(old, size)
    assert inclusion_proof(HASHES[:9], 8) == BIG_TREE.inclusion_proof(8, 9)  # default size: all
    assert consistency_proof(HASHES[:9], 3) == BIG_TREE.consistency_proof(3, 9)


# ------------------------------------------------------------------------------------------------
# Edge cases of verification (strict, never raising)
# ------------------------------------------------------------------------------------------------


def test_consistency_edge_cases() -> None:
    r5 = root_from_leaf_hashes(HASHES[:5])
    assert verify_consistency(0, 5, EMPTY_ROOT, r5, [])
    assert not verify_consistency(0, 5, r5, r5, [])  # old root of an empty tree must be MTH({})
    assert not verify_consistency(0, 5, EMPTY_ROOT, r5, [r5])  # no junk proof accepted
    assert verify_consistency(5, 5, r5, r5, [])
    assert not verify_consistency(5, 5, r5, EMPTY_ROOT, [])
    assert not verify_consistency(5, 5, r5, r5, [r5])
    assert not verify_consistency(3, 5, root_from_leaf_hashes(HASHES[:3]), r5, [])
    assert consistency_proof(HASHES, 0, 5) == []
    assert consistency_proof(HASHES, 5, 5) == []


@pytest.mark.parametrize(
    "args",
    [
        (b"x" * 31, 0, 1, [], b"x" * 32),
        ("not bytes", 0, 1, [], b"x" * 32),
        (b"x" * 32, -1, 1, [], b"x" * 32),
        (b"x" * 32, True, 2, [], b"x" * 32),
        (b"x" * 32, 0, 0, [], b"x" * 32),
        (b"x" * 32, 1, 1, [], b"x" * 32),
        (b"x" * 32, 0, 2, [b"short"], b"x" * 32),
        (b"x" * 32, 0, 2, ["not bytes"], b"x" * 32),
    ],
)
def test_verify_inclusion_rejects_malformed_input(args: tuple) -> None:
    assert verify_inclusion(*args) is False


def test_verify_consistency_rejects_malformed_input() -> None:
    h = b"x" * 32
    assert verify_consistency(1, 2, h, h, ["nope"]) is False
    assert verify_consistency(1, 2, h[:5], h, [h]) is False
    assert verify_consistency(-1, 2, h, h, [h]) is False
    assert verify_consistency(1.0, 2, h, h, [h]) is False


def test_generation_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(HASHES[:4], 4, 4)
    with pytest.raises(ValueError):
        inclusion_proof(HASHES[:4], 0, 5)
    with pytest.raises(ValueError):
        consistency_proof(HASHES[:4], 5, 4)
    with pytest.raises(TypeError):
        inclusion_proof(HASHES[:4], "0", 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BIG_TREE.root(71)
    with pytest.raises(ValueError):
        root_from_leaf_hashes([b"short"])
    with pytest.raises(TypeError):
        root_from_leaf_hashes(["a" * 32])  # type: ignore[list-item]
    with pytest.raises(IndexError):
        BIG_TREE.get_node(7, 0)  # a 128-leaf subtree is not complete in a 70-leaf tree


# ------------------------------------------------------------------------------------------------
# Accumulator and node-store interface (what the database layer uses)
# ------------------------------------------------------------------------------------------------


def test_compact_range_state_roundtrip_and_created_nodes() -> None:
    assert MerkleAccumulator is CompactRange
    acc = CompactRange()
    store: dict[tuple[int, int], bytes] = {}
    for i, h in enumerate(HASHES):
        created = acc.append(h)
        assert created[0] == (0, i, h)
        for node in created:
            assert BIG_TREE.get_node(node.level, node.index) == node.hash
            store[(node.level, node.index)] = node.hash
        assert acc.size == len(acc) == i + 1
        assert acc.root() == BIG_TREE.root(i + 1)
        state = acc.to_state()
        assert sum(1 << level for level, _ in state) == i + 1
        restored = CompactRange.from_state([list(item) for item in state])  # as JSON gives it back
        assert restored == acc and restored.root() == acc.root()
        assert BIG_TREE.compact_range(i + 1) == acc
        assert [n.hash for n in acc.frontier()] == [bytes.fromhex(h) for _, h in state]

    # Every node a proof needs was emitted by append(), so a database holding them can serve proofs.
    def reader(level: int, index: int) -> bytes:
        return store[(level, index)]

    for size in (1, 5, 8, 13, 64, 70):
        for index in range(size):
            needed = inclusion_proof_nodes(index, size)
            assert all(n in store for n in needed)
            assert inclusion_proof_from_nodes(reader, index, size) == BIG_TREE.inclusion_proof(index, size)
        for old in range(size + 1):
            assert all(n in store for n in consistency_proof_nodes(old, size))
            assert consistency_proof_from_nodes(reader, old, size) == BIG_TREE.consistency_proof(old, size)
        assert root_from_nodes(reader, size) == BIG_TREE.root(size)


def test_proof_node_lists_are_logarithmic() -> None:
    n = 1_000_000
    assert len(inclusion_proof_nodes(123_456, n)) <= 2 * 20
    assert len(consistency_proof_nodes(333_333, n)) <= 3 * 20


def test_compact_range_copy_is_independent() -> None:
    acc = CompactRange()
    acc.extend(HASHES[:5])
    other = acc.copy()
    other.append(HASHES[5])
    assert acc.size == 5 and other.size == 6
    assert acc.root() == BIG_TREE.root(5)


@pytest.mark.parametrize(
    "state",
    [
        [(0, "00" * 32), (1, "00" * 32)],  # levels must decrease
        [(1, "00" * 31)],  # short hash
        [(1, "zz" * 32)],  # not hex
        [(-1, "00" * 32)],
        [(True, "00" * 32)],
        [(1, "00" * 32, "extra")],
        [(1, b"\x00" * 32)],
    ],
)
def test_compact_range_rejects_bad_state(state: list) -> None:
    with pytest.raises(ValueError):
        CompactRange.from_state(state)


def test_empty_structures() -> None:
    assert CompactRange().root() == EMPTY_ROOT
    assert CompactRange().to_state() == []
    assert CompactRange.from_state([]).size == 0
    assert MerkleTree().root() == EMPTY_ROOT
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    tree = MerkleTree.from_leaf_hashes(HASHES[:3])
    assert list(tree.leaf_hashes()) == HASHES[:3]
    assert "size=3" in repr(tree) and "size=0" in repr(CompactRange())


# ------------------------------------------------------------------------------------------------
# Property tests on larger random trees
# ------------------------------------------------------------------------------------------------

_RANDOM_HASHES = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(3000)]
_RANDOM_TREE = MerkleTree.from_leaf_hashes(_RANDOM_HASHES)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_inclusion(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, len(_RANDOM_HASHES)))
    index = data.draw(st.integers(0, size - 1))
    root = _RANDOM_TREE.root(size)
    proof = _RANDOM_TREE.inclusion_proof(index, size)
    assert len(proof) <= (size - 1).bit_length()
    assert verify_inclusion(_RANDOM_HASHES[index], index, size, proof, root)
    assert merkle.root_from_leaf_hashes(_RANDOM_HASHES[:size]) == root
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[i] = hashlib.sha256(bad[i]).digest()
        assert not verify_inclusion(_RANDOM_HASHES[index], index, size, bad, root)
    other = data.draw(st.integers(0, len(_RANDOM_HASHES)))
    if other != index:
        assert not verify_inclusion(_RANDOM_HASHES[index], other, size, proof, root)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_consistency(data: st.DataObject) -> None:
    new = data.draw(st.integers(1, len(_RANDOM_HASHES)))
    old = data.draw(st.integers(1, new))
    old_root, new_root = _RANDOM_TREE.root(old), _RANDOM_TREE.root(new)
    proof = _RANDOM_TREE.consistency_proof(old, new)
    assert verify_consistency(old, new, old_root, new_root, proof)
    if old < new:
        assert len(proof) <= 2 * new.bit_length()
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[i] = hashlib.sha256(bad[i]).digest()
        assert not verify_consistency(old, new, old_root, new_root, bad)
        other_old = data.draw(st.integers(1, new))
        if _RANDOM_TREE.root(other_old) != old_root:
            assert not verify_consistency(other_old, new, _RANDOM_TREE.root(other_old), new_root, proof)


def test_random_forks_are_detected() -> None:
    """A log that rewrites one old entry cannot prove consistency with its earlier checkpoint."""
    rng = random.Random(9162)
    for _ in range(50):
        new = rng.randint(2, 300)
        old = rng.randint(1, new - 1)
        victim = rng.randint(0, old - 1)
        forked = list(_RANDOM_HASHES[:new])
        forked[victim] = leaf_hash(b"rewritten history")
        forked_tree = MerkleTree.from_leaf_hashes(forked)
        honest_old_root = _RANDOM_TREE.root(old)
        proof = forked_tree.consistency_proof(old, new)
        assert not verify_consistency(old, new, honest_old_root, forked_tree.root(new), proof)


def test_bulk_build_equals_incremental_build_and_keeps_growing() -> None:
    for n in range(0, 70):
        bulk = MerkleTree.from_leaf_hashes(HASHES[:n])
        incremental = MerkleTree()
        incremental.extend(HASHES[:n])
        assert [bulk.get_node(lv, i) for lv, i in _range_nodes(0, n)] == [
            incremental.get_node(lv, i) for lv, i in _range_nodes(0, n)
        ]
        bulk.append(HASHES[n])  # the bulk builder must leave its buffers growable
        assert bulk.root() == BIG_TREE.root(n + 1)
        assert bulk.inclusion_proof(n) == BIG_TREE.inclusion_proof(n, n + 1)
