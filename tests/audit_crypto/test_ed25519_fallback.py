"""verify_package.py on the standard library alone: its pure-Python Ed25519 verifier against the test
vectors of RFC 8032 section 7.1 (TEST 1-3, cross-checked here with ``cryptography``), against
``cryptography`` on random keys, and the whole package check run with ``cryptography`` unimportable.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import verify_package as vp
from audit.signing import public_key_pem
from tests.audit_crypto.test_verify_package import Writer, run_alone

# RFC 8032, section 7.1: (secret key, public key, message, signature), all hex.
RFC8032_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]
L = 2**252 + 27742317777372353535851937790883648493


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032_VECTORS)
def test_rfc8032_vectors_verify_and_any_change_fails(secret, public, message, signature) -> None:
    key, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    # The vectors are what the RFC says: cryptography derives the same key and signature.
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    assert (
        private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == key
    )
    assert private.sign(msg) == sig

    assert vp.ed25519_verify_pure(key, msg, sig)
    assert not vp.ed25519_verify_pure(key, msg + b"\x00", sig)
    for position in (0, 31, 32, 63):  # R, then S
        flipped = bytearray(sig)
        flipped[position] ^= 0x01
        assert not vp.ed25519_verify_pure(key, msg, bytes(flipped))
    other = bytes.fromhex(RFC8032_VECTORS[0][1] if public != RFC8032_VECTORS[0][1] else RFC8032_VECTORS[1][1])
    assert not vp.ed25519_verify_pure(other, msg, sig)


def test_malleable_and_malformed_inputs_are_refused() -> None:
    _, public, message, signature = RFC8032_VECTORS[1]
    key, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    s = int.from_bytes(sig[32:], "little")
    assert not vp.ed25519_verify_pure(key, msg, sig[:32] + (s + L).to_bytes(32, "little"))  # S + L
    assert not vp.ed25519_verify_pure(key[:31], msg, sig)
    assert not vp.ed25519_verify_pure(key, msg, sig[:63])
    assert not vp.ed25519_verify_pure(b"\xff" * 32, msg, sig)  # y >= p: not a point encoding
    assert not vp.ed25519_verify_pure(key, msg, b"\xff" * 32 + sig[32:])


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300), st.booleans())
def test_the_fallback_agrees_with_cryptography(seed: bytes, message: bytes, tamper: bool) -> None:
    private = Ed25519PrivateKey.from_private_bytes(seed)
    key = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signature = private.sign(message)
    if tamper:
        message += b"!"
    assert vp.ed25519_verify_pure(key, message, signature) is not tamper
    assert vp._ed25519_verify(key, message, signature) is not tamper


def test_a_package_verifies_on_the_standard_library_alone(
    parts, zip_writer: Writer, signing_key, other_key, tmp_path: Path
) -> None:
    good = zip_writer(parts.seal())
    key_file = tmp_path / "published.pem"
    key_file.write_text(public_key_pem(signing_key))

    result = run_alone(tmp_path, str(good), "--public-key", str(key_file), stdlib_only=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "VERDICT: VALID"
    assert "NOTE  Ed25519 signatures checked with the pure Python (RFC 8032) verifier" in result.stdout

    wrong_key = tmp_path / "wrong.pem"
    wrong_key.write_text(public_key_pem(other_key))
    result = run_alone(tmp_path, str(good), "--public-key", str(wrong_key), stdlib_only=True)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith("VERDICT: INVALID: public key: package signed by key")

    entries = parts.seal()
    entries["manifest.sig"] = entries["manifest.sig"][:-6] + b"AAAA=="
    result = run_alone(tmp_path, str(zip_writer(entries)), "--json", stdlib_only=True)
    report = json.loads(result.stdout)
    assert (result.returncode, report["status"]) == (1, "INVALID")
    assert report["reason"].startswith("manifest signature")


def test_environment_problems_read_cannot_verify_not_invalid(tmp_path: Path) -> None:
    result = run_alone(tmp_path, str(tmp_path / "never-written.zip"), stdlib_only=True)
    assert result.returncode == 3
    assert result.stdout.splitlines()[-1].startswith("VERDICT: CANNOT VERIFY: cannot read the package")
    assert result.stderr == ""


def test_a_pem_that_is_not_ed25519_is_refused_without_cryptography(monkeypatch) -> None:
    monkeypatch.setattr(vp, "Ed25519PublicKey", None)
    pem = public_key_pem(Ed25519PrivateKey.generate())
    assert len(vp._load_public_key(pem)) == 32
    for bad in (
        "",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        pem.replace("MCowBQYDK2Vw", "MCowBQYDK2Vx"),
    ):
        with pytest.raises(ValueError):
            vp._load_public_key(bad)
