"""DICOM as a PACS and AI vendors send it: studies without accession, joined later; Structured Reports.

pydicom's own test files (shipped in its wheel, MIT licence): CT_small.dcm and MR_small.dcm carry no
AccessionNumber; reportsi.dcm (Basic Text SR, UNVERIFIED) and test-SR.dcm (Comprehensive SR, VERIFIED)
carry no PatientID. Where a test needs a device author or a PatientID it adds exactly that element to
a copy of the real file.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from portal.records.ingest.dicom_sr import read_dicom, sr_text
from portal.records.ingest.payloads import AdapterError, AIOutputPayload, SignedReportPayload
from portal.records.models import AIOutput, InboundMessage, SignedReport, Study
from tests.adapters.conftest import build_oru

pytestmark = pytest.mark.django_db

URL = "/api/v1/dicom"
CT_UID = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
SR_UID = "1.2.276.0.7230010.3.1.4.2139363186.7819.982086466.2"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def bundled(name: str) -> bytes:
    return Path(get_testdata_file(name, download=False)).read_bytes()


def dataset(name: str) -> Dataset:
    return pydicom.dcmread(get_testdata_file(name, download=False))


def to_bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def upload(client, content: bytes):
    return client.post(URL, {"file": SimpleUploadedFile("x.dcm", content)}, format="multipart")


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def context_item(concept: Dataset, value_type: str, **values) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = "HAS OBS CONTEXT", value_type
    item.ConceptNameCodeSequence = [concept]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def device_authored(ds: Dataset) -> Dataset:
    """The real SR with the TID 1002 observation context of a device author added (and a version)."""
    ds.ContentSequence.insert(
        0,
        context_item(
            code_item("121005", "DCM", "Observer Type"),
            "CODE",
            ConceptCodeSequence=[code_item("121007", "DCM", "Device")],
        ),
    )
    ds.ContentSequence.insert(
        1,
        context_item(code_item("121015", "DCM", "Device Observer Model Name"), "TEXT", TextValue="ChestCAD"),
    )
    ds.SoftwareVersions = "4.2.1"
    return ds


# --- the content tree --------------------------------------------------------------------------------
def test_the_comprehensive_sr_text_tree_is_rendered_in_document_order():
    text = sr_text(dataset("test-SR.dcm"))

    lines = text.splitlines()
    assert lines[:2] == ["A mass of", "Code: Sample Code 1"]
    assert "was detected." in lines
    assert "Sample TextA" in text and "Inferred Sample Text" in text
    assert "Some UID" not in text  # observation context is not report text


def test_the_basic_text_sr_is_read_and_its_unverified_draft_is_not_a_report():
    result = read_dicom(bundled("reportsi.dcm"))

    assert result.report is None
    assert "draft" in result.ignored
    assert result.study is None  # no PatientID: the study must already be known by its UID


def test_a_verified_sr_is_a_signed_report_by_its_verifying_observer():
    result = read_dicom(bundled("test-SR.dcm"))

    report = result.report
    assert isinstance(report, SignedReportPayload)
    assert (report.signer.authority, report.signer.identifier) == ("99_OFFIS_DCMTK", "1705")
    assert (report.signer.family_name, report.signer.given_name) == ("Riesmeier", "Jörg")
    assert report.signed_at.isoformat() == "2001-02-13T18:47:46+00:00"
    # test-SR.dcm names a predecessor document: it amends an earlier report of its study.
    assert report.status == "correction" and report.study_instance_uid == SR_UID


def test_an_sr_authored_by_a_device_is_an_ai_output_with_its_provenance():
    result = read_dicom(to_bytes(device_authored(dataset("reportsi.dcm"))))

    output = result.report
    assert isinstance(output, AIOutputPayload)
    assert (output.model_name, output.model_version) == ("ChestCAD", "4.2.1")
    assert output.inputs["device"] == {"model": "ChestCAD"}
    assert output.inputs["manufacturer"] == "Kuratorium OFFIS e.V."
    assert output.inputs["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.88.11"
    assert output.text == "SECTION HEADING:\nEnter text"


@pytest.mark.parametrize("name", ["no_meta.dcm", "MR_truncated.dcm", "badVR.dcm"])
def test_malformed_pydicom_files_are_refused_only_with_adapter_errors(name):
    try:
        read_dicom(bundled(name))
    except AdapterError as exc:
        assert exc.code in ("malformed", "missing_field")


def test_an_sr_nested_past_the_limit_is_refused():
    ds = dataset("reportsi.dcm")
    item = ds.ContentSequence[-1]
    for _ in range(60):
        child = Dataset()
        child.RelationshipType, child.ValueType, child.TextValue = "CONTAINS", "TEXT", "x"
        item.ContentSequence = [child]
        item = child

    with pytest.raises(AdapterError) as err:
        sr_text(ds)
    assert err.value.code == "malformed"


# --- through the API ---------------------------------------------------------------------------------
def test_an_sr_for_a_study_already_stored_attaches_its_report(ris):
    image = dataset("CT_small.dcm")
    image.StudyInstanceUID = SR_UID
    upload(ris, to_bytes(image))

    response = upload(ris, bundled("test-SR.dcm"))

    assert response.status_code == 201, response.content
    assert response.json()["report"]["type"] == "signedreport"
    report = SignedReport.objects.select_related("clinician").get()
    assert report.status == "final"  # its predecessor never reached us: the first report we hold
    assert report.study.study_instance_uid == SR_UID
    assert report.clinician.identifier == "1705"


def test_the_same_sr_sent_twice_is_stored_once(ris):
    image = dataset("CT_small.dcm")
    image.StudyInstanceUID = SR_UID
    upload(ris, to_bytes(image))
    upload(ris, bundled("test-SR.dcm"))

    again = upload(ris, bundled("test-SR.dcm"))

    assert again.status_code == 200, again.content
    assert SignedReport.objects.count() == 1
    assert InboundMessage.objects.order_by("-pk").first().outcome == "duplicate"


def test_an_sr_for_an_unknown_study_without_patient_is_404_and_stores_nothing(ris):
    response = upload(ris, bundled("test-SR.dcm"))

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert Study.objects.count() == 0 and SignedReport.objects.count() == 0
    assert InboundMessage.objects.get().outcome == "rejected"


def test_an_ai_sr_with_its_patient_creates_the_study_and_the_ai_output(ris):
    ds = device_authored(dataset("reportsi.dcm"))
    ds.PatientID = "MRN-SR-1"

    response = upload(ris, to_bytes(ds))

    assert response.status_code == 201, response.content
    output = AIOutput.objects.select_related("model_version", "study").get()
    assert (output.model_version.name, output.model_version.version) == ("ChestCAD", "4.2.1")
    assert output.study.accession_number is None
    assert output.inputs["source"] == "dicom_sr"


# --- joining the RIS -------------------------------------------------------------------------------------
def test_a_study_without_accession_is_joined_by_the_ris_message_with_the_same_uid(ris, personas):
    upload(ris, bundled("CT_small.dcm"))
    message = build_oru(
        {
            "PID": {3: "1CT1"},
            "OBR": {3: "ACC-CT-1", 32: "alice"},
            "OBX": {5: "FINDINGS: Normal."},
        },
        extra=[f"ZDS|{CT_UID}^^Application^DICOM"],
    )

    response = ris.post("/api/v1/hl7", data=message, content_type="x-application/hl7-v2+er7")

    assert response.status_code == 200, response.content
    study = Study.objects.get()
    assert (study.accession_number, study.study_instance_uid) == ("ACC-CT-1", CT_UID)
    assert SignedReport.objects.get().study == study


def test_without_a_uid_the_ris_joins_by_patient_modality_and_day(ris):
    upload(ris, bundled("CT_small.dcm"))  # CT, 2004-01-19, patient 1CT1
    message = build_oru({"PID": {3: "1CT1"}, "OBR": {3: "ACC-CT-2", 7: "200401190800", 24: "CT", 32: "rad7"}})

    ris.post("/api/v1/hl7", data=message, content_type="x-application/hl7-v2+er7")

    study = Study.objects.get()
    assert study.accession_number == "ACC-CT-2"


@pytest.mark.parametrize(
    "change",
    [{7: "200401200800"}, {24: "MR"}],
    ids=["another-day", "another-modality"],
)
def test_a_ris_message_for_another_exam_is_not_joined(ris, change):
    upload(ris, bundled("CT_small.dcm"))
    obr = {3: "ACC-CT-3", 7: "200401190800", 24: "CT", 32: "rad7", **change}

    ris.post(
        "/api/v1/hl7",
        data=build_oru({"PID": {3: "1CT1"}, "OBR": obr}),
        content_type="x-application/hl7-v2+er7",
    )

    assert Study.objects.count() == 2
    assert Study.objects.get(study_instance_uid=CT_UID).accession_number is None


def test_two_candidate_studies_are_never_guessed_between(ris):
    upload(ris, bundled("CT_small.dcm"))
    twin = dataset("CT_small.dcm")
    twin.StudyInstanceUID = "1.3.6.1.4.1.5962.1.2.1.20040119072730.99999"
    upload(ris, to_bytes(twin))
    obr = {3: "ACC-CT-4", 7: "200401190800", 24: "CT", 32: "rad7"}

    ris.post(
        "/api/v1/hl7",
        data=build_oru({"PID": {3: "1CT1"}, "OBR": obr}),
        content_type="x-application/hl7-v2+er7",
    )

    assert Study.objects.filter(accession_number__isnull=True).count() == 2
    assert Study.objects.get(accession_number="ACC-CT-4").study_instance_uid is None


def test_a_uid_already_joined_to_another_accession_is_a_conflict(ris):
    upload(ris, bundled("CT_small.dcm"))
    zds = [f"ZDS|{CT_UID}^^Application^DICOM"]
    ris.post(
        "/api/v1/hl7",
        data=build_oru({"PID": {3: "1CT1"}, "OBR": {3: "ACC-A", 32: "rad7"}}, extra=zds),
        content_type="x-application/hl7-v2+er7",
    )

    response = ris.post(
        "/api/v1/hl7",
        data=build_oru({"PID": {3: "1CT1"}, "OBR": {3: "ACC-B", 32: "rad7"}}, extra=zds),
        content_type="x-application/hl7-v2+er7",
    )

    assert response.status_code == 409
    assert not Study.objects.filter(accession_number="ACC-B").exists()
