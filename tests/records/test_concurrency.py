"""Idempotency under concurrency: 20 identical requests at once leave exactly one row."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from portal.records.models import AIOutput, Study
from tests.concurrency import at_once
from tests.factories import ai_output_json, study_json

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = 20


def _post_concurrently(token: str, path: str, body: dict) -> list[int]:
    return at_once(WORKERS, token, lambda client: client.post(path, body, format="json").status_code)


def test_twenty_identical_study_requests_create_one_study(personas):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=personas["ris"]).key

    statuses = _post_concurrently(token, "/api/v1/studies", study_json())

    assert sorted(statuses) == [200] * (WORKERS - 1) + [201]
    assert Study.objects.count() == 1
    assert AuditEvent.objects.filter(action="study.create").count() == 1


def test_twenty_identical_ai_outputs_create_one_row(personas, client_for):
    from rest_framework.authtoken.models import Token

    client_for("ris").post("/api/v1/studies", study_json(), format="json")
    token = Token.objects.get(user=personas["ris"]).key

    statuses = _post_concurrently(token, "/api/v1/ai-outputs", ai_output_json())

    assert sorted(statuses) == [200] * (WORKERS - 1) + [201]
    assert AIOutput.objects.count() == 1
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(len(seqs)))  # gapless under concurrent writers
