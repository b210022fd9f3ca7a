"""Canonical JSON: the exact bytes that an audit event's leaf hash is computed over.

The encoding follows the JSON Canonicalization Scheme (RFC 8785, "JCS") on a deliberately small subset
of values, so that the server, the offline verifier (``audit/verify_package.py`` carries a copy) and
any third party re-implementing it in another language get identical bytes:

* objects: keys must be ``str``; members are sorted by the UTF-16 code units of their keys (RFC 8785
  section 3.2.3; this differs from code point order only for characters above U+FFFF); no whitespace;
* arrays: ``list`` or ``tuple``, in order;
* strings: UTF-8 (no ``\\u`` escapes for non-ASCII), escaping only ``"``, ``\\`` and control characters,
  with the short forms ``\\b \\t \\n \\f \\r`` and lowercase ``\\u00xx`` otherwise (RFC 8785 section
  3.2.2.2); lone surrogates cannot be encoded and raise ``ValueError``;
* ``True``/``False``/``None`` as ``true``/``false``/``null``;
* integers: JSON numbers are IEEE 754 doubles in RFC 8785. Integers with ``|i| <= 2**53 - 1`` print as
  usual; a larger integer prints as its nearest double does (``10**21 -> 1e+21``) and is accepted only
  if that text still denotes exactly the same integer. Others (e.g. ``2**53 + 1``) would be silently
  rounded by a JavaScript or JCS verifier, so they raise ``ValueError``: store big numbers (nanosecond
  timestamps, 64-bit ids) as strings;
* floats: finite only (NaN and Infinity raise ``ValueError``), printed with the ECMAScript
  ``Number.prototype.toString`` rules that RFC 8785 section 3.2.2.3 mandates, e.g. ``1.0 -> 1``,
  ``1e21 -> 1e+21``, ``1e-7 -> 1e-7``, ``-0.0 -> 0``;
* everything else (``datetime``, ``Decimal``, ``UUID``, ``bytes``, sets, ...) raises ``TypeError``:
  the caller converts explicitly (ISO 8601 strings for datetimes), so no hidden default decides the
  bytes that end up signed.

The encoding is idempotent through a JSON parser: ``canonical_json(json.loads(canonical_json(x)))`` is
``canonical_json(x)``, which is what lets the verifier recompute leaf hashes from exported events.
"""

from __future__ import annotations

import decimal
import math
from json.encoder import encode_basestring

__all__ = ["MAX_DEPTH", "MAX_SAFE_INTEGER", "canonical_fragment", "canonical_json"]

#: Largest integer that an IEEE 754 double (the JSON number model of RFC 8785) represents exactly.
MAX_SAFE_INTEGER = 2**53 - 1
#: Nesting limit: audit events are shallow, and a limit keeps hostile input from exhausting the stack.
MAX_DEPTH = 64


def canonical_json(obj: object) -> bytes:
    """Return the canonical UTF-8 JSON encoding of ``obj`` (see the module docstring for the rules).

    Raises ``TypeError`` for unsupported types (including non-string keys) and ``ValueError`` for
    unsupported values (NaN, Infinity, integers a double would round, lone surrogates, nesting deeper than
    :data:`MAX_DEPTH`).
    """
    parts: list[str] = []
    _encode(obj, parts, 0)
    return "".join(parts).encode("utf-8")


def canonical_fragment(obj: object, depth: int) -> str:
    """The canonical JSON text of ``obj`` as a member value ``depth`` levels deep inside a larger
    document (the depth counts toward :data:`MAX_DEPTH` exactly as in :func:`canonical_json`).

    For encoders that assemble a document of fixed shape around general values (``audit/leaf.py``):
    the caller joins the fragments and encodes the result as UTF-8 once.
    """
    parts: list[str] = []
    _encode(obj, parts, depth)
    return "".join(parts)


def _utf16_key(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly like sequences of UTF-16 code units. surrogatepass lets a
    # lone surrogate reach the final UTF-8 encode, which reports it properly.
    return key.encode("utf-16-be", "surrogatepass")


def _encode(obj: object, parts: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"nesting deeper than {MAX_DEPTH} levels")
    # Order matters: bool is a subclass of int.
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
    # json.dumps with ensure_ascii=False escapes exactly '"', '\\' and U+0000..U+001F, using the short
    # forms \b \t \n \f \r and lowercase \u00xx for the rest: the RFC 8785 rules.
    encoded = encode_basestring(s)  # what json.dumps(s, ensure_ascii=False) calls, minus its setup
    # Fail here, with a clear message, rather than on the final encode.
    try:
        encoded.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"string contains a lone surrogate at position {exc.start - 1}") from None
    return encoded


def _encode_float(x: float) -> str:
    """ECMAScript ``Number.prototype.toString`` (ECMA-262 section 6.1.6.1.20) for a finite double."""
    if not math.isfinite(x):
        raise ValueError(f"{x!r} is not allowed in canonical JSON")
    if x == 0:
        return "0"  # covers -0.0, which ECMAScript prints as "0"
    sign = "-" if x < 0 else ""
    # repr() gives the shortest digit string that round-trips (the same digits ECMAScript picks);
    # only the placement of the decimal point and the exponent syntax differ.
    mantissa, _, exp_text = repr(abs(x)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    if frac_part == "0":
        frac_part = ""
    digits = (int_part + frac_part).lstrip("0")
    # Decimal exponent n such that value = 0.digits * 10**n (ECMAScript's "n").
    n = len(int_part) + (int(exp_text) if exp_text else 0)
    if int_part == "0":
        # 0.000ddd: leading zeros of the fraction move the point left.
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
