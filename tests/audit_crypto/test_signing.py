"""audit.signing: key files, fingerprints, tree head layout, domain separation."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import signing
from audit import verify_package as vp
from audit.signing import (
    MANIFEST_DOMAIN,
    STH_DOMAIN,
    TREE_HEAD_SIZE,
    InsecureKeyFileError,
    key_fingerprint,
    load_or_create_private_key,
    load_public_key_pem,
    public_key_pem,
    sign_bytes,
    sign_tree_head,
    tree_head_bytes,
    verify_bytes,
    verify_tree_head,
)

ROOT = hashlib.sha256(b"root").digest()
posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@posix_only
def test_create_then_load_same_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "nested" / "audit.pem"
    key = load_or_create_private_key(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert b"BEGIN PRIVATE KEY" in path.read_bytes()
    again = load_or_create_private_key(path, create=True)
    assert key_fingerprint(again) == key_fingerprint(key)
    assert key_fingerprint(load_or_create_private_key(path, create=False)) == key_fingerprint(key)


def test_missing_key_without_create(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_or_create_private_key(tmp_path / "absent.pem", create=False)


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_refuses_key_readable_by_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "audit.pem"
    load_or_create_private_key(path, create=True)
    path.chmod(mode)
    with pytest.raises(InsecureKeyFileError, match="chmod 600"):
        load_or_create_private_key(path, create=False)
    assert issubclass(InsecureKeyFileError, PermissionError)


@posix_only
def test_refuses_non_ed25519_and_garbage(tmp_path: Path) -> None:
    ec_path = tmp_path / "ec.pem"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_path.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ec_path.chmod(0o600)
    with pytest.raises(ValueError, match="not an Ed25519"):
        load_or_create_private_key(ec_path, create=False)
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a key")
    junk.chmod(0o600)
    with pytest.raises(ValueError, match="not a readable PEM"):
        load_or_create_private_key(junk, create=False)


@posix_only
def test_password_protected_key(tmp_path: Path) -> None:
    path = tmp_path / "enc.pem"
    key = load_or_create_private_key(path, create=True, password=b"s3cret")
    assert b"ENCRYPTED" in path.read_bytes()
    assert key_fingerprint(load_or_create_private_key(path, create=False, password=b"s3cret")) == (
        key_fingerprint(key)
    )
    with pytest.raises(ValueError):
        load_or_create_private_key(path, create=False, password=b"wrong")


def test_public_key_pem_and_fingerprint() -> None:
    key = Ed25519PrivateKey.generate()
    pem = public_key_pem(key)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert public_key_pem(key.public_key()) == pem
    public = load_public_key_pem(pem)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_fingerprint(public) == key_fingerprint(key) == hashlib.sha256(raw).hexdigest()
    with pytest.raises(ValueError):
        load_public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_public_key_pem(ec_pem)
    with pytest.raises(TypeError):
        key_fingerprint("not a key")  # type: ignore[arg-type]


def test_tree_head_layout_is_fixed_and_documented() -> None:
    data = tree_head_bytes(1234, ROOT, 1_735_689_600_000)
    assert len(data) == TREE_HEAD_SIZE == 67
    assert (
        data
        == b"concordance-sth-v1\n" + struct.pack(">Q", 1234) + struct.pack(">Q", 1_735_689_600_000) + ROOT
    )
    assert vp.tree_head_bytes(1234, ROOT, 1_735_689_600_000) == data
    assert vp.STH_DOMAIN == STH_DOMAIN and vp.MANIFEST_DOMAIN == MANIFEST_DOMAIN


@pytest.mark.parametrize(
    ("size", "root", "ts", "error"),
    [
        (-1, ROOT, 0, ValueError),
        (2**64, ROOT, 0, ValueError),
        (1, ROOT, -5, ValueError),
        (1, ROOT[:31], 0, ValueError),
        (1, "00" * 32, 0, ValueError),
        ("1", ROOT, 0, TypeError),
        (True, ROOT, 0, TypeError),
        (1, ROOT, 1.5, TypeError),
    ],
)
def test_tree_head_rejects_bad_values(size: object, root: object, ts: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        tree_head_bytes(size, root, ts)  # type: ignore[arg-type]


def test_sign_and_verify_tree_head() -> None:
    key = Ed25519PrivateKey.generate()
    sig = sign_tree_head(key, 10, ROOT, 99)
    assert len(sig) == 64
    assert verify_tree_head(key.public_key(), 10, ROOT, 99, sig)
    assert verify_tree_head(key, 10, ROOT, 99, sig)  # a private key stands for its public half
    assert not verify_tree_head(key.public_key(), 11, ROOT, 99, sig)
    assert not verify_tree_head(key.public_key(), 10, hashlib.sha256(b"x").digest(), 99, sig)
    assert not verify_tree_head(key.public_key(), 10, ROOT, 100, sig)
    assert not verify_tree_head(Ed25519PrivateKey.generate().public_key(), 10, ROOT, 99, sig)
    assert not verify_tree_head(key.public_key(), 10, ROOT, 99, sig[:63])
    assert not verify_tree_head(key.public_key(), -1, ROOT, 99, sig)


def test_manifest_signatures_and_domain_separation() -> None:
    key = Ed25519PrivateKey.generate()
    doc = b'{"package_id":"p"}'
    sig = sign_bytes(key, doc)
    assert verify_bytes(key.public_key(), doc, sig)
    assert not verify_bytes(key.public_key(), doc + b" ", sig)
    assert key.public_key().verify(sig, MANIFEST_DOMAIN + doc) is None  # documented message layout
    # A manifest signature never doubles as a tree head signature, and vice versa.
    head = tree_head_bytes(5, ROOT, 7)
    assert not verify_tree_head(key.public_key(), 5, ROOT, 7, sign_bytes(key, head[len(STH_DOMAIN) :]))
    sth_sig = sign_tree_head(key, 5, ROOT, 7)
    assert not verify_bytes(key.public_key(), head, sth_sig)
    assert not verify_bytes(key.public_key(), head[len(STH_DOMAIN) :], sth_sig)
    # Other purposes get their own domain; the tree head domain is reserved.
    other = b"concordance-evidence-note-v2\n"
    assert verify_bytes(key, doc, sign_bytes(key, doc, domain=other), domain=other)
    assert not verify_bytes(key, doc, sign_bytes(key, doc, domain=other))
    for bad in (STH_DOMAIN, b"concordance-manifest-v1", b"evil\n", b"", "concordance-x-v1\n"):
        with pytest.raises(ValueError):
            sign_bytes(key, doc, domain=bad)  # type: ignore[arg-type]


def test_module_has_no_django_dependency() -> None:
    import ast

    for module in (signing, vp):
        tree = ast.parse(Path(module.__file__).read_text())
        names = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
        }
        assert "django" not in names
