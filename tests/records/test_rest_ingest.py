"""REST ingestion: studies, AI outputs and signed reports; good, bad, duplicate, conflicting, wrong role."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from portal.records.models import AIOutput, Patient, SignedReport, Study
from tests.factories import ai_output_json, signed_report_json, study_json

pytestmark = pytest.mark.django_db


def test_it_creates_a_study_with_its_patient_and_audits_both(ris):
    response = ris.post("/api/v1/studies", study_json(), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["accession_number"] == "ACC1001"
    study = Study.objects.get(accession_number="ACC1001")
    assert study.patient.mrn == "MRN0001"
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True)) == [
        "patient.create",
        "study.create",
    ]


def test_resending_an_identical_study_returns_the_stored_one(ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    response = ris.post("/api/v1/studies", study_json(), format="json")

    assert response.status_code == 200
    assert Study.objects.count() == 1


def test_a_study_of_another_patient_under_the_same_accession_is_a_conflict(ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    response = ris.post("/api/v1/studies", study_json(mrn="MRN0002"), format="json")

    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert Patient.objects.count() == 1  # the second patient was not half-written


def test_the_same_uid_under_another_accession_is_a_conflict(ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    response = ris.post("/api/v1/studies", study_json(accession="ACC2"), format="json")

    assert response.status_code == 409
    assert Study.objects.count() == 1


def test_it_stores_an_ai_output_with_provenance(ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    response = ris.post("/api/v1/ai-outputs", ai_output_json(), format="json")

    assert response.status_code == 201, response.content
    output = AIOutput.objects.get()
    assert output.inputs["findings"][0]["laterality"] == "left"
    assert output.model_version.name == "concordance-chest"
    assert len(output.text_sha256) == 64
    assert response.json()["text_sha256"] == output.text_sha256


def test_an_identical_ai_output_is_200_and_a_different_one_is_409(ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    ris.post("/api/v1/ai-outputs", ai_output_json(), format="json")

    again = ris.post("/api/v1/ai-outputs", ai_output_json(), format="json")
    changed = ris.post("/api/v1/ai-outputs", ai_output_json(text="Different text."), format="json")

    assert again.status_code == 200
    assert changed.status_code == 409
    assert "immutable" in changed.json()["detail"]
    assert AIOutput.objects.count() == 1


def test_an_ai_output_for_an_unknown_study_is_404(ris):
    response = ris.post("/api/v1/ai-outputs", ai_output_json(accession="NOPE"), format="json")

    assert response.status_code == 404
    assert AIOutput.objects.count() == 0


def test_it_stores_a_signed_report_and_composes_its_text_from_sections(ris, personas):
    ris.post("/api/v1/studies", study_json(), format="json")
    response = ris.post("/api/v1/signed-reports", signed_report_json(), format="json")

    assert response.status_code == 201, response.content
    report = SignedReport.objects.get()
    assert report.radiologist == personas["alice"]
    assert report.text.startswith("INDICATION:\nCough.")
    assert "IMPRESSION:\nSmall left pleural effusion." in report.text


def test_a_report_sent_as_text_is_split_into_sections(ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    body = signed_report_json(sections={}, text="FINDINGS: Lungs clear.\nIMPRESSION: Normal chest.")
    response = ris.post("/api/v1/signed-reports", body, format="json")

    assert response.status_code == 201, response.content
    assert SignedReport.objects.get().sections == {"findings": "Lungs clear.", "impression": "Normal chest."}


def test_a_second_final_report_is_refused_and_an_addendum_amends_the_first(ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    first = ris.post("/api/v1/signed-reports", signed_report_json(), format="json").json()

    second_final = ris.post(
        "/api/v1/signed-reports", signed_report_json(signed_at="2026-03-05T09:00:00Z"), format="json"
    )
    addendum = ris.post(
        "/api/v1/signed-reports",
        signed_report_json(
            status="addendum",
            amends=first["id"],
            signed_at="2026-03-05T09:00:00Z",
            sections={},
            text="ADDENDUM: Finding discussed with Dr Grey.",
        ),
        format="json",
    )

    assert second_final.status_code == 409
    assert addendum.status_code == 201, addendum.content
    assert SignedReport.objects.get(pk=addendum.json()["id"]).amends_id == first["id"]
    assert SignedReport.objects.get(pk=first["id"]).text.startswith("INDICATION")  # original untouched


def test_an_addendum_without_a_report_to_amend_is_404(ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    response = ris.post("/api/v1/signed-reports", signed_report_json(status="addendum"), format="json")

    assert response.status_code == 404


def test_an_addendum_signed_before_its_report_is_refused(ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    first = ris.post("/api/v1/signed-reports", signed_report_json(), format="json").json()
    response = ris.post(
        "/api/v1/signed-reports",
        signed_report_json(status="correction", amends=first["id"], signed_at="2026-03-01T00:00:00Z"),
        format="json",
    )

    assert response.status_code == 400
    assert SignedReport.objects.count() == 1


def test_a_report_signed_by_someone_who_is_not_a_radiologist_is_refused(ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    response = ris.post("/api/v1/signed-reports", signed_report_json(radiologist="carol"), format="json")

    assert response.status_code == 400
    assert response.json()["field"] == "radiologist"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/studies", {}),
        ("/api/v1/studies", study_json(accession="")),
        ("/api/v1/studies", study_json(study_instance_uid="not-a-uid")),
        ("/api/v1/studies", study_json(modality="computed tomography")),
        ("/api/v1/studies", study_json(patient={"mrn": ""})),
        ("/api/v1/studies", study_json(patient="MRN1")),
        ("/api/v1/studies", study_json(study_datetime="yesterday")),
        ("/api/v1/studies", study_json(dicom_header=["not", "an", "object"])),
        ("/api/v1/studies", study_json(description="bad\x00nul")),
        ("/api/v1/ai-outputs", ai_output_json(kind="poem")),
        ("/api/v1/ai-outputs", ai_output_json(text="")),
        ("/api/v1/ai-outputs", ai_output_json(text=12345)),
        ("/api/v1/ai-outputs", ai_output_json(latency_ms=-1)),
        ("/api/v1/ai-outputs", ai_output_json(generated_at=None)),
        (
            "/api/v1/ai-outputs",
            ai_output_json(inputs={"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {}}}}}}}}}}),
        ),
        ("/api/v1/ai-outputs", ai_output_json(text="control \x07 bell")),
        ("/api/v1/signed-reports", signed_report_json(sections={}, text="")),
        ("/api/v1/signed-reports", signed_report_json(status="draft")),
        ("/api/v1/signed-reports", signed_report_json(signed_at="")),
    ],
)
def test_malformed_payloads_are_400_and_write_nothing(ris, path, body):
    ris.post("/api/v1/studies", study_json(accession="ACC-BASE", study_instance_uid="1.2.3"), format="json")
    events = AuditEvent.objects.count()
    counts = (Study.objects.count(), AIOutput.objects.count(), SignedReport.objects.count())

    response = ris.post(path, body, format="json")

    assert response.status_code == 400, response.content
    assert (Study.objects.count(), AIOutput.objects.count(), SignedReport.objects.count()) == counts
    assert AuditEvent.objects.count() == events


def test_a_body_that_is_not_json_is_400(ris):
    response = ris.post("/api/v1/studies", data=b'{"accession_number": ', content_type="application/json")

    assert response.status_code == 400


def test_a_wrong_content_type_is_415(ris):
    response = ris.post(
        "/api/v1/studies", data=b"accession=1", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 415


def test_an_oversized_body_is_413_before_it_is_read(ris, settings):
    settings.CONCORDANCE_MAX_JSON_BYTES = 1000
    body = ai_output_json(text="x" * 5000)

    response = ris.post("/api/v1/ai-outputs", body, format="json")

    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_hostile_text_is_stored_verbatim(ris):
    hostile = "<script>alert(1)</script> '; DROP TABLE records_study; --"
    ris.post("/api/v1/studies", study_json(description=hostile[:200]), format="json")
    response = ris.post("/api/v1/ai-outputs", ai_output_json(text=hostile), format="json")

    assert response.status_code == 201
    assert AIOutput.objects.get().text == hostile
    assert Study.objects.count() == 1


@pytest.mark.parametrize("persona", ["alice", "carol", "dana", "lena", "otto", "eve"])
def test_only_integration_accounts_may_ingest(client_for, persona):
    response = client_for(persona).post("/api/v1/studies", study_json(), format="json")

    assert response.status_code == 403
    assert Study.objects.count() == 0


def test_anonymous_requests_are_401(client_for):
    response = client_for(None).post("/api/v1/studies", study_json(), format="json")

    assert response.status_code == 401
