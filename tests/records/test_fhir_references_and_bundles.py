"""FHIR R4 as EHRs send it: references to resources posted earlier, and transaction/batch Bundles."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import pytest

from audit.models import AuditEvent
from portal.records.models import Clinician, InboundMessage, Patient, SignedReport, Study

pytestmark = pytest.mark.django_db

FHIR_JSON = "application/fhir+json"
SPEC = Path(__file__).resolve().parent.parent / "adapters" / "data" / "fhir_spec"
ACSN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]}
# After the specification's patient-example and practitioner-example (CC0).
PATIENT = {
    "resourceType": "Patient",
    "identifier": [
        {
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "system": "urn:oid:1.2.36.146.595.217.0.1",
            "value": "12345",
        }
    ],
    "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
    "gender": "male",
    "birthDate": "1974-12-25",
}
PRACTITIONER = {
    "resourceType": "Practitioner",
    "identifier": [{"system": "http://www.acme.org/practitioners", "value": "23"}],
    "name": [{"family": "Careful", "given": ["Adam"], "prefix": ["Dr"]}],
}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def post(client, path: str, body: dict | bytes, content_type: str = FHIR_JSON):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(f"/api/v1/fhir{path}", data=data, content_type=content_type)


def spec_report(accession: str = "US-2012-1201", **changes) -> dict:
    report = json.loads((SPEC / "diagnosticreport-example-ultrasound.json").read_text())
    report["identifier"] = [{"type": ACSN, "value": accession}]
    report.update(changes)
    return report


def records_written() -> tuple[int, int, int]:
    return Patient.objects.count(), Study.objects.count(), SignedReport.objects.count()


# --- the specification's example, as published ---------------------------------------------------------
def test_the_spec_example_without_accession_is_refused_with_an_operation_outcome(ris):
    report = json.loads((SPEC / "diagnosticreport-example-ultrasound.json").read_text())

    response = post(ris, "/DiagnosticReport", report)

    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert (issue["code"], issue["expression"]) == ("required", ["DiagnosticReport.identifier"])
    assert records_written() == (0, 0, 0)
    assert InboundMessage.objects.get().outcome == "rejected"


def test_literal_references_to_a_patient_and_practitioner_posted_before(ris):
    patient = post(ris, "/Patient", PATIENT)
    practitioner = post(ris, "/Practitioner", PRACTITIONER)
    patient_ref = InboundMessage.objects.get(endpoint="Patient").location
    practitioner_ref = InboundMessage.objects.get(endpoint="Practitioner").location

    response = post(
        ris,
        "/DiagnosticReport",
        spec_report(subject={"reference": patient_ref}, performer=[{"reference": practitioner_ref}]),
    )

    assert (patient.status_code, practitioner.status_code) == (201, 201)
    assert patient_ref.startswith("Patient/") and practitioner_ref.startswith("Practitioner/")
    assert response.status_code == 201, response.content
    report = SignedReport.objects.select_related("study__patient", "clinician").get()
    assert report.study.patient.mrn == "12345"
    assert (report.clinician.authority, report.clinician.identifier) == (
        "http://www.acme.org/practitioners",
        "23",
    )
    assert (report.clinician.family_name, report.clinician.prefix) == ("Careful", "Dr")
    assert report.sections == {"impression": "Unremarkable study"}


def test_posting_the_same_patient_twice_keeps_its_first_id(ris):
    post(ris, "/Patient", PATIENT)
    again = post(ris, "/Patient", PATIENT)

    assert again.status_code == 200
    assert Patient.objects.count() == 1
    first, second = InboundMessage.objects.order_by("pk").values_list("location", flat=True)
    assert first == second


def test_an_absolute_literal_reference_is_resolved_too(ris):
    post(ris, "/Patient", PATIENT)
    post(ris, "/Practitioner", PRACTITIONER)
    patient_ref = InboundMessage.objects.get(endpoint="Patient").location
    practitioner_ref = InboundMessage.objects.get(endpoint="Practitioner").location

    response = post(
        ris,
        "/DiagnosticReport",
        spec_report(
            subject={"reference": f"https://ehr.example.org/fhir/{patient_ref}"},
            performer=[{"reference": practitioner_ref}],
        ),
    )

    assert response.status_code == 201, response.content


def test_a_reference_to_a_patient_never_posted_is_400_not_found_and_stores_nothing(ris):
    post(ris, "/Practitioner", PRACTITIONER)
    practitioner_ref = InboundMessage.objects.get(endpoint="Practitioner").location

    response = post(ris, "/DiagnosticReport", spec_report(performer=[{"reference": practitioner_ref}]))

    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert (issue["code"], issue["expression"]) == ("not-found", ["DiagnosticReport.subject"])
    assert records_written() == (0, 0, 0)


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/Patient", {"resourceType": "Patient"}, 400, "required"),
        ("/Patient", {"resourceType": "Practitioner"}, 400, "not-supported"),
        ("/Patient", {**PATIENT, "birthDate": "not a date"}, 400, "invalid"),
        ("/Patient", b"{not json", 400, "structure"),
        ("/Practitioner", {"resourceType": "Practitioner", "name": [{"family": "X"}]}, 400, "required"),
        ("/Practitioner", {**PRACTITIONER, "identifier": [{"value": "x" * 65}]}, 413, "too-long"),
        ("", {"resourceType": "Bundle", "type": "collection", "entry": []}, 400, "not-supported"),
        ("", {"resourceType": "Bundle", "type": "batch", "entry": "nope"}, 400, "invalid"),
        ("", {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {}}]}, 400, "required"),
    ],
)
def test_bad_resources_are_refused_with_an_operation_outcome(ris, path, body, status, code):
    response = post(ris, path, body)

    assert response.status_code == status, response.content
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["code"] == code
    assert records_written() == (0, 0, 0) and Clinician.objects.count() == 0


def test_a_bundle_with_too_many_entries_is_413(ris, monkeypatch):
    monkeypatch.setattr("portal.records.ingest.fhir_bundle.MAX_ENTRIES", 2)
    entry = {"request": {"method": "POST", "url": "Patient"}, "resource": PATIENT}

    response = post(ris, "", {"resourceType": "Bundle", "type": "batch", "entry": [entry] * 3})

    assert response.status_code == 413


@pytest.mark.parametrize("persona", ["alice", "carol", "dana", "lena", "otto", "eve"])
@pytest.mark.parametrize("path", ["/Patient", "/Practitioner", ""])
def test_other_roles_may_not_post(client_for, persona, path):
    response = post(client_for(persona), path, PATIENT)

    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"
    assert records_written() == (0, 0, 0)


def test_a_wrong_content_type_is_415(ris):
    response = post(ris, "", b"<Bundle/>", content_type="application/xml")

    assert response.status_code == 415
    assert records_written() == (0, 0, 0)


# --- Bundles -----------------------------------------------------------------------------------------
def _bundle(kind: str, reports: list[dict]) -> dict:
    entries = [
        {
            "fullUrl": "urn:uuid:8b1f1c6e-1d0e-4a59-9f7e-3c0f0f2a0001",
            "resource": PATIENT,
            "request": {"method": "POST", "url": "Patient"},
        },
        {
            "fullUrl": "urn:uuid:8b1f1c6e-1d0e-4a59-9f7e-3c0f0f2a0002",
            "resource": PRACTITIONER,
            "request": {"method": "PUT", "url": "Practitioner/adam-careful"},
        },
    ]
    entries += [{"resource": r, "request": {"method": "POST", "url": "DiagnosticReport"}} for r in reports]
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _report(accession: str) -> dict:
    text = (
        f"FINDINGS:\nNormal liver, gallbladder and kidneys ({accession}).\n\nIMPRESSION:\nUnremarkable study."
    )
    return spec_report(
        accession,
        subject={"reference": "urn:uuid:8b1f1c6e-1d0e-4a59-9f7e-3c0f0f2a0001"},
        performer=[{"reference": "Practitioner/adam-careful"}],
        presentedForm=[{"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode()}],
    )


def test_a_transaction_stores_every_entry_and_answers_a_transaction_response(ris):
    bundle = _bundle("transaction", [_report(f"US-{n}") for n in range(3)])

    response = post(ris, "", bundle)

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["resourceType"], body["type"]) == ("Bundle", "transaction-response")
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created"] * 5
    assert body["entry"][1]["response"]["location"] == "Practitioner/adam-careful"
    assert records_written() == (1, 3, 3)
    assert Clinician.objects.get().fhir_id == "adam-careful"


def test_a_transaction_with_one_bad_entry_stores_nothing_and_names_the_entry(ris):
    bad = _report("US-BAD")
    bad["status"] = "final-ish"
    bundle = _bundle("transaction", [_report("US-1"), bad, _report("US-3")])

    response = post(ris, "", bundle)

    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert response.json()["resourceType"] == "OperationOutcome"
    assert issue["expression"] == ["Bundle.entry[3].resource.status"]
    assert records_written() == (0, 0, 0) and Clinician.objects.count() == 0
    assert AuditEvent.objects.count() == 0
    logged = InboundMessage.objects.get()
    assert (logged.outcome, logged.location) == ("rejected", "Bundle.entry[3].resource.status")


def test_a_batch_with_one_bad_entry_stores_the_good_ones(ris):
    bad = copy.deepcopy(_report("US-BAD"))
    bad["subject"] = {"reference": "Patient/never-posted"}
    bundle = _bundle("batch", [_report("US-1"), bad, _report("US-3")])

    response = post(ris, "", bundle)

    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created", "201 Created", "201 Created", "400 Bad Request", "201 Created"]
    outcome = body["entry"][3]["response"]["outcome"]
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[3].resource.subject"]
    assert set(Study.objects.values_list("accession_number", flat=True)) == {"US-1", "US-3"}
    assert SignedReport.objects.count() == 2


def test_resending_a_transaction_is_idempotent(ris):
    bundle = _bundle("transaction", [_report("US-1")])
    post(ris, "", bundle)
    events = AuditEvent.objects.count()

    again = post(ris, "", bundle)

    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK"] * 3
    assert records_written() == (1, 1, 1)
    assert AuditEvent.objects.count() == events
