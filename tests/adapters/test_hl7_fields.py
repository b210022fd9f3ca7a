"""The ORU parser splits segments into fields itself (issue #15: python-hl7's nested containers were
most of a parse); it must read exactly the fields python-hl7 read, which stays the reference here."""

from __future__ import annotations

import hl7 as python_hl7
import pytest

from portal.records.ingest.hl7_text import decode_message, segment_lines, split_segments
from tests.adapters.conftest import DATA

EDGE_CASES = [
    # Trailing blanks inside and at the end of the message, an empty segment line, an empty last field.
    "MSH|^~\\&|RIS|H|QA|H|20240101||ORU^R01|1|P|2.5  \rPID|1||X  \r\rOBX|1|TX|||a|b   ",
    # A report line wrapped over a raw LF (re-joined into its OBX), components and subcomponents.
    "MSH|^~\\&|RIS|H\rOBR|1||A1|^CT HEAD\nsecond line|x\rOBX|1|TX|||a^b&c~d|F",
    # Other separators than the usual ones.
    "MSH#^~\\&#RIS#H#QA\rPID#1#2^3&4~5#",
    # MSH ending right after its encoding characters and their separator.
    "MSH|^~\\&|",
]


def _messages() -> list[str]:
    files = sorted(DATA.glob("*.hl7")) + sorted((DATA / "feeds").glob("*.hl7"))
    assert len(files) >= 6
    return [f.read_bytes().decode("utf-8") for f in files] + EDGE_CASES


@pytest.mark.parametrize("message", _messages())
def test_the_fields_are_those_python_hl7_read(message):
    lines, seps = segment_lines(decode_message(message))
    reference = [[str(field) for field in segment] for segment in python_hl7.parse("\r".join(lines))]

    assert split_segments(lines, seps) == reference


def test_a_bare_msh_has_only_its_separator_and_encoding_characters():
    # python-hl7 misreads this one (it repeats MSH as a field); the message then lacks MSH-9 either way.
    lines, seps = segment_lines("MSH|^~\\&")
    assert split_segments(lines, seps) == [["MSH", "|", "^~\\&"]]
