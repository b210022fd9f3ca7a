"""The re-inference pages: run list and launch form, run page with live progress, cancel, results."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from inference.models import ReinferenceRun, RunStatus
from inference.reinference import chunks, runs
from inference.reinference.cohort import CohortFilter
from portal.records.models import ModelVersion

pytestmark = pytest.mark.django_db

RUNS = "/reinference/"
HOSTILE = "<script>alert('x')</script>"


def _launch(client: Client, model_version: ModelVersion, **extra: object):
    data = {"model_version": model_version.pk, "kind": "report_draft", "seed": 0, **extra}
    return client.post(RUNS, data)


def _run(model_version: ModelVersion, actor, **cohort: object) -> ReinferenceRun:
    from audit.log import SYSTEM

    return runs.reinference_run_create(
        model_version=model_version,
        cohort=CohortFilter(**cohort),
        chunk_size=2,
        actor=actor,
        context=SYSTEM,
    )


def _process_all(run: ReinferenceRun) -> None:
    """Play the worker in this process: every chunk through the real service and runtime."""
    for chunk_id in run.chunks.order_by("index").values_list("pk", flat=True):
        chunks.reinference_chunk_process(chunk_id=chunk_id)


# --- Run list and launch form -------------------------------------------------------------------------


def test_the_chair_sees_the_launch_form_with_runnable_versions_only(
    page_for, tiny_model_version, other_version_factory
):
    elsewhere = other_version_factory()

    response = page_for("dana").get(RUNS)

    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="run-form"' in body
    assert f'value="{tiny_model_version.pk}"' in body
    assert f'value="{elsewhere.pk}"' not in body  # it ran elsewhere: nothing here can run it


def test_a_reviewer_sees_runs_but_no_launch_form(page_for, tiny_model_version, make_studies, personas):
    make_studies(2, tiny_model_version)
    run = _run(tiny_model_version, personas["dana"])

    response = page_for("carol").get(RUNS)

    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="run-form"' not in body
    assert f'data-testid="run-link-{run.pk}"' in body
    assert "<progress" in body


def test_the_chair_launches_a_run_and_lands_on_its_page(page_for, tiny_model_version, make_studies):
    make_studies(3, tiny_model_version)

    response = _launch(page_for("dana"), tiny_model_version, chunk_size=2, sample=2)

    run = ReinferenceRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/reinference/{run.pk}/"
    assert run.total == 2 and run.chunk_size == 2 and run.created_by.username == "dana"
    assert run.cohort_filter == {"sample": 2, "seed": 0}
    assert AuditEvent.objects.filter(action="reinference_run.create", object_id=str(run.pk)).exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"modality": HOSTILE}, "DICOM modality code"),
        ({"date_from": "2026-03-01", "date_to": "2026-01-01"}, "date_from must not be after date_to"),
        ({"date_from": "yesterday"}, "Enter a valid date"),
        ({"sample": "0"}, "greater than or equal to 1"),
        ({"sample": "many"}, "Enter a whole number"),
        ({"chunk_size": "5000"}, "less than or equal to 1024"),
        ({"kind": "horoscope"}, "Select a valid choice"),
        ({"specialty": "neuro'; DROP TABLE study;--"}, "Select a valid choice"),
        ({"radiologist": "nobody"}, "unknown radiologist"),
    ],
)
def test_bad_launch_inputs_are_refused_and_nothing_is_written(
    page_for, tiny_model_version, make_studies, extra, message
):
    make_studies(2, tiny_model_version)

    response = _launch(page_for("dana"), tiny_model_version, **extra)

    body = response.content.decode()
    assert response.status_code == 400
    assert message in body
    assert HOSTILE not in body  # echoed back escaped, never as markup
    assert not ReinferenceRun.objects.exists()


def test_an_empty_cohort_is_refused_with_a_clear_message(page_for, tiny_model_version, make_studies):
    make_studies(2, tiny_model_version, modality="CR")

    response = _launch(page_for("dana"), tiny_model_version, modality="CR", date_from="2030-01-01")

    assert response.status_code == 400
    assert "The cohort is empty" in response.content.decode()
    assert not ReinferenceRun.objects.exists()


def test_an_unknown_or_unrunnable_model_is_refused(page_for, tiny_model_version, other_version_factory):
    elsewhere = other_version_factory()
    client = page_for("dana")

    unknown = client.post(RUNS, {"model_version": 987654, "kind": "report_draft"})
    not_runnable = client.post(RUNS, {"model_version": elsewhere.pk, "kind": "report_draft"})
    not_a_number = client.post(RUNS, {"model_version": "1 OR 1=1", "kind": "report_draft"})

    for response in (unknown, not_runnable, not_a_number):
        assert response.status_code == 400
        assert "Select a valid choice" in response.content.decode()
    assert not ReinferenceRun.objects.exists()


@pytest.mark.parametrize("persona", ["carol", "otto", "alice", "lena", "eve"])
def test_only_chairs_and_admins_launch_runs(page_for, tiny_model_version, make_studies, persona):
    make_studies(2, tiny_model_version)

    response = _launch(page_for(persona), tiny_model_version)

    assert response.status_code == 403
    assert not ReinferenceRun.objects.exists()
    assert AuditEvent.objects.filter(action="access.denied", actor_username=persona).exists()


def test_launching_needs_the_csrf_token(personas, tiny_model_version, make_studies):
    make_studies(2, tiny_model_version)
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas["dana"])

    response = _launch(client, tiny_model_version)

    assert response.status_code == 403
    assert not ReinferenceRun.objects.exists()


def test_the_run_list_is_keyset_paginated_and_bounded_in_queries(
    page_for, tiny_model_version, make_studies, personas
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from inference import views

    make_studies(1, tiny_model_version)
    client = page_for("carol")
    client.get(RUNS)  # warm the session
    counts = []
    for batch in (2, views.RUNS_PER_PAGE):
        for _ in range(batch):
            _run(tiny_model_version, personas["dana"])
        with CaptureQueriesContext(connection) as queries:
            first = client.get(RUNS)
        counts.append(len(queries))
    older = re.search(r'href="\?before=(\d+)"', first.content.decode())
    second = client.get(RUNS, {"before": older.group(1)})

    assert counts[0] == counts[1] <= 8  # no query per run
    assert first.content.decode().count('data-testid="run-link-') == views.RUNS_PER_PAGE
    assert second.content.decode().count('data-testid="run-link-') == 2
    assert client.get(RUNS, {"before": "x"}).status_code == 404


# --- Run page, progress, cancel -------------------------------------------------------------------------


def test_an_active_run_polls_its_progress_as_a_background_request(
    page_for, tiny_model_version, make_studies, personas
):
    make_studies(3, tiny_model_version)
    run = _run(tiny_model_version, personas["dana"])

    page = page_for("dana").get(f"/reinference/{run.pk}/").content.decode()
    partial = page_for("carol").get(f"/reinference/{run.pk}/progress").content.decode()

    for body in (page, partial):
        assert f'hx-get="/reinference/{run.pk}/progress"' in body
        assert 'hx-trigger="every 1s"' in body
        assert '"X-Concordance-Background": "1"' in body
        assert f'<progress class="run-bar" max="{run.total}" value="0"' in body
    assert 'data-testid="run-cancel"' in page


def test_a_reviewer_sees_the_run_but_no_cancel_button(page_for, tiny_model_version, make_studies, personas):
    make_studies(2, tiny_model_version)
    run = _run(tiny_model_version, personas["dana"])

    body = page_for("carol").get(f"/reinference/{run.pk}/").content.decode()

    assert 'data-testid="run-progress"' in body
    assert 'data-testid="run-cancel"' not in body


def test_a_finished_run_stops_polling_and_shows_its_results(
    page_for, tiny_model_version, make_studies, personas
):
    make_studies(3, tiny_model_version)
    run = _run(tiny_model_version, personas["dana"])

    _process_all(run)
    run.refresh_from_db()
    client = page_for("carol")
    partial = client.get(f"/reinference/{run.pk}/progress").content.decode()
    page = client.get(f"/reinference/{run.pk}/").content.decode()

    assert run.status == RunStatus.COMPLETED and run.done + run.failed == 3
    assert "hx-trigger" not in partial and 'data-testid="run-finished"' in partial
    assert 'value="3"' in partial and "100.0%" in partial
    assert 'data-testid="run-summary"' in page
    assert 'id="chart-categories"' in page and 'id="chart-radpeer"' in page
    assert "hatch" in page and "orig." in page  # the sides differ by pattern and by label, not colour
    assert 'data-testid="latency-table"' in page and 'data-testid="tokens-per-second"' in page
    assert page.count("ACC-O") >= 3
    assert AuditEvent.objects.filter(
        action="reinference_result.list", actor_username="carol", object_id=str(run.pk)
    ).exists()


def test_results_are_keyset_paginated(page_for, tiny_model_version, make_studies, personas, monkeypatch):
    from inference import views

    monkeypatch.setattr(views, "RESULTS_PER_PAGE", 2)
    make_studies(3, tiny_model_version)
    run = _run(tiny_model_version, personas["dana"])
    _process_all(run)
    client = page_for("dana")

    first = client.get(f"/reinference/{run.pk}/").content.decode()
    after = re.search(r'href="\?after=(\d+)"', first).group(1)
    second = client.get(f"/reinference/{run.pk}/", {"after": after}).content.decode()

    shown = lambda body: set(re.findall(r"<td>(ACC-O\d+)</td>", body))  # noqa: E731
    assert len(shown(first)) == 2 and len(shown(second)) == 1
    assert not shown(first) & shown(second)
    assert client.get(f"/reinference/{run.pk}/", {"after": "-1"}).status_code == 404


def test_the_chair_cancels_a_run_once(page_for, tiny_model_version, make_studies, personas):
    make_studies(2, tiny_model_version)
    run = _run(tiny_model_version, personas["dana"])
    client = page_for("dana")

    first = client.post(f"/reinference/{run.pk}/cancel", follow=True)
    second = client.post(f"/reinference/{run.pk}/cancel", follow=True)

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert "cancelled" in first.content.decode()
    assert "already ended" in second.content.decode()
    assert AuditEvent.objects.filter(action="reinference_run.cancel", object_id=str(run.pk)).count() == 1


def test_a_reviewer_cannot_cancel(page_for, tiny_model_version, make_studies, personas):
    make_studies(2, tiny_model_version)
    run = _run(tiny_model_version, personas["dana"])

    response = page_for("carol").post(f"/reinference/{run.pk}/cancel")

    run.refresh_from_db()
    assert response.status_code == 403 and run.status == RunStatus.QUEUED


def test_unknown_runs_are_404_and_other_roles_403(page_for):
    assert page_for("dana").get("/reinference/987654/").status_code == 404
    assert page_for("dana").get("/reinference/987654/progress").status_code == 404
    assert page_for("alice").get(RUNS).status_code == 403
    assert page_for("lena").get("/reinference/987654/").status_code == 403


def test_the_nav_links_the_pages(page_for):
    body = page_for("dana").get(RUNS).content.decode()

    assert reverse("reinference-runs") == RUNS
    assert 'data-testid="nav-reinference"' in body and 'data-testid="nav-models"' in body


def test_the_chart_labels_every_bar_and_escapes_its_text():
    from portal.core.charts import paired_bar_chart

    svg = str(paired_bar_chart(HOSTILE, [(HOSTILE, 0.25, 1.0)], chart_id="c1"))

    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "new 0.25" in svg and "orig. 1" in svg
    assert 'fill="url(#c1-hatch)"' in svg  # the original's bars differ by pattern, not only by colour
