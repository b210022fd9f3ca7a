"""Shared fixtures for the standards adapters: sample files and a builder for ORU^R01 variants."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def sample() -> Callable[[str], str]:
    """Read a sample file from tests/adapters/data as text (line endings untouched)."""

    def read(name: str) -> str:
        return (DATA / name).read_bytes().decode("utf-8")

    return read


def _segment(name: str, fields: dict[int, str]) -> str:
    last = max(fields, default=0)
    return "|".join([name, *(fields.get(i, "") for i in range(1, last + 1))])


BASE_SEGMENTS: dict[str, dict[int, str]] = {
    "MSH": {
        2: "^~\\&",
        3: "RADRIS",
        4: "GENHOSP",
        5: "CONCORDANCE",
        6: "QA",
        7: "20240301101500",
        9: "ORU^R01",
        10: "CTRL42",
        11: "P",
        12: "2.5.1",
    },
    "PID": {1: "1", 3: "MRN0042^^^GENHOSP^MR", 5: "Doe^Jane", 7: "19700215", 8: "F"},
    "OBR": {
        1: "1",
        2: "PL1",
        3: "ACC1",
        4: "71250^CT CHEST WITHOUT CONTRAST^CPT4",
        7: "202403010930",
        16: "1234^Welby^Marcus",
        22: "202403011014",
        25: "F",
        32: "JSMITH&Smith&John",
    },
    "OBX": {1: "1", 2: "TX", 3: "RPT^Report^L", 5: "FINDINGS: No acute disease.", 11: "F"},
}


def build_oru(
    overrides: dict[str, dict[int, str] | None] | None = None,
    *,
    extra: list[str] | None = None,
    sep: str = "\r",
) -> str:
    """An ORU^R01 from BASE_SEGMENTS with per-field overrides; ``None`` drops a segment.

    ``overrides={"OBR": {25: "P"}}`` changes one field; ``{"PID": None}`` removes PID. MSH is
    written by hand because its first two fields are the separators themselves.
    """
    overrides = overrides or {}
    lines: list[str] = []
    for name, base in BASE_SEGMENTS.items():
        change = overrides.get(name, {})
        if change is None:
            continue
        fields = {**base, **change}
        fields = {k: v for k, v in fields.items() if v is not None}
        if name == "MSH":
            encoding = fields.pop(2, "^~\\&")
            rest = _segment("X", {k - 2: v for k, v in fields.items() if k > 2})[2:]
            lines.append(f"MSH|{encoding}|{rest}")
        else:
            lines.append(_segment(name, fields))
    lines.extend(extra or [])
    return sep.join(lines) + sep


@pytest.fixture
def oru() -> Callable[..., str]:
    return build_oru
