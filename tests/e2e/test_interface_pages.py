"""The integration admin in a real browser: a refusal, its cause fixed, the replay; a reader linked."""

from __future__ import annotations

import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from portal.records.models import Clinician, SignedReport
from tests.adapters.conftest import build_oru
from tests.e2e.browser import login_as, shoot

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FHIR_JSON = "application/fhir+json"


def _ris(users) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=users['ris'])[0].key}")
    return client


def _report(ref: str) -> str:
    return json.dumps(
        {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "identifier": [{"type": {"text": "ACSN"}, "value": "ACC-E2E-1"}],
            "code": {"text": "CT HEAD WITHOUT CONTRAST"},
            "subject": {"reference": ref},
            "issued": "2024-05-01T10:00:00Z",
            "resultsInterpreter": [{"identifier": {"system": "urn:northgen:ris", "value": "16621"}}],
            "conclusion": "No acute intracranial abnormality.",
        }
    )


def test_the_admin_sees_a_refusal_fixes_its_cause_replays_it_and_links_the_reader(page, users):
    ris = _ris(users)
    ris.post("/api/v1/hl7", data=build_oru({"OBR": {32: "16621^ORANGE^PANDA"}}), content_type="text/plain")
    ris.post(
        "/api/v1/hl7",
        data=build_oru({"MSH": {10: "BAD1"}, "OBR": {3: None, 2: None}}),
        content_type="text/plain",
    )
    ris.post("/api/v1/fhir/DiagnosticReport", data=_report("Patient/p-77"), content_type=FHIR_JSON)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "identifier": [{"value": "MRN-E2E"}]},
                "request": {"method": "PUT", "url": "Patient/p-77"},
            }
        ],
    }
    ris.post("/api/v1/fhir", data=json.dumps(bundle), content_type=FHIR_JSON)

    login_as(page, "root")
    page.click("[data-testid=nav-interfaces]")
    refused = page.locator("[data-testid=refused] tbody tr")
    assert refused.count() == 2
    assert "filler order number (accession) is required" in page.locator("[data-testid=refused]").inner_text()
    shoot(page, "interfaces")

    fhir_row = page.locator("[data-testid=refused] tbody tr", has_text="DiagnosticReport.subject")
    with page.expect_navigation():
        fhir_row.locator("button").click()
    assert "replayed — Stored" in page.locator(".messages").inner_text()
    assert SignedReport.objects.count() == 2

    page.click("[data-testid=nav-clinicians]")
    row = page.locator("[data-testid=clinicians] tbody tr", has_text="ORANGE")
    row.locator("select").select_option(label="bob")
    with page.expect_navigation():
        row.locator("button").click()
    assert "linked to bob" in page.locator(".messages").inner_text()
    shoot(page, "clinicians")
    assert Clinician.objects.get(identifier="16621", authority="GENHOSP").account.username == "bob"
    assert not page.csp_violations and not page.errors
