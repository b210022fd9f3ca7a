"""The de-identified variant: verifiable; no patient name, MRN, accession number or exact date anywhere."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pypdf
import pytest

from audit import checkpoints
from audit import verify_package as vp
from audit.log import AuditContext
from audit.signing import public_key_pem
from portal.legal import export_jobs
from portal.legal.export.deid import PROFILE, Deidentifier
from portal.legal.models import ExportStatus
from tests.legal_export.conftest import PATIENT_A, PATIENT_B, STUDIES, read_zip

pytestmark = pytest.mark.django_db


def _pdf_text(data: bytes) -> bytes:
    """The words printed on the PDF's pages. The fonts are embedded subsets, so the page streams hold
    glyph ids, not letters: the text is read back through the fonts' ToUnicode maps, as a PDF reader's
    search (or a copy and paste) would find it."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() or "" for page in reader.pages).encode("utf-8")


def _forbidden() -> list[str]:
    words = []
    for patient in (PATIENT_A, PATIENT_B):
        birth = patient["birth_date"]
        words += [
            patient["mrn"],
            patient["family_name"],
            patient["given_name"],
            birth,
            birth.replace("-", ""),
        ]
    for accession, _, when, _, _ in STUDIES:
        day = when[:10]
        words += [accession, day, day.replace("-", ""), f"1.2.826.0.1.3680043.10.99.{accession[-4:]}"]
    return words


@pytest.fixture
def deid_package(department, personas) -> Path:
    package = export_jobs.export_request(
        actor=personas["lena"],
        context=AuditContext(channel="test"),
        matter_reference="M-RESEARCH-1",
        reason="Outside expert review",
        patient_mrn=PATIENT_A["mrn"],
        accession_numbers=["ACC-8001"],
        deidentify=True,
    )
    built = export_jobs.export_build(package_pk=package.pk)
    assert built is not None and built.status == ExportStatus.READY, built and built.error
    assert built.deidentified and built.deid_profile == PROFILE
    return Path(built.file_path)


def test_deidentified_package_verifies(deid_package) -> None:
    report = vp.verify_package(deid_package, public_key_pem(checkpoints.signing_key()))
    assert report.valid, report.reason
    assert report.checks[-1].name == "redacted audit events"
    assert report.event_count > 0


def test_no_identifier_in_any_file(deid_package) -> None:
    files = read_zip(deid_package)
    files["report.pdf"] = _pdf_text(files["report.pdf"])
    leaks = [
        (name, word)
        for name, data in files.items()
        for word in _forbidden()
        if word.lower().encode() in data.lower()
    ]
    assert leaks == []


def test_deidentified_contents_are_pseudonymised_and_shifted(deid_package) -> None:
    files = read_zip(deid_package)
    manifest = json.loads(files["manifest.json"])
    assert manifest["deidentification"] == {"applied": True, "profile": PROFILE}
    assert manifest["scope"] == {"criteria": ["accession_numbers", "patient_mrn"]}
    folders = sorted({name.split("/")[1] for name in files if name.startswith("records/")})
    assert folders == ["STUDY-000001", "STUDY-000002", "STUDY-000003"]
    study = json.loads(files["records/STUDY-000001/study.json"])
    assert study["patient"]["id"].startswith("PATIENT-")
    assert study["patient"]["family_name"] is None and study["patient"]["birth_date"] is None
    header = study["dicom_header"]
    assert header["PatientIdentityRemoved"] == "YES"
    assert header["StudyInstanceUID"].startswith("2.25.")
    assert "StudyDescription" not in header and header["Manufacturer"] == "ACME"
    # The same patient's two studies keep their interval (consistent per-patient shift).
    first = json.loads(files["records/STUDY-000001/study.json"])["study_datetime"]
    second = json.loads(files["records/STUDY-000002/study.json"])["study_datetime"]
    assert (first[:10], second[:10]) != ("2025-02-11", "2025-05-23")
    gap = dt.date.fromisoformat(second[:10]) - dt.date.fromisoformat(first[:10])
    assert gap.days == (dt.date(2025, 5, 23) - dt.date(2025, 2, 11)).days
    assert files["audit/events.jsonl"] == b""
    outputs = json.loads(files["records/STUDY-000001/ai_outputs.json"])
    assert outputs[0]["inputs"]["patient_name"] == "[redacted]"
    assert outputs[0]["text_sha256"] is None


def test_deidentifier_text_rules() -> None:
    deid = Deidentifier(secret=b"k" * 32)
    deid.learn(patient_key=1, identifiers=["Quillfeather", "MRN-1", "Zebulonia Quillfeather"])
    text = deid.text("Quillfeather, MRN-1, seen 2025-02-11 and 20250211, also 3/4/2025 and March 4, 2025.", 1)
    assert "Quillfeather" not in text and "MRN-1" not in text
    assert "2025-02-11" not in text and "20250211" not in text
    assert text.count("[date removed]") == 2
    shifted = deid.date(dt.date(2025, 2, 11), 1)
    assert shifted is not None and shifted.isoformat() in text
    assert deid.shift_days(1) == deid.shift_days(1) != 0
    assert deid.accession("A") == deid.accession("A") == "STUDY-000001"
    assert deid.uid("1.2.3") == deid.uid("1.2.3") != Deidentifier().uid("1.2.3")
