"""audit.canonical: RFC 8785 (JCS) behaviour on its subset, and agreement with the verifier's copy."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import verify_package as vp
from audit.canonical import MAX_DEPTH, MAX_SAFE_INTEGER, canonical_json


def test_sorted_keys_no_whitespace_utf8() -> None:
    out = canonical_json({"b": [1, True, None], "a": {"z": "é", "y": False}})
    assert out == '{"a":{"y":false,"z":"é"},"b":[1,true,null]}'.encode()
    assert isinstance(out, bytes)


def test_rfc8785_key_order_is_by_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3 sorting example: U+1F600 (surrogates D83D DE00) sorts before U+FB33.
    obj = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_json(obj)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_rfc8785_string_escapes() -> None:
    assert canonical_json('\u20ac$\u000f\nA\'B"\\\\"/') == '"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'.encode()
    assert canonical_json("\b\t\n\f\r\x01\x1f\x7f") == b'"\\b\\t\\n\\f\\r\\u0001\\u001f\x7f"'


# RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical serialisation.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert canonical_json(value) == expected.encode()
    assert vp.canonical_json(value) == expected.encode()


def test_rfc8785_combined_example() -> None:
    obj = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\u005c\u0022\u002f",
        "literals": [None, True, False],
    }
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(obj) == expected.encode()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (math.nan, ValueError),
        (math.inf, ValueError),
        (-math.inf, ValueError),
        (MAX_SAFE_INTEGER + 2, ValueError),  # 2**53 + 1: no double holds it
        (-(MAX_SAFE_INTEGER + 2), ValueError),
        (10**400, ValueError),
        ("lone \ud800 surrogate", ValueError),
        ({"k": "\udfff"}, ValueError),
        (dt.datetime(2025, 1, 1, tzinfo=dt.UTC), TypeError),
        (dt.date(2025, 1, 1), TypeError),
        (decimal.Decimal("1.5"), TypeError),
        (uuid.UUID(int=1), TypeError),
        (b"bytes", TypeError),
        ({1, 2}, TypeError),
        ({1: "int key"}, TypeError),
        ({("t",): "tuple key"}, TypeError),
        (object(), TypeError),
    ],
)
def test_rejections(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        canonical_json(value)
    with pytest.raises(error):
        vp.canonical_json(value)


def test_depth_limit() -> None:
    ok: object = "leaf"
    for _ in range(MAX_DEPTH):
        ok = [ok]
    canonical_json(ok)
    with pytest.raises(ValueError, match="nesting"):
        canonical_json([ok])


def test_safe_integer_bounds_and_tuples() -> None:
    assert canonical_json([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]) == b"[9007199254740991,-9007199254740991]"
    assert canonical_json((1, 2)) == canonical_json([1, 2])
    assert canonical_json(-0.0) == b"0"
    # Integers a double holds exactly print as that double: the bytes survive a JSON round trip.
    assert canonical_json(2**53) == b"9007199254740992"
    assert canonical_json(10**21) == b"1e+21" == canonical_json(json.loads(b"1e+21"))
    assert canonical_json(1_735_689_600_000_000_000) == b"1735689600000000000"
    # The double nearest 46352846962525968 prints as ...970, which denotes another integer: refused.
    with pytest.raises(ValueError, match="does not survive"):
        canonical_json(46352846962525968)
    assert canonical_json(46352846962525970) == b"46352846962525970"
    assert canonical_json(1.0) == b"1"


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_idempotent_through_a_json_parser(value: object) -> None:
    """What the verifier relies on: parse(canonical) re-canonicalises to the same bytes."""
    try:
        encoded = canonical_json(value)
    except ValueError as exc:
        # Only lone surrogates and integers that a double would round may be refused.
        assert "surrogate" in str(exc) or "does not survive" in str(exc)
        return
    assert canonical_json(json.loads(encoded)) == encoded
    assert vp.canonical_json(value) == encoded


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip_exactly(x: float) -> None:
    text = canonical_json(x).decode()
    assert float(text) == x or (x == 0 and float(text) == 0)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**53) + 1, 2**53 - 1)
        | st.text(alphabet=st.characters(max_codepoint=0xFFFF, blacklist_categories=["Cs"])),
        lambda c: (
            st.lists(c, max_size=4)
            | st.dictionaries(
                st.text(
                    max_size=6, alphabet=st.characters(max_codepoint=0xFFFF, blacklist_categories=["Cs"])
                ),
                c,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_matches_stdlib_json_without_floats_in_the_bmp(value: object) -> None:
    # Without floats and with BMP-only keys, JCS equals sorted, compact, non-ASCII json.dumps.
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert canonical_json(value) == expected
