"""POST /api/v1/fhir/DiagnosticReport through the HTTP stack: answers, stored rows and audit events."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from audit.models import AuditEvent
from portal.records.models import AIOutput, Patient, SignedReport, Study

pytestmark = pytest.mark.django_db

URL = "/api/v1/fhir/DiagnosticReport"
FHIR_JSON = "application/fhir+json"
DATA = Path(__file__).resolve().parent.parent / "adapters" / "data"
ACCESSION = "ACC20240301001"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The personas' default PBKDF2 hashing costs seconds per test on a small machine; MD5 is enough here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def text_form(text: str) -> list[dict[str, str]]:
    """A presentedForm holding ``text`` as inline base64 plain text."""
    data = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return [{"contentType": "text/plain; charset=utf-8", "data": data}]


def final_report(**overrides: Any) -> dict[str, Any]:
    """The sample final CT report, signed by alice (a radiologist persona), with top-level overrides."""
    body = copy.deepcopy(sample("fhir_final.json"))
    body["resultsInterpreter"] = [{"identifier": {"system": "urn:concordance:username", "value": "alice"}}]
    body.update(overrides)
    return body


def post(client, body: Any, content_type: str = FHIR_JSON):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(URL, data=data, content_type=content_type)


def issue_code(response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]["code"]


def assert_nothing_written() -> None:
    assert Patient.objects.count() == 0
    assert Study.objects.count() == 0
    assert AIOutput.objects.count() == 0
    assert SignedReport.objects.count() == 0
    # A refusal is itself audited (access.denied); what must not exist is any change or its event.
    assert AuditEvent.objects.exclude(action="access.denied").count() == 0


# --- accepted reports ---------------------------------------------------------------------------------
def test_a_final_report_creates_its_study_and_the_signed_report_together(ris, personas):
    response = post(ris, final_report())

    assert response.status_code == 201, response.content
    assert response["Content-Type"].startswith(FHIR_JSON)
    assert response.json()["issue"][0]["diagnostics"].startswith("Created: SignedReport")
    study = Study.objects.get(accession_number=ACCESSION)
    assert study.patient.mrn == "MRN0042"
    assert study.study_instance_uid == "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    report = SignedReport.objects.get()
    assert (report.study, report.radiologist, report.status) == (study, personas["alice"], "final")
    assert "6 mm solid nodule" in report.text
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True)) == [
        "patient.create",
        "study.create",
        "clinician.create",
        "signed_report.final",
    ]


def test_a_preliminary_report_with_the_ai_model_extension_is_an_ai_output(ris):
    response = post(ris, sample("fhir_preliminary_ai.json"))

    assert response.status_code == 201, response.content
    output = AIOutput.objects.get()
    assert output.study.accession_number == ACCESSION
    assert (output.model_version.name, output.model_version.version) == ("chestdraft", "2.1.0")
    assert output.generation_settings == {"temperature": 0.2, "max_new_tokens": 512}
    assert output.prompt_tokens == 812
    assert SignedReport.objects.count() == 0
    assert AuditEvent.objects.filter(action="ai_output.create").count() == 1


def test_an_identical_resend_is_200_and_writes_nothing_more(ris):
    post(ris, final_report())
    events = AuditEvent.objects.count()

    response = post(ris, final_report())

    assert response.status_code == 200
    assert response.json()["issue"][0]["diagnostics"].startswith("Already stored")
    assert SignedReport.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_a_conflicting_resend_is_409_and_the_stored_report_is_unchanged(ris):
    post(ris, final_report())
    original = SignedReport.objects.get().text

    response = post(ris, final_report(presentedForm=text_form("FINDINGS:\nNormal chest.")))

    assert response.status_code == 409
    assert issue_code(response) == "conflict"
    assert SignedReport.objects.get().text == original


def test_an_amended_report_is_stored_as_a_correction_of_the_final(ris):
    post(ris, final_report())
    final = SignedReport.objects.get()

    response = post(
        ris,
        final_report(
            status="amended",
            issued="2024-03-02T08:00:00Z",
            presentedForm=text_form("FINDINGS:\n6 mm solid nodule in the LEFT lower lobe."),
        ),
    )

    assert response.status_code == 201, response.content
    correction = SignedReport.objects.exclude(pk=final.pk).get()
    assert correction.status == "correction"
    assert correction.amends == final
    assert AuditEvent.objects.filter(action="signed_report.correction").count() == 1


def test_hostile_text_is_stored_verbatim(ris):
    hostile = "FINDINGS:\n<script>alert(1)</script> '; DROP TABLE records_signedreport; --"

    response = post(ris, final_report(presentedForm=text_form(hostile)))

    assert response.status_code == 201, response.content
    assert SignedReport.objects.get().text == hostile


# --- refused reports ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b"{not json", "structure", id="not-json"),
        pytest.param(b"[1, 2]", "structure", id="not-an-object"),
        pytest.param({"resourceType": "Patient", "id": "p1"}, "not-supported", id="wrong-resource-type"),
        pytest.param(final_report(status="bogus"), "value", id="unknown-status"),
        pytest.param(final_report(status="registered"), "not-supported", id="unsupported-status"),
        pytest.param(final_report(identifier=[]), "required", id="no-accession-identifier"),
        pytest.param(
            final_report(
                presentedForm=[{"contentType": "text/html", "data": base64.b64encode(b"<p>x</p>").decode()}]
            ),
            "not-supported",
            id="html-presented-form",
        ),
    ],
)
def test_bad_input_is_a_400_operation_outcome_and_writes_nothing(ris, body, code):
    response = post(ris, body)

    assert response.status_code == 400, response.content
    assert issue_code(response) == code
    assert_nothing_written()


def test_an_unknown_signer_becomes_a_clinician_and_the_report_is_stored(ris):
    body = final_report(
        resultsInterpreter=[
            {"identifier": {"system": "urn:oid:2.16.840.1.113883.4.6", "value": "1234567893"}}
        ]
    )

    response = post(ris, body)

    assert response.status_code == 201, response.content
    report = SignedReport.objects.select_related("clinician").get()
    assert (report.clinician.authority, report.clinician.identifier) == (
        "urn:oid:2.16.840.1.113883.4.6",
        "1234567893",
    )
    assert report.radiologist is None and report.clinician.account is None


def test_a_signer_named_like_a_non_radiologist_account_is_not_linked_to_it(ris, personas):
    body = final_report(resultsInterpreter=[{"identifier": {"value": "carol"}}])  # carol reviews QA

    response = post(ris, body)

    assert response.status_code == 201, response.content
    report = SignedReport.objects.select_related("clinician").get()
    assert report.radiologist is None and report.clinician.account is None


def test_an_oversized_body_is_413_too_long(ris, settings):
    settings.CONCORDANCE_MAX_JSON_BYTES = 500

    response = post(ris, final_report())

    assert response.status_code == 413
    assert issue_code(response) == "too-long"
    assert_nothing_written()


def test_a_wrong_content_type_is_415(ris):
    response = post(ris, json.dumps(final_report()), content_type="text/plain")

    assert response.status_code == 415
    assert issue_code(response) == "not-supported"
    assert_nothing_written()


# --- access ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("persona", ["alice", "carol", "dana", "lena", "otto", "eve"])
def test_other_roles_get_a_403_operation_outcome(client_for, persona):
    response = post(client_for(persona), final_report())

    assert response.status_code == 403
    assert issue_code(response) == "forbidden"
    assert_nothing_written()


def test_anonymous_is_401(client_for):
    response = post(client_for(None), final_report())

    assert response.status_code == 401
    assert issue_code(response) == "login"
    assert_nothing_written()
