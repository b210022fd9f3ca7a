#!/usr/bin/env python3
"""Offline verifier for Concordance audit export packages.

Usage::

    python verify_package.py PACKAGE.zip [--public-key KEY.pem] [--json]
    python verify_package.py PROOF.json  [--public-key KEY.pem] [--json]

The second form checks a proof document downloaded from the auditor's proof viewer (format
``concordance-proof-v1``, described at :data:`PROOF_FORMAT`): a JSON file is recognised by its
first character ``{``, a package is a ZIP.

Prints one line per check and a final verdict: ``VERDICT: VALID``; ``VERDICT: INVALID: <first
reason>`` when the evidence fails (altered, incomplete, wrongly signed); or ``VERDICT: CANNOT VERIFY:
<reason>`` when this machine could not check it (unreadable file or key, out of memory), which says
nothing about the evidence. Exits 0 valid, 1 invalid, 3 cannot verify (2 for usage errors). Pass
``--public-key`` with the organisation's published signing key: without it the verifier can only show
that the package is internally consistent and signed by *the key it carries*, which anyone could
have generated.

This file is self-contained on purpose: the Python 3.11+ standard library alone (the ``cryptography``
package is used for Ed25519 when installed, else a pure-Python RFC 8032 verifier). It is copied alone
into every export package so that a court expert, an auditor or an opposing party can run it without
Concordance. It therefore carries its own copies of the canonical JSON encoder
(``audit/canonical.py``), the RFC 9162 verification algorithms (``audit/merkle/proofs.py``) and the
signed byte layouts (``audit/signing.py``); the project's tests check that the copies agree. It is
kept as one file (over the house's 600-line guideline) because a recipient must be able to run it
alone.

Package layout (ZIP)::

    manifest.json          {"package_id", "created_at", "files": [{"path", "size", "sha256"}],
                            "checkpoints": [{"tree_size", "root_hash", "timestamp_ms", "signature"}],
                            "public_key_pem", "public_key_fingerprint", ...}
    manifest.sig           base64 Ed25519 signature over b"concordance-manifest-v1\\n" || manifest.json
    audit/events.jsonl     one {"seq", "leaf_hash", "event", "inclusion_proof", "checkpoint_tree_size"}
                           per line, seq ascending; seq is the event's 0-based leaf index in the log
    audit/consistency.json [{"old_size", "new_size", "proof"}] for each consecutive pair of checkpoints
    audit/redacted_events.jsonl  optional (de-identified packages): one {"seq", "leaf_hash",
                           "inclusion_proof", "checkpoint_tree_size"} per line, seq ascending: events
                           whose contents are withheld, proven to be in the log all the same
    ...                    any other file, as long as manifest.json lists it

Proof document (JSON, ``"format": "concordance-proof-v1"``)::

    {"format", "created_at", "subject": {...}, "public_key_pem", "public_key_fingerprint",
     "checkpoints": [{"tree_size", "root_hash", "timestamp_ms", "signature"}],
     "consistency": [{"old_size", "new_size", "proof"}],     one per consecutive pair of checkpoints
     "events": [{"seq", "leaf_hash", "event", "inclusion_proof", "checkpoint_tree_size"}]}

It is not signed as a whole and needs not be: each event is bound to a signed checkpoint by its
leaf hash and inclusion proof, and the checkpoints to each other by consistency proofs. What it
proves is that the listed events are in the log as shown; not that the log holds no other event
about the same subject (``subject`` is a label, not evidence).

Hashes are lowercase hex, signatures standard base64. A checkpoint signature covers
``b"concordance-sth-v1\\n" || uint64be(tree_size) || uint64be(timestamp_ms) || root_hash``.
Checkpoints must be listed with strictly increasing tree sizes.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import decimal
import hashlib
import hmac
import json
import math
import re
import stat
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # the pure-Python RFC 8032 verifier below takes over
    Ed25519PublicKey = None  # type: ignore[assignment,misc]

__all__ = ["Check", "Limits", "Report", "main", "verify_package", "verify_proof"]

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
EVENTS_NAME = "audit/events.jsonl"
CONSISTENCY_NAME = "audit/consistency.json"
REDACTED_NAME = "audit/redacted_events.jsonl"
PROOF_FORMAT = "concordance-proof-v1"

MANIFEST_DOMAIN = b"concordance-manifest-v1\n"
STH_DOMAIN = b"concordance-sth-v1\n"
HASH_SIZE = 32
SIGNATURE_SIZE = 64
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 64
# 64 hashes cover any tree of up to 2**64 leaves (inclusion) or 2**32 (consistency); longer is junk.
MAX_PROOF_LENGTH = 128

_HEX64 = re.compile(r"[0-9a-f]{64}")


# ==================================================================================================
# Copy of audit/canonical.py (canonical_json). Keep in step: tests compare the two.
# ==================================================================================================


def canonical_json(obj: object) -> bytes:
    """RFC 8785-style canonical JSON; identical to ``audit.canonical.canonical_json``."""
    parts: list[str] = []
    _encode(obj, parts, 0)
    return "".join(parts).encode("utf-8")


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _encode(obj: object, parts: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"nesting deeper than {MAX_DEPTH} levels")
    if obj is None:
        parts.append("null")
    elif obj is True:
        parts.append("true")
    elif obj is False:
        parts.append("false")
    elif isinstance(obj, str):
        parts.append(_encode_string(obj))
    elif isinstance(obj, int):
        parts.append(_encode_int(obj))
    elif isinstance(obj, float):
        parts.append(_encode_float(obj))
    elif isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, str):
                raise TypeError(f"object keys must be str, not {type(key).__name__}")
        parts.append("{")
        for i, key in enumerate(sorted(obj, key=_utf16_key)):
            if i:
                parts.append(",")
            parts.append(_encode_string(key))
            parts.append(":")
            _encode(obj[key], parts, depth + 1)
        parts.append("}")
    elif isinstance(obj, list | tuple):
        parts.append("[")
        for i, item in enumerate(obj):
            if i:
                parts.append(",")
            _encode(item, parts, depth + 1)
        parts.append("]")
    else:
        raise TypeError(
            f"{type(obj).__name__} is not canonical-JSON serialisable; convert it explicitly "
            "(e.g. datetimes to ISO 8601 strings)"
        )


def _encode_int(i: int) -> str:
    if -MAX_SAFE_INTEGER <= i <= MAX_SAFE_INTEGER:
        return str(int(i))
    # Beyond 2**53 a JSON number is a double: print the nearest double the ECMAScript way, and accept
    # the integer only if that text still denotes exactly this integer (so no verifier rounds it, and
    # parsing then re-encoding gives the same bytes).
    try:
        text = _encode_float(float(i))
    except (OverflowError, ValueError):
        text = ""
    if not text or decimal.Decimal(text) != i:
        raise ValueError(f"integer {i} does not survive as a JSON number (a double); encode it as a string")
    return text


def _encode_string(s: str) -> str:
    encoded = encode_basestring(s)  # what json.dumps(s, ensure_ascii=False) calls, minus its setup
    try:
        encoded.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"string contains a lone surrogate at position {exc.start - 1}") from None
    return encoded


def _encode_float(x: float) -> str:
    if not math.isfinite(x):
        raise ValueError(f"{x!r} is not allowed in canonical JSON")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    mantissa, _, exp_text = repr(abs(x)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    if frac_part == "0":
        frac_part = ""
    digits = (int_part + frac_part).lstrip("0")
    n = len(int_part) + (int(exp_text) if exp_text else 0)
    if int_part == "0":
        n -= len(frac_part) - len(frac_part.lstrip("0")) + 1
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + out


# ==================================================================================================
# Copy of the verification half of audit/merkle/proofs.py (RFC 9162). Keep in step: tests compare the two.
# ==================================================================================================


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2; identical to ``audit.merkle.verify_inclusion``."""
    if not (_is_hash(leaf_hash) and _is_hash(root) and _is_size(index) and _is_size(tree_size)):
        return False
    if not all(_is_hash(p) for p in proof):
        return False
    if index >= tree_size:
        return False
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2 (strict edge cases); identical to ``audit.merkle.verify_consistency``."""
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
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
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
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)


# ==================================================================================================
# Copy of the signed layouts of audit/signing.py.
# ==================================================================================================


def tree_head_bytes(tree_size: int, root_hash: bytes, timestamp_ms: int) -> bytes:
    """``STH_DOMAIN || uint64be(tree_size) || uint64be(timestamp_ms) || root_hash``."""
    return STH_DOMAIN + struct.pack(">QQ", tree_size, timestamp_ms) + root_hash


def _ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Verify with ``cryptography`` when installed, else with the pure-Python verifier below."""
    if Ed25519PublicKey is None:
        return ed25519_verify_pure(public_key, message, signature)
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _raw_public_key(public_key: bytes) -> bytes:
    return public_key


# DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410): this fixed prefix, then the 32-byte key.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def _load_public_key(pem: str | bytes) -> bytes:
    """The raw 32-byte Ed25519 key of a PEM ``PUBLIC KEY``; ValueError for anything else."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    if Ed25519PublicKey is not None:
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"expected an Ed25519 public key, not {type(key).__name__}")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    text = data.decode("ascii").strip()
    match = re.fullmatch(
        r"-----BEGIN PUBLIC KEY-----\s+([A-Za-z0-9+/=\s]+?)\s*-----END PUBLIC KEY-----", text
    )
    if match is None:
        raise ValueError("not a PEM PUBLIC KEY block")
    der = base64.b64decode("".join(match.group(1).split()), validate=True)
    if len(der) != len(_ED25519_SPKI_PREFIX) + 32 or not der.startswith(_ED25519_SPKI_PREFIX):
        raise ValueError("expected an Ed25519 public key (RFC 8410 SubjectPublicKeyInfo)")
    return der[len(_ED25519_SPKI_PREFIX) :]


# ==================================================================================================
# Pure-Python Ed25519 verification (RFC 8032 section 5.1.7), used when `cryptography` is absent.
# Slow (milliseconds per signature) but a package holds few signatures. Checked against the RFC's
# test vectors by the project's tests; like OpenSSL it refuses S >= L and non-canonical encodings.
# ==================================================================================================

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if x & 1 != sign:
        x = _P - x
    return x


def _decode_point(data: bytes) -> tuple[int, int, int, int] | None:
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


def _point_add(p: tuple[int, int, int, int], q: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _point_mul(scalar: int, point: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    result = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _point_add(result, point)
        point = _point_add(point, point)
        scalar >>= 1
    return result


def _encode_point(point: tuple[int, int, int, int]) -> bytes:
    z_inv = pow(point[2], _P - 2, _P)
    x, y = point[0] * z_inv % _P, point[1] * z_inv % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


_BASE_Y = 4 * pow(5, _P - 2, _P) % _P
_BASE = (_recover_x(_BASE_Y, 0) or 0, _BASE_Y, 1, (_recover_x(_BASE_Y, 0) or 0) * _BASE_Y % _P)


def ed25519_verify_pure(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 Ed25519 verification in pure Python: [S]B == R + [k]A, comparing encodings."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    point_a = _decode_point(public_key)
    r_bytes, s = signature[:32], int.from_bytes(signature[32:], "little")
    if point_a is None or s >= _L or _decode_point(r_bytes) is None:
        return False
    k = int.from_bytes(hashlib.sha512(r_bytes + public_key + message).digest(), "little") % _L
    # R' = [S]B - [k]A; -A = (-x, y, z, -t). Comparing encodings refuses a non-canonical R.
    minus_a = (_P - point_a[0], point_a[1], point_a[2], _P - point_a[3])
    return _encode_point(_point_add(_point_mul(s, _BASE), _point_mul(k, minus_a))) == r_bytes


def ed25519_backend() -> str:
    """Which Ed25519 implementation this run uses."""
    return "cryptography" if Ed25519PublicKey is not None else "pure Python (RFC 8032)"


# ==================================================================================================
# The report
# ==================================================================================================


@dataclass(frozen=True)
class Limits:
    """Resource caps, so a hostile package (zip bomb, giant lines) cannot exhaust the verifier."""

    max_members: int = 100_000
    max_member_bytes: int = 4 * 1024**3
    max_total_bytes: int = 16 * 1024**3
    max_manifest_bytes: int = 64 * 1024**2
    max_consistency_bytes: int = 64 * 1024**2
    max_line_bytes: int = 16 * 1024**2
    max_signature_file_bytes: int = 1024


@dataclass
class Check:
    """One verification step: its name, whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    """Outcome of :func:`verify_package`. ``valid`` is true only if every check ran and passed."""

    path: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    package_id: str | None = None
    event_count: int = 0
    checkpoint_count: int = 0
    cannot_verify: str | None = None  # an environment problem: nothing is known about the evidence

    @property
    def valid(self) -> bool:
        return self.cannot_verify is None and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def status(self) -> str:
        """``VALID``, ``INVALID`` (the evidence fails) or ``CANNOT VERIFY`` (the environment failed)."""
        if self.cannot_verify is not None:
            return "CANNOT VERIFY"
        return "VALID" if self.valid else "INVALID"

    @property
    def reason(self) -> str | None:
        """The first failure as ``"<check>: <detail>"``, or None when valid."""
        if self.cannot_verify is not None:
            return self.cannot_verify
        for c in self.checks:
            if not c.ok:
                return f"{c.name}: {c.detail}"
        return None if self.checks else "no checks ran"

    @property
    def verdict(self) -> str:
        return "VERDICT: VALID" if self.valid else f"VERDICT: {self.status}: {self.reason}"

    def passed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, True, detail))

    def failed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, False, detail))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "valid": self.valid,
            "status": self.status,
            "reason": self.reason,
            "verdict": self.verdict,
            "package_id": self.package_id,
            "event_count": self.event_count,
            "checkpoint_count": self.checkpoint_count,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "notes": list(self.notes),
        }


class _Invalid(Exception):
    """A specific, human-readable reason why some input is not acceptable."""


class _Stop(Exception):
    """A failed check that later checks depend on; the report already says why."""


# ==================================================================================================
# Parsing helpers: every failure becomes an _Invalid with a clear message, never a traceback.
# ==================================================================================================


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            # Two parsers could pick different values for a duplicated key; refuse the ambiguity.
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _loads(data: bytes, what: str) -> Any:
    try:
        text = data.decode("utf-8")
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
        )
    except UnicodeDecodeError as exc:
        raise _Invalid(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise _Invalid(f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise _Invalid(f"{what} is not valid JSON: {exc}") from None


def _field(obj: dict[str, Any], key: str, what: str) -> Any:
    if key not in obj:
        raise _Invalid(f"{what} has no {key!r}")
    return obj[key]


def _int(obj: dict[str, Any], key: str, what: str, *, minimum: int = 0) -> int:
    value = _field(obj, key, what)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum or value > 2**64 - 1:
        raise _Invalid(f"{what}: {key!r} must be an integer >= {minimum}")
    return value


def _str(obj: dict[str, Any], key: str, what: str) -> str:
    value = _field(obj, key, what)
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{what}: {key!r} must be a non-empty string")
    return value


def _hex32(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise _Invalid(f"{what} must be 64 lowercase hex digits")
    return bytes.fromhex(value)


def _proof(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise _Invalid(f"{what} must be a list of hashes")
    if len(value) > MAX_PROOF_LENGTH:
        raise _Invalid(f"{what} has {len(value)} hashes (at most {MAX_PROOF_LENGTH})")
    return [_hex32(h, f"{what}[{i}]") for i, h in enumerate(value)]


def _b64_signature(value: Any, what: str) -> bytes:
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise _Invalid(f"{what} is not base64") from None
    if not isinstance(value, str):
        raise _Invalid(f"{what} must be a base64 string")
    try:
        sig = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _Invalid(f"{what} is not valid base64") from None
    if len(sig) != SIGNATURE_SIZE:
        raise _Invalid(f"{what} is {len(sig)} bytes, an Ed25519 signature is {SIGNATURE_SIZE}")
    return sig


def _name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe relative path inside the package, or None if it is."""
    if not name:
        return "empty name"
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in name):
        return "control character in name"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/"):
        return "absolute path"
    parts = name.rstrip("/").split("/")
    if ":" in parts[0]:
        return "drive or scheme prefix"
    if any(part in ("", ".", "..") for part in parts):
        return "'.', '..' or empty path component"
    return None


_READ_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError)


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    if info.file_size > cap:
        raise _Invalid(f"{info.filename} is {info.file_size} bytes (limit {cap})")
    try:
        with zf.open(info) as fh:
            data = fh.read(cap + 1)
    except _READ_ERRORS as exc:
        raise _Invalid(f"{info.filename} cannot be read: {exc}") from None
    if len(data) > cap:
        raise _Invalid(f"{info.filename} is larger than {cap} bytes")
    return data


# ==================================================================================================
# The checks
# ==================================================================================================


@dataclass
class _Checkpoint:
    tree_size: int
    root_hash: bytes
    timestamp_ms: int
    signature: bytes


@dataclass
class _State:
    zf: zipfile.ZipFile | None  # None for a proof document (plain JSON, no archive)
    limits: Limits
    members: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    manifest_bytes: bytes = b""
    manifest: dict[str, Any] = field(default_factory=dict)
    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    checkpoints: list[_Checkpoint] = field(default_factory=list)
    public_key: Any = None


def verify_package(
    path: str | Path, expected_public_key_pem: str | bytes | None = None, *, limits: Limits | None = None
) -> Report:
    """Verify the export package at ``path``; never raises for a bad package, returns a :class:`Report`.

    ``expected_public_key_pem`` pins the signing key: without it, the report notes that the package
    was only checked against the key it carries.
    """
    report = Report(path=str(path))
    if Ed25519PublicKey is None:
        report.notes.append(f"Ed25519 signatures checked with the {ed25519_backend()} verifier")
    limits = limits or Limits()
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, ValueError) as exc:
        report.failed("zip structure", f"cannot open as a ZIP archive: {exc}")
        return report
    except OSError as exc:  # missing, unreadable: the file could not be examined at all
        report.cannot_verify = f"cannot read the package: {exc}"
        return report
    with zf:
        steps = (
            _check_structure,
            _check_manifest,
            _check_public_key,
            _check_manifest_signature,
            _check_inventory,
            _check_digests,
            _check_checkpoints,
            _check_consistency,
            _check_events,
            _check_redacted_events,
        )
        _run_steps(steps, _State(zf=zf, limits=limits), report, expected_public_key_pem)
    return report


def _run_steps(steps: Sequence[Any], state: _State, report: Report, expected: str | bytes | None) -> None:
    """Run the checks in order; stop at a failure later checks depend on, or when this machine fails."""
    for step in steps:
        try:
            step(state, report, expected)
        except _Stop:
            break
        except (MemoryError, OSError) as exc:  # this machine failed, not the evidence
            report.cannot_verify = f"{step.__name__.removeprefix('_check_')}: {exc!r}"
            break
        except Exception as exc:  # a verifier reports problems, it never crashes on them
            report.failed(step.__name__.removeprefix("_check_"), f"unexpected error: {exc!r}")
            break


def _check_structure(state: _State, report: Report, _expected: object) -> None:
    name = "zip structure"
    infos = state.zf.infolist()
    limits = state.limits
    if len(infos) > limits.max_members:
        report.failed(name, f"{len(infos)} entries (limit {limits.max_members})")
        raise _Stop
    total = 0
    seen: set[str] = set()
    for info in infos:
        fname = info.filename
        problem = _name_problem(fname)
        if problem:
            report.failed(name, f"unsafe entry name {fname!r}: {problem}")
            raise _Stop
        # A repeated name is ambiguous (readers disagree on which copy wins), so it is never accepted.
        if fname.rstrip("/") in seen:
            report.failed(name, f"duplicate entry {fname!r}")
            raise _Stop
        seen.add(fname.rstrip("/"))
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            report.failed(name, f"entry {fname!r} is a symbolic link")
            raise _Stop
        if info.flag_bits & 0x1:
            report.failed(name, f"entry {fname!r} is encrypted")
            raise _Stop
        if info.is_dir():
            if info.file_size:
                report.failed(name, f"directory entry {fname!r} has content")
                raise _Stop
            continue
        if info.file_size > limits.max_member_bytes:
            report.failed(
                name, f"entry {fname!r} is {info.file_size} bytes (limit {limits.max_member_bytes})"
            )
            raise _Stop
        total += info.file_size
        if total > limits.max_total_bytes:
            report.failed(name, f"entries expand to more than {limits.max_total_bytes} bytes")
            raise _Stop
        state.members[fname] = info
    report.passed(name, f"{len(state.members)} files, {total} bytes uncompressed")


def _check_manifest(state: _State, report: Report, _expected: object) -> None:
    name = "manifest"
    info = state.members.get(MANIFEST_NAME)
    if info is None:
        report.failed(name, f"{MANIFEST_NAME} is missing")
        raise _Stop
    try:
        data = _read_member(state.zf, info, state.limits.max_manifest_bytes)
        manifest = _loads(data, MANIFEST_NAME)
        if not isinstance(manifest, dict):
            raise _Invalid(f"{MANIFEST_NAME} must be a JSON object")
        report.package_id = _str(manifest, "package_id", MANIFEST_NAME)
        _str(manifest, "created_at", MANIFEST_NAME)
        _str(manifest, "public_key_pem", MANIFEST_NAME)
        _hex32(_field(manifest, "public_key_fingerprint", MANIFEST_NAME), "public_key_fingerprint")

        files = _field(manifest, "files", MANIFEST_NAME)
        if not isinstance(files, list):
            raise _Invalid("'files' must be a list")
        for i, entry in enumerate(files):
            what = f"files[{i}]"
            if not isinstance(entry, dict):
                raise _Invalid(f"{what} must be an object")
            fpath = _str(entry, "path", what)
            problem = _name_problem(fpath)
            if problem or fpath.endswith("/"):
                raise _Invalid(f"{what}: unsafe path {fpath!r}: {problem or 'directory'}")
            if fpath in state.files:
                raise _Invalid(f"{what}: {fpath!r} is listed twice")
            size = _int(entry, "size", what)
            digest = _field(entry, "sha256", what)
            _hex32(digest, f"{what}.sha256")
            state.files[fpath] = (size, digest)

        state.checkpoints = _parse_checkpoints(_field(manifest, "checkpoints", MANIFEST_NAME))
    except _Invalid as exc:
        report.failed(name, str(exc))
        raise _Stop from None
    state.manifest_bytes = data
    state.manifest = manifest
    report.checkpoint_count = len(state.checkpoints)
    report.passed(
        name,
        f"package {report.package_id}, created {manifest['created_at']}, "
        f"{len(state.files)} files, {len(state.checkpoints)} checkpoints",
    )


def _parse_checkpoints(checkpoints: Any) -> list[_Checkpoint]:
    """The signed tree heads listed in a manifest or a proof document."""
    if not isinstance(checkpoints, list):
        raise _Invalid("'checkpoints' must be a list")
    parsed = []
    for i, entry in enumerate(checkpoints):
        what = f"checkpoints[{i}]"
        if not isinstance(entry, dict):
            raise _Invalid(f"{what} must be an object")
        parsed.append(
            _Checkpoint(
                tree_size=_int(entry, "tree_size", what, minimum=1),
                root_hash=_hex32(_field(entry, "root_hash", what), f"{what}.root_hash"),
                timestamp_ms=_int(entry, "timestamp_ms", what),
                signature=_b64_signature(_field(entry, "signature", what), f"{what}.signature"),
            )
        )
    return parsed


def _check_public_key(state: _State, report: Report, expected: str | bytes | None) -> None:
    name = "public key"
    try:
        key = _load_public_key(state.manifest["public_key_pem"])
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        report.failed(name, f"public_key_pem is not an Ed25519 public key: {exc}")
        raise _Stop from None
    state.public_key = key
    raw = _raw_public_key(key)
    fingerprint = hashlib.sha256(raw).hexdigest()
    if fingerprint != state.manifest["public_key_fingerprint"]:
        report.failed(name, f"public_key_fingerprint does not match the key (key is {fingerprint})")
        return
    if expected is None:
        report.notes.append(
            "the signing key was taken from the package itself; pass --public-key with the "
            "organisation's published key to establish who signed it"
        )
        report.passed(name, f"Ed25519 key {fingerprint} (not pinned)")
        return
    try:
        expected_raw = _raw_public_key(_load_public_key(expected))
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        report.failed(name, f"the expected public key is not an Ed25519 PEM public key: {exc}")
        return
    if not hmac.compare_digest(raw, expected_raw):
        report.failed(
            name,
            f"package signed by key {fingerprint}, expected key {hashlib.sha256(expected_raw).hexdigest()}",
        )
        return
    report.passed(name, f"Ed25519 key {fingerprint} matches the expected key")


def _check_manifest_signature(state: _State, report: Report, _expected: object) -> None:
    name = "manifest signature"
    info = state.members.get(SIGNATURE_NAME)
    if info is None:
        report.failed(name, f"{SIGNATURE_NAME} is missing")
        return
    try:
        raw = _read_member(state.zf, info, state.limits.max_signature_file_bytes)
        signature = _b64_signature(raw, SIGNATURE_NAME)
    except _Invalid as exc:
        report.failed(name, str(exc))
        return
    if not _ed25519_verify(state.public_key, MANIFEST_DOMAIN + state.manifest_bytes, signature):
        report.failed(name, "signature does not verify for manifest.json")
        return
    report.passed(name, "Ed25519 signature over manifest.json is valid")


def _check_inventory(state: _State, report: Report, _expected: object) -> None:
    name = "file inventory"
    for reserved in (MANIFEST_NAME, SIGNATURE_NAME):
        if reserved in state.files:
            report.failed(name, f"{reserved} must not be listed in the manifest")
            return
    for required in (EVENTS_NAME, CONSISTENCY_NAME):
        if required not in state.files:
            report.failed(name, f"{required} is not listed in the manifest")
            return
    for fpath in state.files:
        if fpath not in state.members:
            report.failed(name, f"listed file {fpath} is missing from the package")
            return
    for fname in state.members:
        if fname not in state.files and fname not in (MANIFEST_NAME, SIGNATURE_NAME):
            report.failed(name, f"unlisted file {fname} is in the package")
            return
    report.passed(name, f"all {len(state.files)} listed files present, no unlisted files")


def _check_digests(state: _State, report: Report, _expected: object) -> None:
    name = "file digests"
    total = 0
    for fpath, (size, digest) in state.files.items():
        info = state.members.get(fpath)
        if info is None:
            continue  # already reported by the inventory check
        if info.file_size != size:
            report.failed(name, f"{fpath}: size is {info.file_size} bytes, the manifest says {size}")
            return
        hasher = hashlib.sha256()
        read = 0
        try:
            with state.zf.open(info) as fh:
                while chunk := fh.read(1 << 20):
                    read += len(chunk)
                    if read > size:
                        break
                    hasher.update(chunk)
        except _READ_ERRORS as exc:
            report.failed(name, f"{fpath}: cannot be read: {exc}")
            return
        if read != size:
            report.failed(name, f"{fpath}: {read} bytes read, the manifest says {size}")
            return
        if hasher.hexdigest() != digest:
            report.failed(name, f"{fpath}: SHA-256 does not match the manifest")
            return
        total += size
    report.passed(name, f"{len(state.files)} files, {total} bytes, sizes and SHA-256 match")


def _check_checkpoints(state: _State, report: Report, _expected: object) -> None:
    name = "checkpoints"
    previous: _Checkpoint | None = None
    for i, cp in enumerate(state.checkpoints):
        message = tree_head_bytes(cp.tree_size, cp.root_hash, cp.timestamp_ms)
        if not _ed25519_verify(state.public_key, message, cp.signature):
            report.failed(name, f"checkpoint {i} (tree size {cp.tree_size}): signature does not verify")
            return
        if previous is not None:
            if cp.tree_size <= previous.tree_size:
                report.failed(name, f"checkpoint {i}: tree sizes must strictly increase")
                return
            if cp.timestamp_ms < previous.timestamp_ms:
                report.failed(name, f"checkpoint {i}: timestamp is earlier than the previous checkpoint's")
                return
        previous = cp
    report.passed(name, f"{len(state.checkpoints)} signed tree heads verify")


def _check_consistency(state: _State, report: Report, _expected: object) -> None:
    name = "consistency proofs"
    info = state.members.get(CONSISTENCY_NAME)
    if info is None:
        report.failed(name, f"{CONSISTENCY_NAME} is missing")
        return
    try:
        entries = _loads(_read_member(state.zf, info, state.limits.max_consistency_bytes), CONSISTENCY_NAME)
        _verify_consistency_entries(entries, state.checkpoints, CONSISTENCY_NAME)
    except _Invalid as exc:
        report.failed(name, str(exc))
        return
    report.passed(name, f"{len(entries)} consistency proofs verify")


def _verify_consistency_entries(entries: Any, checkpoints: list[_Checkpoint], where: str) -> None:
    """One valid consistency proof per consecutive pair of ``checkpoints``, in order."""
    if not isinstance(entries, list):
        raise _Invalid(f"{where} must be a JSON list")
    pairs = list(zip(checkpoints, checkpoints[1:], strict=False))
    if len(entries) != len(pairs):
        raise _Invalid(f"{len(entries)} proofs for {len(pairs)} consecutive checkpoint pairs")
    for i, (entry, (old, new)) in enumerate(zip(entries, pairs, strict=True)):
        what = f"proof {i}"
        if not isinstance(entry, dict):
            raise _Invalid(f"{what} must be an object")
        old_size = _int(entry, "old_size", what)
        new_size = _int(entry, "new_size", what)
        if (old_size, new_size) != (old.tree_size, new.tree_size):
            raise _Invalid(
                f"{what} is for sizes {old_size} -> {new_size}, expected {old.tree_size} -> {new.tree_size}"
            )
        proof = _proof(_field(entry, "proof", what), f"{what}.proof")
        if not verify_consistency(old_size, new_size, old.root_hash, new.root_hash, proof):
            raise _Invalid(f"tree size {old_size} -> {new_size}: consistency proof does not verify")


def _jsonl_records(state: _State, info: zipfile.ZipInfo) -> Iterator[tuple[str, dict[str, Any], int]]:
    """Each line of an audit JSON-lines file as ``(label, record, seq)``; seq strictly ascending.

    Raises :class:`_Invalid` for an over-long or blank line, a line that is not a JSON object, or a
    seq that does not ascend.
    """
    cap = state.limits.max_line_bytes
    last_seq = -1
    line_no = 0
    with state.zf.open(info) as fh:
        while raw := fh.readline(cap + 1):
            line_no += 1
            what = f"line {line_no}"
            if len(raw) > cap:
                raise _Invalid(f"{what} is longer than {cap} bytes")
            if not raw.strip():
                raise _Invalid(f"{what} is blank")
            record = _loads(raw, what)
            if not isinstance(record, dict):
                raise _Invalid(f"{what} must be a JSON object")
            seq = _int(record, "seq", what)
            if seq <= last_seq:
                raise _Invalid(f"{what}: seq {seq} does not follow seq {last_seq} (must ascend)")
            last_seq = seq
            yield what, record, seq


def _check_inclusion(
    what: str, record: dict[str, Any], seq: int, leaf: bytes, roots: dict[int, bytes]
) -> None:
    """The record's inclusion proof puts ``leaf`` at ``seq`` under the checkpoint it names."""
    tree_size = _int(record, "checkpoint_tree_size", what)
    if tree_size not in roots:
        raise _Invalid(f"{what} (seq {seq}): no checkpoint with tree size {tree_size}")
    if seq >= tree_size:
        raise _Invalid(f"{what} (seq {seq}): not inside checkpoint tree size {tree_size}")
    proof = _proof(_field(record, "inclusion_proof", what), f"{what}: inclusion_proof")
    if not verify_inclusion(leaf, seq, tree_size, proof, roots[tree_size]):
        raise _Invalid(f"{what} (seq {seq}): inclusion proof does not verify against checkpoint {tree_size}")


def _verify_event_record(what: str, record: dict[str, Any], seq: int, roots: dict[int, bytes]) -> None:
    """The event hashes to its leaf hash, and the leaf is at ``seq`` under the checkpoint it names."""
    claimed = _hex32(_field(record, "leaf_hash", what), f"{what}: leaf_hash")
    event = _field(record, "event", what)
    if not isinstance(event, dict):
        raise _Invalid(f"{what}: 'event' must be an object")
    try:
        computed = leaf_hash(canonical_json(event))
    except (TypeError, ValueError) as exc:
        raise _Invalid(f"{what} (seq {seq}): event cannot be canonicalised: {exc}") from None
    if not hmac.compare_digest(computed, claimed):
        raise _Invalid(f"{what} (seq {seq}): leaf_hash does not match the event")
    _check_inclusion(what, record, seq, computed, roots)


def _check_events(state: _State, report: Report, _expected: object) -> None:
    name = "audit events"
    info = state.members.get(EVENTS_NAME)
    if info is None:
        report.failed(name, f"{EVENTS_NAME} is missing")
        return
    roots = {cp.tree_size: cp.root_hash for cp in state.checkpoints}
    count = 0
    try:
        for what, record, seq in _jsonl_records(state, info):
            _verify_event_record(what, record, seq, roots)
            count += 1
    except _Invalid as exc:
        report.failed(name, str(exc))
        return
    except _READ_ERRORS as exc:
        report.failed(name, f"{EVENTS_NAME} cannot be read: {exc}")
        return
    report.event_count = count
    report.passed(name, f"{count} events: leaf hashes and inclusion proofs verify")


def _check_redacted_events(state: _State, report: Report, _expected: object) -> None:
    """Withheld events (de-identified packages): each leaf hash's inclusion proof, contents unseen."""
    name = "redacted audit events"
    if REDACTED_NAME not in state.files:
        return  # an ordinary package: nothing withheld, no check to report
    info = state.members.get(REDACTED_NAME)
    if info is None:
        report.failed(name, f"{REDACTED_NAME} is missing")
        return
    roots = {cp.tree_size: cp.root_hash for cp in state.checkpoints}
    count = 0
    try:
        for what, record, seq in _jsonl_records(state, info):
            leaf = _hex32(_field(record, "leaf_hash", what), f"{what}: leaf_hash")
            _check_inclusion(what, record, seq, leaf, roots)
            count += 1
    except _Invalid as exc:
        report.failed(name, str(exc))
        return
    except _READ_ERRORS as exc:
        report.failed(name, f"{REDACTED_NAME} cannot be read: {exc}")
        return
    report.event_count += count
    report.passed(name, f"{count} withheld events: inclusion proofs of their leaf hashes verify")


# ==================================================================================================
# Command line
# ==================================================================================================


# ==================================================================================================
# Proof documents: the auditor's "download proof" (one event, or every event of one study)
# ==================================================================================================


def verify_proof(
    path: str | Path, expected_public_key_pem: str | bytes | None = None, *, limits: Limits | None = None
) -> Report:
    """Verify a ``concordance-proof-v1`` JSON document at ``path``; never raises for a bad document.

    Same verdicts as :func:`verify_package`: the key (pinned or carried), every checkpoint
    signature, the consistency between consecutive checkpoints, and each event's leaf hash and
    inclusion proof.
    """
    report = Report(path=str(path))
    if Ed25519PublicKey is None:
        report.notes.append(f"Ed25519 signatures checked with the {ed25519_backend()} verifier")
    limits = limits or Limits()
    state = _State(zf=None, limits=limits)
    try:
        with open(path, "rb") as fh:
            state.manifest_bytes = fh.read(limits.max_manifest_bytes + 1)
    except OSError as exc:
        report.cannot_verify = f"cannot read the proof document: {exc}"
        return report
    steps = (_check_proof_document, _check_public_key, _check_checkpoints, _check_proof_consistency)
    _run_steps((*steps, _check_proof_events), state, report, expected_public_key_pem)
    return report


def _check_proof_document(state: _State, report: Report, _expected: object) -> None:
    name = "proof document"
    try:
        if len(state.manifest_bytes) > state.limits.max_manifest_bytes:
            raise _Invalid(f"larger than {state.limits.max_manifest_bytes} bytes")
        doc = _loads(state.manifest_bytes, "the proof document")
        if not isinstance(doc, dict):
            raise _Invalid("must be a JSON object")
        if doc.get("format") != PROOF_FORMAT:
            raise _Invalid(f"'format' must be {PROOF_FORMAT!r}")
        _str(doc, "public_key_pem", name)
        _hex32(_field(doc, "public_key_fingerprint", name), "public_key_fingerprint")
        state.checkpoints = _parse_checkpoints(_field(doc, "checkpoints", name))
        if not state.checkpoints:
            raise _Invalid("lists no checkpoint")
        events = _field(doc, "events", name)
        if not isinstance(events, list) or not events:
            raise _Invalid("'events' must be a non-empty list")
    except _Invalid as exc:
        report.failed(name, str(exc))
        raise _Stop from None
    state.manifest = doc
    report.checkpoint_count = len(state.checkpoints)
    report.passed(name, f"{len(events)} events, {len(state.checkpoints)} checkpoints")
    report.notes.append(
        "a proof document shows that the events it lists are in the log; it does not show that the "
        "log holds no other event about the same subject (a legal export package lists them all)"
    )


def _check_proof_consistency(state: _State, report: Report, _expected: object) -> None:
    name = "consistency proofs"
    try:
        entries = _field(state.manifest, "consistency", "the proof document")
        _verify_consistency_entries(entries, state.checkpoints, "'consistency'")
    except _Invalid as exc:
        report.failed(name, str(exc))
        return
    report.passed(name, f"{len(entries)} consistency proofs verify")


def _check_proof_events(state: _State, report: Report, _expected: object) -> None:
    name = "audit events"
    roots = {cp.tree_size: cp.root_hash for cp in state.checkpoints}
    last_seq = -1
    try:
        for i, record in enumerate(state.manifest["events"]):
            what = f"events[{i}]"
            if not isinstance(record, dict):
                raise _Invalid(f"{what} must be an object")
            seq = _int(record, "seq", what)
            if seq <= last_seq:
                raise _Invalid(f"{what}: seq {seq} does not follow seq {last_seq} (must ascend)")
            last_seq = seq
            _verify_event_record(what, record, seq, roots)
    except _Invalid as exc:
        report.failed(name, str(exc))
        return
    report.event_count = len(state.manifest["events"])
    report.passed(name, f"{report.event_count} events: leaf hashes and inclusion proofs verify")


def _is_proof_document(path: Path) -> bool:
    """A JSON object (first non-blank byte ``{``) rather than a ZIP; unreadable files go to the
    package verifier, which reports them as CANNOT VERIFY."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.lstrip(b" \t\r\n\xef\xbb\xbf").startswith(b"{")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 valid, 1 invalid, 2 usage error,
    3 cannot verify)."""
    parser = argparse.ArgumentParser(
        prog="verify_package.py",
        description="Verify a Concordance audit export package, or a downloaded proof document, offline.",
    )
    parser.add_argument("package", type=Path, help="the export package (.zip) or proof document (.json)")
    parser.add_argument(
        "--public-key", type=Path, metavar="FILE", help="PEM file of the signing key you expect (recommended)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    expected: bytes | None = None
    report: Report | None = None
    if args.public_key is not None:
        try:
            expected = args.public_key.read_bytes()
        except OSError as exc:
            report = Report(path=str(args.package), cannot_verify=f"cannot read --public-key file: {exc}")
    if report is None:
        verify = verify_proof if _is_proof_document(args.package) else verify_package
        report = verify(args.package, expected)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        for check in report.checks:
            print(f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
        for note in report.notes:
            print(f"NOTE  {note}")
        print(report.verdict)
    return {"VALID": 0, "INVALID": 1, "CANNOT VERIFY": 3}[report.status]


if __name__ == "__main__":
    sys.exit(main())
