"""The integration admin's pages: the interface monitor (counts, refusals, replay) and clinician linking."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from audit.models import AuditEvent
from portal.records.models import Clinician, InboundMessage, SignedReport
from tests.adapters.conftest import build_oru

pytestmark = pytest.mark.django_db

FHIR_JSON = "application/fhir+json"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_page(personas) -> Client:
    user = User.objects.create_user(username="root")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    client = Client()
    client.force_login(user)
    return client


def page_as(personas, name: str) -> Client:
    client = Client()
    client.force_login(personas[name])
    return client


def report_for_patient_ref(ref: str) -> dict:
    return {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "identifier": [{"type": {"text": "ACSN"}, "value": "ACC-REPLAY"}],
        "code": {"text": "CT HEAD"},
        "subject": {"reference": ref},
        "issued": "2024-05-01T10:00:00Z",
        "resultsInterpreter": [{"identifier": {"system": "urn:ris", "value": "R-9"}}],
        "conclusion": "No acute intracranial abnormality.",
    }


def put_patient(ris, logical_id: str) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "identifier": [{"value": "MRN-R1"}]},
                "request": {"method": "PUT", "url": f"Patient/{logical_id}"},
            }
        ],
    }
    assert ris.post("/api/v1/fhir", json.dumps(bundle), content_type=FHIR_JSON).status_code == 200


# --- the monitor -------------------------------------------------------------------------------------
def test_the_monitor_counts_each_channel_and_lists_refusals_with_their_reason(ris, admin_page):
    ris.post("/api/v1/hl7", data=build_oru({"OBR": {32: "16621^ORANGE^PANDA"}}), content_type="text/plain")
    ris.post("/api/v1/hl7", data=build_oru({"OBR": {3: None, 2: None}}), content_type="text/plain")
    ris.post(
        "/api/v1/fhir/DiagnosticReport",
        json.dumps(report_for_patient_ref("Patient/x")),
        content_type=FHIR_JSON,
    )

    page = admin_page.get("/records/interfaces/")

    assert page.status_code == 200
    html = page.content.decode()
    figures = page.context["ever"]
    by_channel = {row.channel: row for row in figures}
    assert by_channel["hl7_http"].by_outcome == {"stored": 1, "rejected": 1}
    assert by_channel["fhir"].by_outcome == {"rejected": 1}
    assert by_channel["hl7_http"].p95_ms is not None
    assert "filler order number (accession) is required" in html
    assert "DiagnosticReport.subject" in html
    assert len(page.context["refused"]) == 2


def test_replaying_after_the_cause_is_fixed_stores_the_message_once(ris, admin_page):
    ris.post(
        "/api/v1/fhir/DiagnosticReport",
        json.dumps(report_for_patient_ref("Patient/p-77")),
        content_type=FHIR_JSON,
    )
    refused = InboundMessage.objects.get()
    put_patient(ris, "p-77")  # the cause: the EHR had not sent the Patient yet

    first = admin_page.post(f"/records/interfaces/{refused.pk}/replay", follow=True)
    second = admin_page.post(f"/records/interfaces/{refused.pk}/replay", follow=True)

    assert "Stored" in first.content.decode()
    assert "Already stored" in second.content.decode()
    assert SignedReport.objects.count() == 1
    replays = InboundMessage.objects.filter(replay_of=refused).order_by("pk")
    assert [r.outcome for r in replays] == ["stored", "duplicate"]
    assert AuditEvent.objects.filter(action="inbound.replay", object_id=str(refused.pk)).count() == 2


def test_replaying_an_unknown_message_is_404(admin_page):
    assert admin_page.post("/records/interfaces/999999/replay").status_code == 404


def test_the_monitor_filter_refuses_a_bad_channel_quietly(admin_page):
    page = admin_page.get("/records/interfaces/", {"channel": f"x'{HOSTILE}", "before": "abc"})

    assert page.status_code == 200
    assert HOSTILE not in page.content.decode()


@pytest.mark.parametrize("persona", ["alice", "carol", "dana", "lena", "otto", "ris", "eve"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/records/interfaces/"),
        ("post", "/records/interfaces/1/replay"),
        ("get", "/records/clinicians/"),
        ("post", "/records/clinicians/1/link"),
    ],
)
def test_only_the_admin_opens_the_interface_pages(personas, persona, method, path):
    response = getattr(page_as(personas, persona), method)(path)

    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="access.denied").count() == 1


def test_a_replay_must_be_posted(admin_page):
    assert admin_page.get("/records/interfaces/1/replay").status_code == 405


# --- clinicians ---------------------------------------------------------------------------------------
def test_an_admin_links_a_new_reader_to_their_account_and_it_is_audited(ris, personas, admin_page):
    ris.post(
        "/api/v1/hl7", data=build_oru({"OBR": {32: f"16621^{HOSTILE}^PANDA"}}), content_type="text/plain"
    )
    clinician = Clinician.objects.get()

    listing = admin_page.get("/records/clinicians/", {"unlinked": "on"})
    response = admin_page.post(f"/records/clinicians/{clinician.pk}/link", {"account": personas["bob"].pk})

    html = listing.content.decode()
    assert HOSTILE not in html and "&lt;script&gt;" in html  # stored verbatim, shown escaped
    assert response.status_code == 302
    clinician.refresh_from_db()
    assert clinician.account == personas["bob"]
    event = AuditEvent.objects.get(action="clinician.link")
    assert event.details["account_id"] == personas["bob"].pk
    # Stored reports keep the account they were stored with; "whose case" follows the clinician.
    assert SignedReport.objects.get().radiologist is None
    assert SignedReport.objects.filter(clinician__account=personas["bob"]).count() == 1


def test_several_identifiers_may_be_linked_to_one_person(ris, personas, admin_page):
    ris.post("/api/v1/hl7", data=build_oru({"OBR": {32: "16621^ORANGE^PANDA"}}), content_type="text/plain")
    ris.post(
        "/api/v1/hl7",
        data=build_oru({"MSH": {10: "C2"}, "OBR": {3: "ACC2", 32: "P-77&ORANGE&PANDA&&&&&&PACS"}}),
        content_type="text/plain",
    )
    first, second = Clinician.objects.order_by("pk")

    for clinician in (first, second):
        admin_page.post(f"/records/clinicians/{clinician.pk}/link", {"account": personas["bob"].pk})

    assert set(Clinician.objects.values_list("account", flat=True)) == {personas["bob"].pk}
    assert SignedReport.objects.filter(clinician__account=personas["bob"]).count() == 2


@pytest.mark.parametrize("account", ["carol", "nobody", "abc", f"1{HOSTILE}", "-1"])
def test_a_clinician_is_linked_only_to_an_active_radiologist(ris, personas, admin_page, account):
    ris.post("/api/v1/hl7", data=build_oru({"OBR": {32: "16621^ORANGE^PANDA"}}), content_type="text/plain")
    clinician = Clinician.objects.get()
    value = personas[account].pk if account in personas else (987654 if account == "nobody" else account)

    response = admin_page.post(f"/records/clinicians/{clinician.pk}/link", {"account": value}, follow=True)

    assert response.status_code == 200
    clinician.refresh_from_db()
    assert clinician.account is None
    assert not AuditEvent.objects.filter(action="clinician.link").exists()


def test_relinking_to_another_account_needs_an_unlink_first(ris, personas, admin_page):
    ris.post("/api/v1/hl7", data=build_oru({"OBR": {32: "16621^ORANGE^PANDA"}}), content_type="text/plain")
    clinician = Clinician.objects.get()
    admin_page.post(f"/records/clinicians/{clinician.pk}/link", {"account": personas["bob"].pk})

    refused = admin_page.post(
        f"/records/clinicians/{clinician.pk}/link", {"account": personas["alice"].pk}, follow=True
    )
    admin_page.post(f"/records/clinicians/{clinician.pk}/link", {"account": ""})
    clinician.refresh_from_db()
    unlinked = clinician.account
    admin_page.post(f"/records/clinicians/{clinician.pk}/link", {"account": personas["alice"].pk})
    clinician.refresh_from_db()

    assert "unlink it first" in refused.content.decode()
    assert unlinked is None
    assert clinician.account == personas["alice"]
    assert list(
        AuditEvent.objects.filter(action__startswith="clinician.")
        .exclude(action="clinician.create")
        .values_list("action", flat=True)
        .order_by("seq")
    ) == [
        "clinician.link",
        "clinician.unlink",
        "clinician.link",
    ]


def test_linking_an_unknown_clinician_is_404(admin_page, personas):
    assert (
        admin_page.post("/records/clinicians/424242/link", {"account": personas["bob"].pk}).status_code == 404
    )


def test_a_radiologist_linked_later_reads_the_reports_signed_before(ris, personas, admin_page, client_for):
    ris.post("/api/v1/hl7", data=build_oru({"OBR": {32: "16621^ORANGE^PANDA"}}), content_type="text/plain")
    bob = client_for("bob")
    before = bob.get("/api/v1/signed-reports").json()["results"]
    clinician = Clinician.objects.get()

    admin_page.post(f"/records/clinicians/{clinician.pk}/link", {"account": personas["bob"].pk})
    after = bob.get("/api/v1/signed-reports").json()["results"]

    assert before == []
    assert [r["id"] for r in after] == [SignedReport.objects.get().pk]
