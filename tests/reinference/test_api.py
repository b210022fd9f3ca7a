"""The re-inference run API: roles, bad requests (nothing written), cancel, results pages, summary."""

from __future__ import annotations

import pytest

from audit.log import SYSTEM
from audit.models import AuditEvent
from inference import runtime
from inference.models import ReinferenceRun
from inference.reinference import chunks, runs
from inference.reinference.cohort import CohortFilter

pytestmark = pytest.mark.django_db

URL = "/api/v1/reinference-runs"
VIEWERS = ["carol", "dana", "otto"]
NON_VIEWERS = ["alice", "lena", "ris", "eve"]
NON_RUNNERS = ["alice", "carol", "lena", "otto", "ris", "eve"]


@pytest.fixture(autouse=True)
def _fresh_sessions():
    runtime.clear_cache()
    yield
    runtime.clear_cache()


@pytest.fixture
def model_ref(tiny_model_version) -> str:
    return f"{tiny_model_version.name}:{tiny_model_version.version}"


@pytest.fixture
def run(client_for, make_cohort, tiny_model_version, model_ref) -> ReinferenceRun:
    """A finished run over 5 studies (chunks processed in process)."""
    make_cohort(5, tiny_model_version)
    response = client_for("dana").post(URL, {"model": model_ref, "chunk_size": 2}, format="json")
    assert response.status_code == 201, response.data
    created = ReinferenceRun.objects.get(pk=response.data["id"])
    for pk in created.chunks.values_list("pk", flat=True):
        chunks.reinference_chunk_process(chunk_id=pk)
    created.refresh_from_db()
    return created


def test_a_qa_chair_creates_a_run(client_for, make_cohort, tiny_model_version, model_ref):
    make_cohort(3, tiny_model_version, specialty="chest", modality="CR")

    response = client_for("dana").post(
        URL,
        {
            "model": model_ref,
            "specialty": "chest",
            "modality": "CR",
            "date_from": "2026-01-01",
            "date_to": "2026-12-31",
            "radiologist": "alice",
            "sample": 2,
            "seed": 42,
        },
        format="json",
    )

    assert response.status_code == 201, response.data
    body = response.data
    assert body["status"] == "queued" and body["total"] == 2 and body["kind"] == "report_draft"
    assert body["model_version"]["name"] == tiny_model_version.name
    assert body["cohort_filter"]["sample"] == 2 and body["cohort_filter"]["seed"] == 42
    assert body["created_by"] == "dana"
    assert body["progress"] == {
        "done": 0,
        "failed": 0,
        "total": 2,
        "remaining": 2,
        "percent": 0.0,
        "elapsed_seconds": None,
        "rate_per_second": None,
        "eta_seconds": None,
        "liveness": {
            "lost_chunks": 0,
            "lost_at": None,
            "retry_from": None,
            "workers": "working",
            "notice": "",
        },
    }
    assert AuditEvent.objects.get(action="reinference_run.create").actor_username == "dana"


@pytest.mark.parametrize("name", NON_RUNNERS)
def test_only_qa_chairs_and_admins_create_or_cancel(
    name, client_for, make_cohort, tiny_model_version, model_ref
):
    make_cohort(1, tiny_model_version)
    client = client_for(name)
    assert client.post(URL, {"model": model_ref}, format="json").status_code == 403
    assert not ReinferenceRun.objects.exists()
    run = runs.reinference_run_create(
        model_version=tiny_model_version,
        cohort=CohortFilter(),
        actor=None,
        context=SYSTEM,
    )
    assert client.post(f"{URL}/{run.pk}/cancel").status_code == 403
    run.refresh_from_db()
    assert run.status == "queued"


def test_an_admin_may_create(client_for, make_cohort, tiny_model_version, model_ref, personas):
    personas["eve"].is_superuser = True
    personas["eve"].save()
    make_cohort(1, tiny_model_version)
    assert client_for("eve").post(URL, {"model": model_ref}, format="json").status_code == 201


@pytest.mark.parametrize("name", VIEWERS)
def test_qa_and_auditors_read_runs(name, client_for, run):
    client = client_for(name)
    listed = client.get(URL)
    assert listed.status_code == 200 and [r["id"] for r in listed.data["results"]] == [run.pk]
    detail = client.get(f"{URL}/{run.pk}")
    assert detail.status_code == 200 and detail.data["status"] == "completed"
    assert detail.data["chunks"]["done"] == 3
    assert client.get(f"{URL}/{run.pk}/summary").status_code == 200
    assert client.get(f"{URL}/{run.pk}/results").status_code == 200


@pytest.mark.parametrize("name", NON_VIEWERS)
def test_other_roles_read_nothing(name, client_for, run):
    client = client_for(name)
    for path in (URL, f"{URL}/{run.pk}", f"{URL}/{run.pk}/summary", f"{URL}/{run.pk}/results"):
        assert client.get(path).status_code == 403, path


def test_anonymous_callers_are_refused(client_for, run):
    assert client_for(None).get(URL).status_code in (401, 403)
    assert client_for(None).post(URL, {"model": "x:1"}, format="json").status_code in (401, 403)


def test_results_are_cursor_paginated_filtered_and_audited(client_for, run):
    client = client_for("carol")
    first = client.get(f"{URL}/{run.pk}/results", {"page_size": 2})
    assert first.status_code == 200 and len(first.data["results"]) == 2
    second = client.get(first.data["next"])
    ids = [r["id"] for r in first.data["results"]] + [r["id"] for r in second.data["results"]]
    assert ids == sorted(ids) and len(set(ids)) == 4
    row = first.data["results"][0]
    assert {
        "text",
        "reproduced",
        "radpeer_suggested",
        "categories",
        "original_radpeer",
        "accession_number",
    } <= set(row)
    ok = client.get(f"{URL}/{run.pk}/results", {"status": "ok", "page_size": 200}).data["results"]
    assert len(ok) == run.done and all(r["status"] == "ok" and r["reproduced"] is True for r in ok)
    assert client.get(f"{URL}/{run.pk}/results", {"status": "bogus"}).status_code == 400
    event = AuditEvent.objects.filter(action="reinference_result.list").first()
    assert event.actor_username == "carol" and event.object_id == str(run.pk)


def test_the_summary_compares_both_sides(client_for, run):
    body = client_for("otto").get(f"{URL}/{run.pk}/summary").data
    assert body["studies_compared"] == run.done
    assert body["reproduction"]["rate"] == 1.0
    assert set(body["new"]["radpeer_suggested"]) >= {"1", "2a", "2b", "3a", "3b"}
    assert (
        body["new"]["significant_per_study_by_category"].keys()
        == body["original"]["significant_per_study_by_category"].keys()
    )
    assert set(body["latency_ms"]["new"]) == {"p50", "p95", "p99"}
    assert body["throughput"]["tokens_per_second"] > 0


def test_cancel_then_cancel_again(client_for, make_cohort, tiny_model_version, model_ref):
    make_cohort(2, tiny_model_version)
    created = client_for("dana").post(URL, {"model": model_ref}, format="json").data
    response = client_for("dana").post(f"{URL}/{created['id']}/cancel")
    assert response.status_code == 200 and response.data["status"] == "cancelled"
    again = client_for("dana").post(f"{URL}/{created['id']}/cancel")
    assert again.status_code == 409 and again.data["error"] == "conflict"
    assert client_for("dana").post(f"{URL}/999999/cancel").status_code == 404
    assert client_for("carol").get(f"{URL}/999999").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "unknown-model:1.0"}, "model"),
        ({"model": "999999"}, "model"),
        ({"model": "no colon here"}, "model"),
        ({"model": "x" * 500}, "model"),
        ({"model": ["a", "b"]}, "model"),
        ({}, "model"),
        ({"model": "@MODEL", "specialty": "cardiology"}, "specialty"),
        ({"model": "@MODEL", "specialty": "<script>alert(1)</script>"}, "specialty"),
        ({"model": "@MODEL", "modality": "CT'; DROP TABLE records_study;--"}, "modality"),
        ({"model": "@MODEL", "date_from": "yesterday"}, "date_from"),
        ({"model": "@MODEL", "date_from": "2026-02-01", "date_to": "2026-01-01"}, "date_from"),
        ({"model": "@MODEL", "sample": 0}, "sample"),
        ({"model": "@MODEL", "sample": "many"}, "sample"),
        ({"model": "@MODEL", "sample": 10**12}, "sample"),
        ({"model": "@MODEL", "seed": -1}, "seed"),
        ({"model": "@MODEL", "radiologist": "<img src=x onerror=alert(1)>"}, "radiologist"),
        ({"model": "@MODEL", "radiologist": "mallory"}, "radiologist"),
        ({"model": "@MODEL", "kind": "poem"}, "kind"),
        ({"model": "@MODEL", "speciality": "chest"}, "speciality"),
        ({"model": "@MODEL", "chunk_size": 0}, "chunk_size"),
        ({"model": "@MODEL", "specialty": "neuro"}, "cohort"),
    ],
)
def test_bad_requests_are_refused_and_write_nothing(
    body, field, client_for, make_cohort, tiny_model_version, model_ref
):
    make_cohort(2, tiny_model_version, specialty="chest")
    if body.get("model") == "@MODEL":
        body = {**body, "model": model_ref}
    before = AuditEvent.objects.count()

    response = client_for("dana").post(URL, body, format="json")

    assert response.status_code == 400, response.data
    assert field in str(response.data)
    assert not ReinferenceRun.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="reinference_run").exists()
    assert AuditEvent.objects.count() == before


def test_an_empty_cohort_says_why(client_for, tiny_model_version, model_ref):
    response = client_for("dana").post(URL, {"model": model_ref}, format="json")
    assert response.status_code == 400
    assert "cohort is empty" in response.data["detail"]


def test_a_model_that_ran_elsewhere_cannot_be_rerun(client_for, make_cohort, other_version):
    make_cohort(2, other_version)
    response = client_for("dana").post(URL, {"model": "vendor-model:9.1"}, format="json")
    assert response.status_code == 400 and "runnable artifacts" in response.data["detail"]


def test_a_body_that_is_not_an_object_is_refused(client_for):
    assert client_for("dana").post(URL, ["model"], format="json").status_code == 400
    assert client_for("dana").post(URL, "model", content_type="text/plain").status_code == 415


def test_the_run_list_filters_by_status(client_for, run):
    assert client_for("carol").get(URL, {"status": "completed"}).data["results"][0]["id"] == run.pk
    assert client_for("carol").get(URL, {"status": "queued"}).data["results"] == []
    assert client_for("carol").get(URL, {"status": "nonsense"}).status_code == 400


def test_the_run_list_has_a_bounded_query_count(
    client_for, run, django_assert_max_num_queries, make_cohort, tiny_model_version
):
    client = client_for("carol")
    for _ in range(3):
        runs.reinference_run_create(
            model_version=tiny_model_version,
            cohort=CohortFilter(),
            actor=None,
            context=SYSTEM,
        )
    client.get(URL)  # warm the token and role caches of this client
    with django_assert_max_num_queries(6):
        response = client.get(URL)
    assert len(response.data["results"]) == 4
