"""Signed checkpoints, and inclusion/consistency proofs served from the stored Merkle nodes."""

from __future__ import annotations

import base64
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import checkpoints
from audit.merkle import EMPTY_ROOT, MerkleTree, verify_consistency, verify_inclusion
from audit.models import AuditEvent, Checkpoint
from audit.signing import key_fingerprint, load_or_create_private_key, verify_tree_head
from tests.audit.conftest import integrate_now

pytestmark = pytest.mark.django_db


def _leaves() -> list[bytes]:
    return [bytes.fromhex(h) for h in AuditEvent.objects.order_by("seq").values_list("leaf_hash", flat=True)]


def test_no_checkpoint_for_an_empty_log():
    assert checkpoints.create_checkpoint() is None
    assert not Checkpoint.objects.exists()
    assert checkpoints.root_at(0) == EMPTY_ROOT


def test_checkpoint_is_an_ed25519_signature_over_size_time_and_root(append, signing_key_file):
    append(11)
    checkpoint = checkpoints.create_checkpoint()

    assert checkpoint is not None
    assert checkpoint.tree_size == 11
    assert bytes.fromhex(checkpoint.root_hash) == MerkleTree.from_leaf_hashes(_leaves()).root()
    # The key is the file named by the settings, created private to its owner.
    key = load_or_create_private_key(signing_key_file, create=False)
    assert stat.S_IMODE(signing_key_file.stat().st_mode) == 0o600
    assert checkpoint.key_fingerprint == key_fingerprint(key.public_key())
    signature = base64.b64decode(checkpoint.signature)
    assert verify_tree_head(
        key.public_key(), 11, bytes.fromhex(checkpoint.root_hash), checkpoint.timestamp_ms, signature
    )
    assert checkpoints.checkpoint_signature_valid(checkpoint)
    # Another key, or another size, does not verify.
    other = Ed25519PrivateKey.generate().public_key()
    root = bytes.fromhex(checkpoint.root_hash)
    assert not verify_tree_head(other, 11, root, checkpoint.timestamp_ms, signature)
    assert not verify_tree_head(key.public_key(), 12, root, checkpoint.timestamp_ms, signature)


def test_no_new_checkpoint_until_the_log_grows(append):
    append(3)
    assert checkpoints.create_checkpoint() is not None
    assert checkpoints.create_checkpoint() is None
    append(1)
    assert checkpoints.create_checkpoint().tree_size == 4
    assert list(Checkpoint.objects.values_list("tree_size", flat=True)) == [3, 4]


def test_a_tampered_checkpoint_fails_its_signature(append):
    append(4)
    checkpoint = checkpoints.create_checkpoint()
    checkpoint.tree_size = 3
    assert not checkpoints.checkpoint_signature_valid(checkpoint)
    checkpoint.tree_size, checkpoint.signature = 4, "not base64!"
    assert not checkpoints.checkpoint_signature_valid(checkpoint)


def test_a_missing_key_is_refused_when_creation_is_off(settings, tmp_path):
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "absent.pem"
    settings.AUDIT_SIGNING_KEY_CREATE = False
    checkpoints._signing_key.cache_clear()
    with pytest.raises(FileNotFoundError):
        checkpoints.signing_key()


def test_roots_at_every_size_match_an_independent_tree(append):
    size = 37
    append(size)
    integrate_now()
    tree = MerkleTree.from_leaf_hashes(_leaves())
    for n in range(size + 1):
        assert checkpoints.root_at(n) == tree.root(n), n


def test_inclusion_proofs_from_the_database_verify(append):
    size = 37
    append(size)
    integrate_now()
    leaves = _leaves()
    for tree_size in (1, 2, 3, 8, 13, 16, 37):
        root = checkpoints.root_at(tree_size)
        for seq in range(tree_size):
            proof = checkpoints.inclusion_proof(seq, tree_size)
            assert len(proof) <= (tree_size - 1).bit_length()
            assert verify_inclusion(leaves[seq], seq, tree_size, proof, root), (seq, tree_size)
            # The same proof does not place another event there, nor this one elsewhere.
            other = leaves[(seq + 1) % tree_size]
            if tree_size > 1:
                assert not verify_inclusion(other, seq, tree_size, proof, root)


def test_consistency_proofs_from_the_database_verify(append):
    size = 24
    append(size)
    integrate_now()
    roots = [checkpoints.root_at(n) for n in range(size + 1)]
    for old in range(1, size + 1):
        for new in range(old, size + 1):
            proof = checkpoints.consistency_proof(old, new)
            assert verify_consistency(old, new, roots[old], roots[new], proof), (old, new)
            if old < new:
                assert not verify_consistency(old, new, roots[old - 1], roots[new], proof)


def test_inclusion_in_a_signed_checkpoint(append):
    append(9)
    checkpoint = checkpoints.create_checkpoint()
    append(5)  # the log grows past the checkpoint; proofs for its size stay valid
    event = AuditEvent.objects.get(seq=6)

    proof = checkpoints.inclusion_proof(6, checkpoint.tree_size)

    assert verify_inclusion(
        bytes.fromhex(event.leaf_hash), 6, checkpoint.tree_size, proof, bytes.fromhex(checkpoint.root_hash)
    )
