"""Comparisons stored from the record: idempotent, audited, found again by the sweeper."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from portal.records.models import Study
from portal.review import services
from portal.review.models import Comparison
from portal.review.selectors import studies_awaiting_comparison
from tests.factories import ai_output_json, signed_report_json, study_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(ris) -> Study:
    ris.post("/api/v1/studies", study_json(), format="json")
    ris.post("/api/v1/ai-outputs", ai_output_json(), format="json")
    ris.post(
        "/api/v1/signed-reports",
        signed_report_json(sections={"findings": "No pleural effusion."}),
        format="json",
    )
    return Study.objects.get()


def test_the_sweeper_finds_a_study_whose_comparison_never_ran(study):
    assert studies_awaiting_comparison(limit=10) == [study.pk]


def test_comparing_twice_stores_one_comparison(study):
    first = services.study_compare(study.pk)
    second = services.study_compare(study.pk)

    assert [c.pk for c in first] == [c.pk for c in second]
    assert Comparison.objects.count() == 1
    assert AuditEvent.objects.filter(action="comparison.create").count() == 1
    assert studies_awaiting_comparison(limit=10) == []


def test_a_draft_reporting_what_the_radiologist_excluded_is_a_false_finding(study):
    (comparison,) = services.study_compare(study.pk)

    discrepancy = comparison.discrepancies.get()
    assert discrepancy.category == "false_finding"
    candidate = comparison.candidate.text
    assert "effusion" in candidate[discrepancy.candidate_start : discrepancy.candidate_end]


def test_a_study_without_a_signed_report_is_not_compared(ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    ris.post("/api/v1/ai-outputs", ai_output_json(), format="json")

    assert services.study_compare(Study.objects.get().pk) == []
    assert studies_awaiting_comparison(limit=10) == []


def test_the_compare_api_returns_the_engine_result(client_for):
    response = client_for("carol").post(
        "/api/v1/compare",
        {"candidate": "No pneumothorax.", "reference": "Small left pneumothorax."},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["discrepancies"][0]["category"] == "missed_finding"
    assert body["radpeer"] == "3b"


@pytest.mark.parametrize(
    "body", [{}, {"candidate": 1, "reference": "x"}, {"candidate": "a\x00", "reference": "b"}]
)
def test_the_compare_api_refuses_bad_input(client_for, body):
    assert client_for("carol").post("/api/v1/compare", body, format="json").status_code == 400


@pytest.mark.parametrize("persona", ["lena", "otto", "eve"])
def test_roles_without_clinical_review_may_not_compare(client_for, persona):
    response = client_for(persona).post(
        "/api/v1/compare", {"candidate": "a", "reference": "b"}, format="json"
    )

    assert response.status_code == 403


def test_one_batch_message_compares_each_study_and_one_failure_does_not_stop_the_rest(study, monkeypatch):
    from django.db import OperationalError

    from portal.review import tasks

    real = services.study_compare
    seen: list[int] = []

    def compare(study_id: int):
        seen.append(study_id)
        if study_id == -1:
            raise ValueError("a study that cannot be compared")
        return real(study_id)

    monkeypatch.setattr(services, "study_compare", compare)
    with pytest.raises(ValueError):
        tasks.compare_studies.run([-1, study.pk])
    assert seen == [-1, study.pk]  # the bad one first, the good one still compared
    assert Comparison.objects.filter(study=study).count() == 1
    assert tasks.compare_studies.run([study.pk, study.pk]) == 2  # idempotent: still one comparison
    assert Comparison.objects.filter(study=study).count() == 1

    def down(study_id: int):
        raise OperationalError("database restarting")

    monkeypatch.setattr(services, "study_compare", down)
    with pytest.raises(OperationalError):  # transient: the whole batch is retried by Celery
        tasks.compare_studies.run([study.pk])
