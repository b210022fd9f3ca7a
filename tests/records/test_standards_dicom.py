"""POST /api/v1/dicom (multipart 'file') through the HTTP stack: answers, stored rows, nothing on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from pydicom.data import get_testdata_file

from audit.models import AuditEvent
from portal.demo.synthetic import generate_department, write_dicom
from portal.records.models import Patient, Study

pytestmark = pytest.mark.django_db

URL = "/api/v1/dicom"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The personas' default PBKDF2 hashing costs seconds per test on a small machine; MD5 is enough here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="module")
def department():
    return generate_department(studies=3, seed=1)


@pytest.fixture
def dicom_bytes(department, tmp_path) -> bytes:
    """A valid synthetic DICOM Part 10 file of the department's first study."""
    study = department.studies[0]
    path = tmp_path / "study.dcm"
    write_dicom(study, department.patient(study.patient_mrn), path)
    return path.read_bytes()


def upload(client, content: bytes, name: str = "study.dcm"):
    return client.post(URL, {"file": SimpleUploadedFile(name, content)}, format="multipart")


def assert_nothing_written() -> None:
    assert Patient.objects.count() == 0
    assert Study.objects.count() == 0
    # A refusal is itself audited (access.denied); what must not exist is any change or its event.
    assert AuditEvent.objects.exclude(action="access.denied").count() == 0


def test_a_valid_file_creates_its_study_then_a_resend_returns_it(ris, department, dicom_bytes):
    expected = department.studies[0]

    first = upload(ris, dicom_bytes)
    again = upload(ris, dicom_bytes)

    assert first.status_code == 201, first.content
    assert first.json()["accession_number"] == expected.accession_number
    assert again.status_code == 200
    study = Study.objects.get()
    assert study.study_instance_uid == expected.study_instance_uid
    assert study.patient.mrn == expected.patient_mrn
    assert study.dicom_header["Modality"] == expected.modality
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True)) == [
        "patient.create",
        "study.create",
    ]


def test_a_request_without_the_file_field_is_400(ris):
    response = ris.post(URL, {"other": "x"}, format="multipart")

    assert response.status_code == 400
    assert response.json()["error"] == "missing_field"
    assert_nothing_written()


@pytest.mark.parametrize(
    ("content", "error"),
    [
        pytest.param(b"MSH|^~\\&|just some text\n", "malformed", id="text-file"),
        pytest.param(b"", "malformed", id="empty-file"),
        pytest.param(
            Path(get_testdata_file("MR_truncated.dcm", download=False)).read_bytes(),
            "malformed",
            id="truncated",
        ),
    ],
)
def test_a_file_that_is_not_a_usable_dicom_study_is_400(ris, content, error):
    response = upload(ris, content)

    assert response.status_code == 400, response.content
    assert response.json()["error"] == error
    assert_nothing_written()


def test_a_file_without_an_accession_number_is_kept_under_its_study_uid(ris):
    response = upload(ris, Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes())

    assert response.status_code == 201, response.content
    study = Study.objects.get()
    assert study.accession_number is None
    assert study.study_instance_uid == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert response.json()["study_instance_uid"] == study.study_instance_uid


def test_an_oversized_upload_is_413(ris, settings, dicom_bytes):
    settings.CONCORDANCE_MAX_UPLOAD_BYTES = len(dicom_bytes) - 1

    response = upload(ris, dicom_bytes)

    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert_nothing_written()


def test_a_path_traversal_file_name_stores_nothing_on_disk(ris, settings, tmp_path, monkeypatch, dicom_bytes):
    # Force the upload through a temporary file, and watch it, so that the test sees every byte
    # Django writes: the spooled copy must be named safely, live in the spool, and be gone afterwards.
    spool = tmp_path / "spool"
    spool.mkdir()
    media = tmp_path / "media"
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)
    settings.MEDIA_ROOT = str(media)
    spooled: list[tuple[str, Path]] = []
    file_complete = TemporaryFileUploadHandler.file_complete

    def watch(handler: TemporaryFileUploadHandler, size: int):
        uploaded = file_complete(handler, size)
        spooled.append((uploaded.name, Path(uploaded.temporary_file_path())))
        return uploaded

    monkeypatch.setattr(TemporaryFileUploadHandler, "file_complete", watch)

    response = upload(ris, dicom_bytes, name="../../etc/passwd.dcm")

    assert response.status_code == 201, response.content
    assert Study.objects.count() == 1
    [(name, path)] = spooled
    assert name == "passwd.dcm"
    assert path.parent == spool
    assert not path.exists()
    assert not media.exists()
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "study.dcm"] == []


@pytest.mark.parametrize("persona", ["alice", "carol", "dana", "lena", "otto", "eve"])
def test_other_roles_get_403(client_for, persona, dicom_bytes):
    response = upload(client_for(persona), dicom_bytes)

    assert response.status_code == 403
    assert_nothing_written()


def test_anonymous_is_401(client_for, dicom_bytes):
    response = upload(client_for(None), dicom_bytes)

    assert response.status_code == 401
    assert_nothing_written()
