"""Oversized, compressed and decompression-bomb inputs: refused with a clear 4xx, nothing half-written."""

from __future__ import annotations

import gzip
import io
import json
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import generate_uid

from audit.models import AuditEvent
from portal.demo.synthetic import generate_department, write_dicom
from portal.records.models import Patient, Study
from tests.factories import study_json

pytestmark = pytest.mark.django_db

DEFLATED = "1.2.840.10008.1.2.1.99"


def assert_nothing_written() -> None:
    assert Patient.objects.count() == 0
    assert Study.objects.count() == 0
    assert AuditEvent.objects.exclude(action="access.denied").count() == 0


def test_a_gzip_encoded_json_body_is_refused_not_inflated(ris):
    body = gzip.compress(json.dumps(study_json()).encode())
    response = ris.post(
        "/api/v1/studies", data=body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip"
    )

    assert 400 <= response.status_code < 500
    assert_nothing_written()


def test_a_deflate_encoded_fhir_body_is_refused_not_inflated(ris):
    body = zlib.compress(b'{"resourceType": "DiagnosticReport"}' + b" " * 1_000_000)
    response = ris.post(
        "/api/v1/fhir/DiagnosticReport",
        data=body,
        content_type="application/fhir+json",
        HTTP_CONTENT_ENCODING="deflate",
    )

    assert 400 <= response.status_code < 500
    assert_nothing_written()


@pytest.mark.parametrize(
    ("url", "content_type"),
    [
        ("/api/v1/studies", "application/json"),
        ("/api/v1/fhir/DiagnosticReport", "application/fhir+json"),
        ("/api/v1/hl7", "x-application/hl7-v2+er7"),
        ("/api/v1/compare", "application/json"),
    ],
)
def test_a_body_over_the_cap_is_413_before_it_is_parsed(ris, settings, url, content_type):
    body = b"A" * (settings.CONCORDANCE_MAX_JSON_BYTES + 1)
    response = ris.post(url, data=body, content_type=content_type)

    assert response.status_code == 413
    assert_nothing_written()


def test_a_lying_content_length_is_a_clear_400(ris):
    response = ris.post(
        "/api/v1/studies", data=b"{}", content_type="application/json", CONTENT_LENGTH="12abc"
    )

    assert response.status_code == 400
    assert_nothing_written()


def test_deeply_nested_json_is_a_clear_4xx(ris):
    body = "[" * 100_000 + "]" * 100_000
    response = ris.post("/api/v1/studies", data=body, content_type="application/json")

    assert 400 <= response.status_code < 500
    assert_nothing_written()


def _deflated_dicom(inflated_bytes: int) -> bytes:
    """A valid deflated-transfer-syntax DICOM file whose dataset inflates to about ``inflated_bytes``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DEFLATED
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.AccessionNumber = "BOMB1"
    ds.PatientID = "MRN-BOMB"
    ds.Modality = "CR"
    ds.add_new(0x00091010, "OB", b"\0" * inflated_bytes)  # a private blob in the header, not pixel data
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_a_deflated_dicom_bomb_is_refused_before_it_inflates(ris, settings):
    settings.CONCORDANCE_MAX_UPLOAD_BYTES = 8 * 1_048_576
    bomb = _deflated_dicom(inflated_bytes=24 * 1_048_576)  # ~24 KB on the wire, 3x the upload cap inflated
    assert len(bomb) < 100_000

    response = ris.post("/api/v1/dicom", {"file": SimpleUploadedFile("bomb.dcm", bomb)}, format="multipart")

    assert response.status_code in (400, 413), response.content
    assert_nothing_written()


def test_import_dicom_does_not_follow_links_out_of_the_folder(tmp_path, ris):
    department = generate_department(studies=2, seed=3)
    inside = tmp_path / "inbox"
    outside = tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    first, second = department.studies[:2]
    write_dicom(first, department.patient(first.patient_mrn), inside / "one.dcm")
    write_dicom(second, department.patient(second.patient_mrn), outside / "secret.dcm")
    (inside / "link.dcm").symlink_to(outside / "secret.dcm")
    (inside / "dirlink").symlink_to(outside, target_is_directory=True)

    try:
        call_command("import_dicom", str(inside), *_account_args(), stdout=io.StringIO())
    except CommandError as exc:  # pragma: no cover - a clear refusal is also acceptable
        pytest.fail(f"import_dicom refused a plain folder: {exc}")

    assert list(Study.objects.values_list("accession_number", flat=True)) == [first.accession_number]


def _account_args() -> list[str]:
    """import_dicom's options naming the acting integration account, if the command has one."""
    from portal.records.management.commands import import_dicom

    parser = import_dicom.Command().create_parser("manage.py", "import_dicom")
    options = {action.dest for action in parser._actions}
    return ["--account", "ris"] if "account" in options else []


def test_a_small_deflated_dicom_is_still_accepted(ris, settings):
    settings.CONCORDANCE_MAX_UPLOAD_BYTES = 8 * 1_048_576
    small = _deflated_dicom(inflated_bytes=10_000)

    response = ris.post("/api/v1/dicom", {"file": SimpleUploadedFile("small.dcm", small)}, format="multipart")

    assert response.status_code == 201, response.content
