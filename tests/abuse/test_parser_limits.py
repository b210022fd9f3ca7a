"""Parsers at their size limits: adversarial inputs neither crash nor hang, and errors are clear.

The property tests in tests/adapters and tests/compare draw small inputs. These draw inputs built
to hurt at the largest size each path accepts: long repetitions of one token (catastrophic regex
backtracking, quadratic scans), deep nesting (recursion), separator floods (HL7), huge single
sentences (the discrepancy engine's negation and size scopes). A per-example deadline is the hang
guard: generous for a slow shared CI machine, far below what a quadratic blow-up would take.
"""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference.compare import compare
from portal.records.ingest import dicom, fhir, hl7
from portal.records.ingest.payloads import AdapterError

HANG_GUARD_MS = 20_000
MAX_TEXT = 200_000  # CONCORDANCE_MAX_TEXT_CHARS, the longest report text ingestion accepts
LIMITS = settings(
    max_examples=6,
    deadline=HANG_GUARD_MS,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_TOKENS = st.sampled_from(
    [
        "no ",
        "left ",
        "pleural effusion ",
        "3 x 4 x 5 cm ",
        "1x",
        "12.5 mm ",
        "(",
        ")",
        ".",
        ":",
        "\n",
        "FINDINGS:",
        "IMPRESSION: ",
        "without ",
        "or ",
        "- ",
        "\\",
        "\u00a0",
        "\u202e",
        "\x00",
        "no evidence of ",
    ]
)


@st.composite
def flood(draw, limit: int = MAX_TEXT) -> str:  # hypothesis's draw
    """One or two tokens repeated up to ``limit`` characters."""
    unit = draw(_TOKENS) + draw(st.one_of(st.just(""), _TOKENS))
    return (unit * (limit // len(unit) + 1))[: draw(st.integers(min_value=limit // 2, max_value=limit))]


@LIMITS
@given(text=flood(), other=st.one_of(st.just("No acute disease."), flood()))
def test_the_discrepancy_engine_finishes_on_flooded_report_text(text, other):
    result = compare(text, other)

    assert result.radpeer
    assert compare(other, text).radpeer


_HL7_FLOOD = st.sampled_from(["|", "^", "~", "&", "\\", "\r", "\n", "OBX|", "\\X41\\", "\\.br\\"])
_MSH = "MSH|^~\\&|RADRIS|GENHOSP|CONCORDANCE|QA|20240301101500||ORU^R01|CTRL1|P|2.5.1\r"


@LIMITS
@given(
    unit=_HL7_FLOOD,
    size=st.integers(min_value=1_000, max_value=1_048_576),
    where=st.sampled_from(["PID", "OBX"]),
)
def test_the_hl7_parser_refuses_separator_floods_with_an_adapter_error(unit, size, where):
    message = _MSH + f"{where}|1||" + unit * (size // len(unit)) + "\r"
    try:
        hl7.parse_oru(message)
    except AdapterError as exc:
        assert exc.code and exc.message


@LIMITS
@given(
    depth=st.integers(min_value=500, max_value=200_000),
    opener=st.sampled_from(["[", '{"a":', '{"contained":[']),
)
def test_the_fhir_parser_refuses_deep_nesting_with_an_adapter_error(depth, opener):
    closer = {"[": "]", '{"a":': "}", '{"contained":[': "]}"}[opener]
    body = (opener * depth + "1" + closer * depth).encode()
    try:
        fhir.parse_diagnostic_report(body)
    except AdapterError as exc:
        assert exc.code and exc.message


@LIMITS
@given(text=flood(limit=900_000))
def test_the_fhir_parser_takes_a_flooded_conclusion_with_a_clear_answer(text):
    body = json.dumps({"resourceType": "DiagnosticReport", "status": "final", "conclusion": text}).encode()
    try:
        fhir.parse_diagnostic_report(body)
    except AdapterError as exc:
        assert exc.code and exc.message


@LIMITS
@given(
    junk=st.binary(min_size=0, max_size=64),
    repeat=st.integers(min_value=1, max_value=200_000),
    preamble=st.booleans(),
)
def test_the_dicom_reader_refuses_repeated_junk_with_an_adapter_error(junk, repeat, preamble):
    data = (b"\0" * 128 + b"DICM" if preamble else b"") + (junk or b"\xff") * repeat
    try:
        dicom.read_study_header(io.BytesIO(data))
    except AdapterError as exc:
        assert exc.code and exc.message
