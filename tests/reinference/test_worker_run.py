"""End to end through a real Celery worker: a run created by the API and one by ``reinfer --wait``."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from inference.models import ReinferenceResult, ReinferenceRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


def _wait_for(predicate, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_a_run_goes_through_a_worker_with_results_and_summary(
    celery_worker_process, client_for, make_cohort, tiny_model_version
):
    studies = make_cohort(7, tiny_model_version)
    model = f"{tiny_model_version.name}:{tiny_model_version.version}"

    created = client_for("dana").post(
        "/api/v1/reinference-runs", {"model": model, "chunk_size": 3}, format="json"
    )
    assert created.status_code == 201, created.data

    run_id = created.data["id"]
    assert _wait_for(lambda: ReinferenceRun.objects.get(pk=run_id).status == "completed"), (
        "the run did not finish"
    )
    run = ReinferenceRun.objects.get(pk=run_id)
    results = ReinferenceResult.objects.filter(run=run)
    assert sorted(results.values_list("study_id", flat=True)) == [s.pk for s in studies]
    assert run.done + run.failed == run.total == 7
    assert set(results.filter(status="ok").values_list("reproduced", flat=True)) == {True}
    summary = client_for("carol").get(f"/api/v1/reinference-runs/{run_id}/summary").data
    assert summary["studies_compared"] == run.done and summary["reproduction"]["rate"] == 1.0
    detail = client_for("carol").get(f"/api/v1/reinference-runs/{run_id}").data
    assert detail["progress"]["remaining"] == 0 and detail["progress"]["rate_per_second"] > 0
    assert AuditEvent.objects.filter(action="reinference_run.complete", object_id=str(run_id)).count() == 1


def test_reinfer_wait_follows_the_run_to_its_summary(celery_worker_process, make_cohort, tiny_model_version):
    make_cohort(4, tiny_model_version, specialty="chest", modality="CR")
    out = io.StringIO()

    call_command(
        "reinfer",
        "--model",
        str(tiny_model_version.pk),
        "--specialty",
        "chest",
        "--modality",
        "CR",
        "--from",
        "2026-01-01",
        "--to",
        "2026-12-31",
        "--chunk-size",
        "2",
        "--wait",
        "--poll",
        "0.5",
        "--timeout",
        "120",
        stdout=out,
    )

    text = out.getvalue()
    assert "4 studies in 2 chunks" in text
    summary = json.loads(text[text.index("{") :])
    assert summary["status"] == "completed"
    assert summary["studies_compared"] + summary["studies_failed"] == 4
