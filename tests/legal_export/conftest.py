"""Fixtures for legal export tests: a fresh signing key and var dir per test, and a small department.

The department is ingested through the REST API (so every row has its real audit events) and
compared by the discrepancy engine. Patient names are distinctive so that a grep for them in a
de-identified package cannot hit ordinary words.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import ai_output_json, signed_report_json, study_json

PATIENT_A = {
    "mrn": "MRN-ZX9041",
    "family_name": "Quillfeather",
    "given_name": "Zebulonia",
    "birth_date": "1957-06-19",
    "sex": "F",
}
PATIENT_B = {
    "mrn": "MRN-YW5532",
    "family_name": "Marrowgate",
    "given_name": "Oswinthe",
    "birth_date": "1949-11-02",
    "sex": "M",
}
# accession, patient, study time, AI text, signed findings
STUDIES = [
    (
        "ACC-7001",
        PATIENT_A,
        "2025-02-11T09:30:00Z",
        "FINDINGS:\nSmall left pleural effusion.\n\nIMPRESSION:\nSmall left pleural effusion.",
        "Small right pleural effusion. Right apical pneumothorax.",
    ),
    (
        "ACC-7002",
        PATIENT_A,
        "2025-05-23T14:00:00Z",
        "FINDINGS:\nNo acute cardiopulmonary process.\n\nIMPRESSION:\nNormal chest.",
        "No acute cardiopulmonary process.",
    ),
    (
        "ACC-8001",
        PATIENT_B,
        "2024-08-07T08:15:00Z",
        "FINDINGS:\nCardiomegaly.\n\nIMPRESSION:\nCardiomegaly.",
        "Cardiomegaly. Small bilateral pleural effusions.",
    ),
]


@pytest.fixture(autouse=True)
def export_environment(request, settings, tmp_path: Path) -> Iterator[Path]:
    """A throwaway var dir (exports land there) and a fresh Ed25519 checkpoint key per test.

    Tests with a real worker keep the configured var dir and key: the worker process must see both.
    """
    from audit import checkpoints

    if request.node.get_closest_marker("integration"):
        yield Path(settings.VAR_DIR)
        return

    var = tmp_path / "var"
    var.mkdir()
    settings.VAR_DIR = var
    settings.AUDIT_SIGNING_KEY_FILE = var / "audit-signing-key.pem"
    settings.AUDIT_SIGNING_KEY_CREATE = True
    checkpoints._signing_key.cache_clear()
    yield var
    checkpoints._signing_key.cache_clear()


def ingest(ris, accession: str, patient: dict, when: str, ai_text: str, findings: str) -> None:
    """One study, its AI draft and its signed report, through the REST API."""
    day = when[:10]
    body = study_json(accession=accession, mrn=patient["mrn"], study_datetime=when)
    body["patient"] = dict(patient)
    body["study_instance_uid"] = f"1.2.826.0.1.3680043.10.99.{accession[-4:]}"
    body["description"] = f"XR CHEST for {patient['given_name']} {patient['family_name']} on {day}"
    body["dicom_header"] = {
        "StudyInstanceUID": body["study_instance_uid"],
        "SeriesInstanceUID": body["study_instance_uid"] + ".1",
        "AccessionNumber": accession,
        "StudyDate": day.replace("-", ""),
        "StudyTime": "093000",
        "StudyDescription": f"CHEST {patient['family_name']}",
        "Modality": "CR",
        "Manufacturer": "ACME",
        "Rows": 2048,
    }
    assert ris.post("/api/v1/studies", body, format="json").status_code == 201
    ai = ai_output_json(
        accession=accession,
        text=ai_text + f"\nPatient {patient['family_name']} (MRN {patient['mrn']}), exam of {day}.",
        generated_at=when.replace(":00Z", ":05Z"),
        inputs={"indication": f"Cough since {day}", "patient_name": patient["family_name"]},
    )
    assert ris.post("/api/v1/ai-outputs", ai, format="json").status_code == 201
    report = signed_report_json(
        accession=accession,
        sections={
            "indication": f"Cough. Seen {day}.",
            "findings": findings,
            "impression": findings,
        },
        signed_at=when.replace("T09", "T11").replace("T14", "T16").replace("T08", "T10"),
    )
    assert ris.post("/api/v1/signed-reports", report, format="json").status_code == 201


@pytest.fixture
def department(ris, personas) -> list[str]:
    """Three studies of two patients, with AI drafts, signed reports and the engine's comparisons."""
    from portal.records.models import Study
    from portal.review.services import study_compare

    for row in STUDIES:
        ingest(ris, *row)
    for study in Study.objects.all():
        study_compare(study.pk)
    return [row[0] for row in STUDIES]


def read_zip(path: Path) -> dict[str, bytes]:
    """Every entry of a ZIP, by name."""
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    """Write entries (in the given order) to a deflated ZIP."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path
