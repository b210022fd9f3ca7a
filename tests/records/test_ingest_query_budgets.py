"""What one ingested message costs in SQL statements: a fixed, small number, one commit, and one audit
append per message or Bundle (however many events it records). Budgets hold on SQLite and PostgreSQL
(``audit_appends``: PostgreSQL's extra statement per append); the measured counts are in the comments.
"""

from __future__ import annotations

import base64
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.records.ingest.fhir_ai import AI_MODEL_URL
from portal.records.models import AIOutput, InboundMessage, SignedReport
from tests.adapters.conftest import build_oru
from tests.factories import ai_output_json, signed_report_json, study_json
from tests.query_budget import audit_appends

pytestmark = pytest.mark.django_db

ER7 = "x-application/hl7-v2+er7"
ACSN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """MD5 instead of PBKDF2 for the personas: speed of the test only."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _count(send) -> tuple[int, list[str], object]:  # noqa: ANN001
    with CaptureQueriesContext(connection) as captured:
        response = send()
    sql = [q["sql"] for q in captured.captured_queries]
    return len(sql), sql, response


def _appends(sql: list[str]) -> int:
    """Audit appends: INSERTs into the event table."""
    return sum(1 for s in sql if s.startswith('INSERT INTO "audit_auditevent"'))


def test_rest_ingestion_budgets(ris, personas):
    study_count, study_sql, response = _count(
        lambda: ris.post("/api/v1/studies", study_json(), format="json")
    )
    assert response.status_code == 201
    draft_count, draft_sql, response = _count(
        lambda: ris.post("/api/v1/ai-outputs", ai_output_json(), format="json")
    )
    assert response.status_code == 201
    report_count, report_sql, response = _count(
        lambda: ris.post("/api/v1/signed-reports", signed_report_json(), format="json")
    )
    assert response.status_code == 201
    # One append each (the study request records two events: patient and study). Before ingest units
    # (one append per event, nested savepoints): 18 / 18 / 21 on SQLite, 20 / 20 / 23 on PostgreSQL.
    assert [_appends(s) for s in (study_sql, draft_sql, report_sql)] == [1, 1, 1]
    assert study_count <= 14 + audit_appends()
    assert draft_count <= 15 + audit_appends()
    assert report_count <= 16 + audit_appends()


def _oru(status: str, control_id: str, extra: list[str] | None = None) -> str:
    return build_oru(
        {"MSH": {10: control_id}, "OBR": {25: status, 32: "alice"}, "OBX": {11: status}}, extra=extra
    )


def test_hl7_budgets_one_commit_with_the_inbound_row(ris):
    zai = ["ZAI|concordance-chest|1.0.0|report_draft|202403011000"]
    draft_count, draft_sql, response = _count(
        lambda: ris.post("/api/v1/hl7", data=_oru("P", "C1", zai), content_type=ER7)
    )
    assert response.status_code == 200 and b"MSA|AA" in response.content
    final_count, final_sql, response = _count(
        lambda: ris.post("/api/v1/hl7", data=_oru("F", "C2"), content_type=ER7)
    )
    assert response.status_code == 200 and b"MSA|AA" in response.content
    assert AIOutput.objects.count() == 1 and SignedReport.objects.count() == 1
    assert InboundMessage.objects.count() == 2
    # One append and one commit each, the inbound row inside the ingest transaction. Before: 38 / 31
    # on SQLite, 42 / 33 on PostgreSQL (a draft with a new patient and study; a final, new signer).
    assert [_appends(s) for s in (draft_sql, final_sql)] == [1, 1]
    assert draft_count <= 23 + audit_appends()
    assert final_count <= 17 + audit_appends()


def _text(value: str) -> list[dict]:
    return [{"contentType": "text/plain", "data": base64.b64encode(value.encode()).decode()}]


def _pair_entries(n: int) -> list[dict]:
    """A Patient, an AI draft and a signed final for one study, as EHR Bundles carry them."""
    patient_url = f"urn:uuid:00000000-0000-4000-8000-{n:012d}"
    common = {
        "identifier": [{"type": ACSN, "value": f"BUDGET{n}"}],
        "code": {"text": "XR CHEST"},
        "subject": {"reference": patient_url},
        "effectiveDateTime": "2026-03-04T10:00:00Z",
    }
    draft = {
        "resourceType": "DiagnosticReport",
        "status": "preliminary",
        **common,
        "issued": "2026-03-04T10:05:00Z",
        "extension": [{"url": AI_MODEL_URL, "valueString": "concordance-chest|1.0.0"}],
        "presentedForm": _text("FINDINGS:\nNo effusion.\n\nIMPRESSION:\nNormal."),
    }
    final = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        **common,
        "issued": "2026-03-04T11:00:00Z",
        "resultsInterpreter": [{"identifier": {"system": "urn:concordance:username", "value": "alice"}}],
        "presentedForm": _text("FINDINGS:\nSmall effusion.\n\nIMPRESSION:\nSmall effusion."),
    }
    patient = {
        "resourceType": "Patient",
        "identifier": [{"value": f"MRNB{n % 3}"}],  # patients recur, as in a department's backlog
        "name": [{"family": "Testperson", "given": ["Ada"]}],
        "birthDate": "1960-02-03",
    }
    return [
        {"fullUrl": patient_url, "resource": patient, "request": {"method": "POST", "url": "Patient"}},
        {"resource": draft, "request": {"method": "POST", "url": "DiagnosticReport"}},
        {"resource": final, "request": {"method": "POST", "url": "DiagnosticReport"}},
    ]


def test_a_transaction_bundle_budget_per_report(ris):
    pairs = 10
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [e for n in range(pairs) for e in _pair_entries(n)],
    }
    count, sql, response = _count(
        lambda: ris.post("/api/v1/fhir", data=json.dumps(bundle), content_type="application/fhir+json")
    )
    assert response.status_code == 200, response.content
    assert all(e["response"]["status"][:3] in ("200", "201") for e in response.json()["entry"])
    assert SignedReport.objects.count() == pairs and AIOutput.objects.count() == pairs
    assert _appends(sql) == 1  # 20 reports, 10 studies, 3 patients and their ids: one append
    # Set by set (ingest/fhir_sets.py): 26 statements on SQLite, 27 on PostgreSQL (the patients'
    # locks) whatever the Bundle's size (a read and an INSERT per table; 8 of them the first sight of
    # the signer and the model); entry by entry it was 153 (7.7 per report), 509 / 547 before that.
    assert count <= (27 if connection.vendor == "postgresql" else 26) + audit_appends()
