"""One ingest unit reads each row once and knows what it created itself: a study new in the unit has no
outputs or reports but the unit's own, so a repeat inside the same Bundle is still recognised and a
second final report for it is still refused."""

from __future__ import annotations

import json

import pytest

from portal.records.models import AIOutput, InboundMessage, SignedReport, Study
from tests.records.test_ingest_query_budgets import _pair_entries

pytestmark = pytest.mark.django_db

FHIR_JSON = "application/fhir+json"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """MD5 instead of PBKDF2 for the personas: speed of the test only."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _post(client, entries: list[dict], kind: str = "transaction"):  # noqa: ANN001
    bundle = {"resourceType": "Bundle", "type": kind, "entry": entries}
    return client.post("/api/v1/fhir", data=json.dumps(bundle), content_type=FHIR_JSON)


def test_a_repeat_inside_one_bundle_of_a_new_study_is_already_stored(ris):
    patient, draft, final = _pair_entries(1)

    response = _post(ris, [patient, draft, final, draft, final])

    assert response.status_code == 200, response.content
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "201 Created", "201 Created", "200 OK", "200 OK"]
    assert (Study.objects.count(), AIOutput.objects.count(), SignedReport.objects.count()) == (1, 1, 1)


def test_a_second_final_inside_one_bundle_of_a_new_study_refuses_the_transaction(ris):
    patient, draft, final = _pair_entries(2)
    other = json.loads(json.dumps(final))
    other["resource"]["issued"] = "2026-03-04T12:00:00Z"

    response = _post(ris, [patient, draft, final, other])

    assert response.status_code == 409, response.content
    assert (Study.objects.count(), AIOutput.objects.count(), SignedReport.objects.count()) == (0, 0, 0)
    (row,) = InboundMessage.objects.all()
    assert row.outcome == "rejected" and "Bundle.entry[3]" in row.location


def test_in_a_batch_each_entry_is_its_own_unit(ris):
    patient, draft, final = _pair_entries(3)
    other = json.loads(json.dumps(final))
    other["resource"]["issued"] = "2026-03-04T12:00:00Z"

    response = _post(ris, [patient, draft, final, other], kind="batch")

    statuses = [e["response"]["status"][:3] for e in response.json()["entry"]]
    assert statuses == ["201", "201", "201", "409"]
    assert (Study.objects.count(), AIOutput.objects.count(), SignedReport.objects.count()) == (1, 1, 1)
