"""The fast leaf encoder gives exactly the bytes of canonical_json(leaf_document(...)), or its error."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import MAX_DEPTH, MAX_SAFE_INTEGER, canonical_json
from audit.leaf import leaf_bytes, leaf_digest, leaf_parts
from audit.merkle import leaf_hash
from audit.models import LEAF_FIELDS, ActorKind, leaf_document


class Grade(enum.IntEnum):
    """An int subclass whose str() is not its number: must take the general path."""

    MINOR = 2


# Every code point, surrogates included (a lone one must fail the same way on both paths).
texts = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
strings = (
    texts
    | st.sampled_from(["", '"', "\\", "\x00\x1f\x7f", "\u2028", "\U0001f600", "\ud800", "a\udfffb"])
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
)
integers = (
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.sampled_from(
        [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1, 2**53 + 1, 10**21, -(10**30)]
    )
    | st.integers(-(2**80), 2**80)
)
scalars = st.none() | st.booleans() | integers | st.floats(allow_nan=False, allow_infinity=False) | strings
json_values = st.recursive(
    scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4)
)
# A column usually holds its own type, but anything may reach leaf_document: both paths must agree.
odd = (
    st.floats()
    | st.booleans()
    | st.lists(integers, max_size=2)
    | st.dictionaries(texts, integers, max_size=2)
)
string_column = strings | st.none() | odd | st.sampled_from(list(ActorKind)) | st.sampled_from(list(Grade))
integer_column = st.none() | integers | odd | st.sampled_from(list(Grade))
datetimes = (
    st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))]))
    | st.datetimes()
)  # naive too


@st.composite
def rows(draw: st.DrawFn) -> tuple[Any, ...]:
    """One tuple of LEAF_FIELDS values."""
    values = {
        "seq": draw(integer_column),
        "recorded_at": draw(datetimes),
        "actor_kind": draw(string_column),
        "actor_id": draw(integer_column),
        "actor_username": draw(string_column),
        "action": draw(string_column),
        "object_type": draw(string_column),
        "object_id": draw(string_column),
        "patient_id": draw(integer_column),
        "study_id": draw(integer_column),
        "details": draw(json_values | st.dictionaries(texts, json_values, max_size=6)),
        "client_address": draw(string_column),
        "user_agent": draw(string_column),
        "channel": draw(string_column),
    }
    return tuple(values[name] for name in LEAF_FIELDS)


def outcome(function: Any, row: tuple[Any, ...]) -> tuple[str, Any]:
    """The bytes, or the exception type and message."""
    try:
        return "bytes", function(*row)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)


def general(*row: Any) -> bytes:
    """The reference: the document built, then the general encoder."""
    return canonical_json(leaf_document(*row))


@settings(max_examples=2500, deadline=None)
@given(rows())
def test_fast_leaf_bytes_equal_the_general_encoding(row: tuple[Any, ...]) -> None:
    assert outcome(leaf_bytes, row) == outcome(general, row)


@settings(max_examples=1500, deadline=None)
@given(rows(), st.integers(0, MAX_SAFE_INTEGER) | st.sampled_from([0, 9, 10, MAX_SAFE_INTEGER]))
def test_leaf_parts_put_any_number_where_the_leaf_has_it(row: tuple[Any, ...], seq: int) -> None:
    """SHA-256(before || str(seq) || after) is the leaf hash of the event numbered seq (what the
    database computes in a single append), or leaf_parts declines, or both raise alike."""
    columns = row[1:]
    numbered = (seq, *columns)
    kind, parts = outcome(leaf_parts, columns)
    if kind != "bytes":
        assert (kind, parts) == outcome(leaf_bytes, numbered)
        return
    if parts is not None:
        before, after = parts
        assert leaf_hash(before[1:] + str(seq).encode() + after) == leaf_digest(*numbered)


def test_leaf_parts_decline_only_an_ambiguous_leaf() -> None:
    row = [
        dt.datetime(2026, 12, 3, tzinfo=dt.UTC), "user", 42, "dr.ö", "study.view", "study", "1234", 10,
        1234, {"seq": 1}, "10.0.0.1", '"seq":9007199254740991,', "GET /studies/",
    ]  # fmt: skip
    before, after = leaf_parts(*row)
    assert leaf_hash(before[1:] + b"77" + after) == leaf_digest(77, *row)
    assert before[:1] == b"\x00"
    row[LEAF_FIELDS.index("details") - 1] = {"seq": MAX_SAFE_INTEGER, "study_id": 1}
    assert leaf_parts(*row) is None


def test_typical_event_and_its_digest() -> None:
    row = (
        7, dt.datetime(2026, 12, 3, 9, 30, 1, 250, tzinfo=dt.UTC), "user", 42, "dr.ö",
        "study.view", "study", "1234", 10, 1234, {"page": "worklist", "n": 1.5, "z": [None, True]},
        "10.0.0.1", 'Mozilla/5.0 "quoted"\n', "GET /studies/",
    )  # fmt: skip
    assert leaf_bytes(*row) == general(*row)
    assert leaf_digest(*row) == leaf_hash(general(*row))
    assert b'"recorded_at":"2026-12-03T09:30:01.000250Z"' in leaf_bytes(*row)


def test_lone_surrogates_and_deep_details_fail_as_in_the_general_path() -> None:
    base = [
        0,
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "system",
        None,
        "",
        "a",
        "",
        "",
        None,
        None,
        {},
        "",
        "",
        "",
    ]
    surrogate = list(base)
    surrogate[LEAF_FIELDS.index("user_agent")] = "x\udc80"
    with pytest.raises(ValueError, match="lone surrogate"):
        leaf_bytes(*surrogate)
    deep: Any = []
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    deeper = list(base)
    deeper[LEAF_FIELDS.index("details")] = deep  # depth 1 + 63 nested lists: just allowed
    assert leaf_bytes(*deeper) == general(*deeper)
    deeper[LEAF_FIELDS.index("details")] = [deep]
    with pytest.raises(ValueError, match="nesting"):
        leaf_bytes(*deeper)
    big = list(base)
    big[LEAF_FIELDS.index("patient_id")] = 2**53 + 1
    with pytest.raises(ValueError, match="does not survive"):
        leaf_bytes(*big)
