"""Ed25519 signing of tree heads (checkpoints) and export manifests.

Standard library plus ``cryptography`` only, no Django: the byte layouts defined here are re-implemented
by the standalone ``audit/verify_package.py`` and must stay in step with it (a test checks both).

Every signed message starts with a domain-separation prefix, so a signature made for one purpose can
never be replayed as another (a manifest signature is not a valid tree head signature, and vice versa):

* tree heads: :data:`STH_DOMAIN` (``b"concordance-sth-v1\\n"``), see :func:`tree_head_bytes`;
* export manifests: :data:`MANIFEST_DOMAIN` (``b"concordance-manifest-v1\\n"``), see :func:`sign_bytes`.

Key files hold an unencrypted (or, with ``password``, encrypted) PKCS#8 PEM private key. The file system
is the protection, so :func:`load_or_create_private_key` creates the file with mode 0600 and refuses to
load a key that group or others can access, like OpenSSH does.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "MANIFEST_DOMAIN",
    "SIGNATURE_SIZE",
    "STH_DOMAIN",
    "TREE_HEAD_SIZE",
    "InsecureKeyFileError",
    "key_fingerprint",
    "load_or_create_private_key",
    "load_public_key_pem",
    "public_key_pem",
    "sign_bytes",
    "sign_tree_head",
    "tree_head_bytes",
    "verify_bytes",
    "verify_tree_head",
]

#: Prefix of every signed tree head; the version changes if the layout ever does.
STH_DOMAIN = b"concordance-sth-v1\n"
#: Prefix of the export manifest signature: ``Ed25519(MANIFEST_DOMAIN || manifest.json bytes)``.
MANIFEST_DOMAIN = b"concordance-manifest-v1\n"
SIGNATURE_SIZE = 64
_HASH_SIZE = 32
_UINT64_MAX = 2**64 - 1
#: ``len(tree_head_bytes(...))``: domain (19) + tree_size (8) + timestamp_ms (8) + root (32).
TREE_HEAD_SIZE = len(STH_DOMAIN) + 8 + 8 + _HASH_SIZE

# Domains for sign_bytes: same shape as ours, so a caller cannot pick one that prefixes another.
_DOMAIN_RE = re.compile(rb"concordance-[a-z0-9]+(?:-[a-z0-9]+)*-v[0-9]+\n")

PublicKeyLike = Ed25519PublicKey | Ed25519PrivateKey


class InsecureKeyFileError(PermissionError):
    """The private key file is accessible to group or others; fix with ``chmod 600``."""


# --------------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------------


def load_or_create_private_key(
    path: Path, *, create: bool, password: bytes | None = None
) -> Ed25519PrivateKey:
    """Load the Ed25519 private key at ``path``, or create it there when ``create`` is true.

    * Existing file: on POSIX it must not be accessible to group or others, otherwise
      :class:`InsecureKeyFileError` is raised (refusing is safer than warning: a leaked signing key
      lets anyone forge checkpoints). A file that is not an Ed25519 PEM key raises ``ValueError``.
    * Missing file, ``create=False``: ``FileNotFoundError``.
    * Missing file, ``create=True``: a new key is written as PKCS#8 PEM, atomically and exclusively
      (``O_CREAT | O_EXCL``, so two processes racing cannot each write a different key) with mode
      0600; missing parent directories are created with mode 0700.

    ``password`` encrypts (on create) or decrypts (on load) the PEM.
    """
    path = Path(path)
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"signing key {path} does not exist")
        key = Ed25519PrivateKey.generate()
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            # Another process won the race: use its key, not ours.
            return load_or_create_private_key(path, create=False, password=password)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        return key

    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise InsecureKeyFileError(
                f"signing key {path} has mode {mode:04o}; it must not be accessible to group or others "
                f"(run: chmod 600 {path})"
            )
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not a readable PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def _public(key: PublicKeyLike) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    if isinstance(key, Ed25519PublicKey):
        return key
    raise TypeError(f"expected an Ed25519 key, not {type(key).__name__}")


def public_key_pem(key: PublicKeyLike) -> str:
    """The SubjectPublicKeyInfo PEM of ``key`` (a private key gives its public half)."""
    return (
        _public(key)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def load_public_key_pem(pem: str | bytes) -> Ed25519PublicKey:
    """Parse a SubjectPublicKeyInfo PEM; raises ``ValueError`` unless it is an Ed25519 public key."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"expected an Ed25519 public key, not {type(key).__name__}")
    return key


def key_fingerprint(key: PublicKeyLike) -> str:
    """Lowercase hex SHA-256 of the 32 raw public key bytes (the key's stable identifier)."""
    raw = _public(key).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


# --------------------------------------------------------------------------------------------------
# Tree heads
# --------------------------------------------------------------------------------------------------


def tree_head_bytes(tree_size: int, root_hash: bytes, timestamp_ms: int) -> bytes:
    """The exact bytes signed for a checkpoint (signed tree head), fixed length :data:`TREE_HEAD_SIZE`.

    Layout::

        b"concordance-sth-v1\\n"       19 bytes, domain separation and version
        tree_size                      uint64, big-endian
        timestamp_ms                   uint64, big-endian, milliseconds since the Unix epoch (UTC)
        root_hash                      32 bytes, RFC 9162 MTH of the first tree_size leaves

    A fixed binary layout leaves nothing to canonicalise, so a verifier in any language can rebuild
    it with one line of code.
    """
    for name, value in (("tree_size", tree_size), ("timestamp_ms", timestamp_ms)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if not 0 <= value <= _UINT64_MAX:
            raise ValueError(f"{name} must fit in an unsigned 64-bit integer, got {value}")
    if not isinstance(root_hash, bytes | bytearray) or len(root_hash) != _HASH_SIZE:
        raise ValueError(f"root_hash must be {_HASH_SIZE} bytes")
    return STH_DOMAIN + struct.pack(">QQ", tree_size, timestamp_ms) + bytes(root_hash)


def sign_tree_head(key: Ed25519PrivateKey, tree_size: int, root_hash: bytes, timestamp_ms: int) -> bytes:
    """Ed25519 signature (64 bytes) over :func:`tree_head_bytes`."""
    return key.sign(tree_head_bytes(tree_size, root_hash, timestamp_ms))


def verify_tree_head(
    public_key: PublicKeyLike, tree_size: int, root_hash: bytes, timestamp_ms: int, signature: bytes
) -> bool:
    """True iff ``signature`` is ``public_key``'s signature over this tree head (False if malformed)."""
    try:
        message = tree_head_bytes(tree_size, root_hash, timestamp_ms)
    except (TypeError, ValueError):
        return False
    return _verify(_public(public_key), message, signature)


# --------------------------------------------------------------------------------------------------
# Arbitrary documents (export manifests)
# --------------------------------------------------------------------------------------------------


def _check_domain(domain: bytes) -> bytes:
    if not isinstance(domain, bytes) or not _DOMAIN_RE.fullmatch(domain):
        raise ValueError(f"domain must look like b'concordance-<purpose>-v<N>\\n', got {domain!r}")
    if domain == STH_DOMAIN:
        # Tree heads have their own fixed layout; signing free-form bytes under their domain would
        # let a caller mint arbitrary checkpoints.
        raise ValueError("the tree head domain is reserved for sign_tree_head")
    return domain


def sign_bytes(key: Ed25519PrivateKey, data: bytes, *, domain: bytes = MANIFEST_DOMAIN) -> bytes:
    """Ed25519 signature over ``domain || data`` (default: the export manifest domain)."""
    return key.sign(_check_domain(domain) + bytes(data))


def verify_bytes(
    public_key: PublicKeyLike, data: bytes, signature: bytes, *, domain: bytes = MANIFEST_DOMAIN
) -> bool:
    """True iff ``signature`` is ``public_key``'s signature over ``domain || data``."""
    return _verify(_public(public_key), _check_domain(domain) + bytes(data), signature)


def _verify(public_key: Ed25519PublicKey, message: bytes, signature: bytes) -> bool:
    if not isinstance(signature, bytes | bytearray) or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        public_key.verify(bytes(signature), message)
    except InvalidSignature:
        return False
    return True
