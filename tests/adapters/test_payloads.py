"""Neutral payloads and their text helpers (portal.records.ingest.payloads)."""

from __future__ import annotations

import ast
import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.records.ingest.payloads import (
    AdapterError,
    PatientPayload,
    SignedReportPayload,
    StudyPayload,
    clean_text,
    infer_body_part,
    infer_modality,
    infer_specialty,
    split_sections,
)

ADAPTERS = [
    "payloads.py",
    "hl7.py",
    "hl7_text.py",
    "hl7_ack.py",
    "hl7_signer.py",
    "mllp.py",
    "fhir.py",
    "fhir_common.py",
    "fhir_ai.py",
    "fhir_people.py",
    "fhir_bundle.py",
    "fhir_outcome.py",
    "dicom.py",
    "dicom_sr.py",
]


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapters_do_not_import_django(name):
    source = (Path(__file__).parents[2] / "portal" / "records" / "ingest" / name).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {m for m in imported if m.split(".")[0] in ("django", "rest_framework")}


# --- AdapterError -------------------------------------------------------------------------------
def test_adapter_errors_carry_code_message_location_and_pickle():
    error = AdapterError("missing_field", "accession is required", "OBR-3")
    assert (error.code, error.message, error.location) == ("missing_field", "accession is required", "OBR-3")
    assert str(error) == "missing_field: accession is required at OBR-3"
    # Celery and multiprocessing pickle exceptions; these bytes are our own, hence the noqa.
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301
    assert (copy.code, copy.message, copy.location) == (error.code, error.message, error.location)


# --- clean_text ---------------------------------------------------------------------------------
def test_clean_text_normalises_line_endings_and_unicode():
    assert clean_text("a\r\nb\rc\n", max_len=10) == "a\nb\nc\n"
    assert clean_text("cafe\u0301", max_len=10) == "café"  # NFC
    assert clean_text(b"caf\xc3\xa9", max_len=10) == "café"
    assert clean_text(None, max_len=1) == ""
    assert clean_text("tab\there", max_len=20) == "tab\there"


def test_clean_text_keeps_hostile_markup_verbatim():
    text = "<script>alert('x')</script> OR 1=1; --"
    assert clean_text(text, max_len=100) == text


@pytest.mark.parametrize("bad", ["nul\x00", "bell\x07", "esc\x1b[31m", "vt\x0b", "lone \ud800 surrogate"])
def test_clean_text_refuses_control_characters(bad):
    with pytest.raises(AdapterError) as err:
        clean_text(bad, max_len=100, location="OBX-5")
    assert (err.value.code, err.value.location) == ("malformed", "OBX-5")


def test_clean_text_refuses_bad_utf8_and_long_text():
    with pytest.raises(AdapterError) as err:
        clean_text(b"\xff", max_len=10)
    assert err.value.code == "malformed"
    with pytest.raises(AdapterError) as err:
        clean_text("x" * 11, max_len=10)
    assert err.value.code == "too_large"


@settings(max_examples=300, deadline=500)
@given(st.text(max_size=200))
def test_clean_text_is_idempotent_or_refuses(text):
    try:
        cleaned = clean_text(text, max_len=1000)
    except AdapterError as exc:
        assert exc.code == "malformed"
        return
    assert clean_text(cleaned, max_len=1000) == cleaned
    assert "\r" not in cleaned


# --- split_sections -----------------------------------------------------------------------------
def test_split_sections_reads_common_headers():
    text = (
        "CT CHEST WITHOUT CONTRAST\n"
        "Clinical History: cough\n"
        "Technique - axial images\n"
        "COMPARISON: none\n"
        "FINDINGS\n"
        "Lungs are clear.\n"
        "No effusion.\n"
        "\n"
        "conclusion:\n"
        "Normal study."
    )
    assert split_sections(text) == {
        "indication": "cough",
        "technique": "CT CHEST WITHOUT CONTRAST\naxial images",  # the title line joins technique
        "comparison": "none",
        "findings": "Lungs are clear.\nNo effusion.",
        "impression": "Normal study.",
    }


def test_split_sections_without_headers_is_all_findings():
    assert split_sections("Lungs are clear.\nNo effusion.") == {"findings": "Lungs are clear.\nNo effusion."}
    assert split_sections("   ") == {}


def test_split_sections_does_not_take_prose_for_a_header():
    text = "FINDINGS: ok\nImpression of the tracheal wall is noted.\nHistory of smoking noted."
    assert split_sections(text) == {
        "findings": "ok\nImpression of the tracheal wall is noted.\nHistory of smoking noted."
    }


def test_split_sections_joins_repeated_headers_and_drops_empty_ones():
    text = "FINDINGS: one\nIMPRESSION:\nFINDINGS: two\nHISTORY:"
    assert split_sections(text) == {"findings": "one\n\ntwo"}


@settings(max_examples=300, deadline=500)
@given(st.text(max_size=300))
def test_split_sections_returns_only_known_non_empty_sections(text):
    sections = split_sections(text)
    assert set(sections) <= {"indication", "technique", "comparison", "findings", "impression"}
    assert all(value.strip() for value in sections.values())


# --- inference ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("description", "modality"),
    [
        ("CT CHEST W/O", "CT"),
        ("MRI BRAIN", "MR"),
        ("X-RAY WRIST", "CR"),
        ("XR KNEE", "CR"),
        ("DX CHEST", "DX"),
        ("US PELVIS", "US"),
        ("MAMMOGRAM SCREENING", "MG"),
        ("PET/CT", "PT"),
        ("Chest radiograph", "CR"),
        ("something else", "OT"),
    ],
)
def test_infer_modality(description, modality):
    assert infer_modality(description) == modality


def test_infer_body_part_and_specialty():
    assert infer_body_part("CT ABD/PELVIS W CONTRAST") == "ABDOMEN"
    assert infer_body_part("US THYROID") == ""
    assert infer_specialty("", "MG") == "breast"
    assert infer_specialty("LSPINE", "MR") == "neuro"
    assert infer_specialty("", "CT", "CT HEAD W/O") == "neuro"
    assert infer_specialty("SHOULDER", "MR") == "musculoskeletal"
    assert infer_specialty("THYROID", "US") is None


# --- payload invariants -------------------------------------------------------------------------
def test_payloads_refuse_values_outside_their_vocabularies():
    patient = PatientPayload(mrn="M1", family_name="", given_name="", birth_date=None, sex="U")
    with pytest.raises(ValueError):
        PatientPayload(mrn="M1", family_name="", given_name="", birth_date=None, sex="X")
    with pytest.raises(ValueError):
        StudyPayload(None, "A1", patient, "CT", "", None, datetime(2024, 1, 1), "", "routine", "")  # naive
    with pytest.raises(ValueError):
        StudyPayload(None, "A1", patient, "CT", "", None, None, "", "asap", "")
    with pytest.raises(ValueError):
        SignedReportPayload("A1", None, "u", {}, "t", datetime(2024, 1, 1, tzinfo=UTC), "draft", None)
