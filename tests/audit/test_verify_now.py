"""'Verify now': the auditor's request becomes a job whose progress and result the page shows in
place (htmx polls a fragment), and the verification the demo runs at start-up is shown as such."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from audit import immutability, tasks, verification_jobs
from audit.models import VerificationJob, VerificationJobState, VerificationRun
from tests.audit.conftest import append_events, integrate_now

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def enqueued(monkeypatch):
    """The job ids handed to the worker (nothing runs until a test runs the task itself)."""
    sent: list[int] = []
    monkeypatch.setattr(tasks.verify_log, "delay", lambda **kwargs: sent.append(kwargs["job_id"]))
    return sent


def test_verify_now_from_htmx_answers_with_a_polling_progress_fragment(
    personas, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _client(personas["otto"]).post("/audit/", **HTMX)

    job = VerificationJob.objects.get()
    html = response.content.decode()
    assert response.status_code == 200 and enqueued == [job.pk]
    assert "Waiting for a worker" in html
    assert f'hx-get="/audit/verifications/{job.pk}"' in html and 'hx-trigger="every 1s"' in html
    assert "<html" not in html  # a fragment, not a page
    assert "HX-Request" in response["Vary"]


def test_the_fragment_shows_progress_then_the_result_and_stops_polling(personas, enqueued):
    append_events(7)
    integrate_now()
    job = verification_jobs.request_verification(requested_by="otto", enqueue=lambda _id: None)
    otto = _client(personas["otto"])
    VerificationJob.objects.filter(pk=job.pk).update(
        state=VerificationJobState.RUNNING, events_done=3, events_total=7
    )

    running = otto.get(f"/audit/verifications/{job.pk}", **HTMX).content.decode()
    assert "3 of 7 events" in running and 'value="42"' in running and "hx-get" in running

    assert tasks.verify_log(full=True, job_id=job.pk) is True
    done = otto.get(f"/audit/verifications/{job.pk}", **HTMX).content.decode()

    job.refresh_from_db()
    assert job.state == VerificationJobState.DONE and job.run is not None and job.percent == 100
    assert job.run.origin == "auditor" and job.run.requested_by == "otto" and job.run.full
    assert "Intact" in done and "audit log intact: 7 events" in done
    assert "hx-get" not in done  # finished: the page stops asking
    # The card and the table of the page follow, swapped out of band.
    assert (
        'id="last-verification-card" hx-swap-oob="true"' in done and "on request by otto" in done
    )
    assert 'id="verification-runs" hx-swap-oob="true"' in done


def test_a_tampered_log_shows_failed_in_place(personas, enqueued):
    append_events(4)
    integrate_now()
    job = verification_jobs.request_verification(requested_by="otto", enqueue=lambda _id: None)
    # Someone with raw SQL access lifts the immutability triggers and rewrites an event.
    with immutability.suspended(connection, ["audit_auditevent"]), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET action = 'forged' WHERE seq = 2")

    assert tasks.verify_log(full=True, job_id=job.pk) is False
    html = _client(personas["otto"]).get(f"/audit/verifications/{job.pk}", **HTMX).content.decode()
    assert "FAILED" in html and "at event 2" in html


def test_progress_is_recorded_while_the_events_are_recomputed(personas, monkeypatch):
    from audit import verify_ranges

    monkeypatch.setattr(verify_ranges, "CHUNK", 5)
    append_events(12)
    integrate_now()
    job = verification_jobs.request_verification(requested_by="otto", enqueue=lambda _id: None)
    seen: list[tuple[int, int]] = []
    writer = verification_jobs._progress_writer(job.pk)
    monkeypatch.setattr(verification_jobs, "PROGRESS_EVERY_S", 0.0)

    def spy(done: int, total: int) -> None:
        seen.append((done, total))
        writer(done, total)

    monkeypatch.setattr(verification_jobs, "_progress_writer", lambda _pk: spy)
    verification_jobs.run_job(job.pk)

    assert seen[0] == (0, 12) and (5, 12) in seen and (10, 12) in seen
    job.refresh_from_db()
    assert job.events_total == 12


def test_a_second_press_while_one_runs_does_not_start_another(
    personas, enqueued, django_capture_on_commit_callbacks
):
    otto = _client(personas["otto"])
    with django_capture_on_commit_callbacks(execute=True):
        otto.post("/audit/", **HTMX)
        otto.post("/audit/", **HTMX)

    assert VerificationJob.objects.count() == 1 and len(enqueued) == 1


def test_a_redelivered_task_does_nothing_once_the_job_finished(personas):
    job = verification_jobs.request_verification(requested_by="otto", enqueue=lambda _id: None)
    tasks.verify_log(full=True, job_id=job.pk)

    assert tasks.verify_log(full=True, job_id=job.pk) is None
    assert VerificationRun.objects.count() == 1


def test_an_unreadable_key_is_cannot_verify_not_failed(personas, settings, tmp_path):
    from audit import checkpoints

    append_events(2)
    checkpoints.create_checkpoint()
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "gone.pem"
    settings.AUDIT_SIGNING_KEY_CREATE = False
    checkpoints._signing_key.cache_clear()
    job = verification_jobs.request_verification(requested_by="otto", enqueue=lambda _id: None)

    assert tasks.verify_log(full=True, job_id=job.pk) is None
    html = _client(personas["otto"]).get(f"/audit/verifications/{job.pk}", **HTMX).content.decode()
    assert "Could not verify" in html and "FAILED" not in html
    job.refresh_from_db()
    assert job.state == VerificationJobState.FAILED and job.run is None


@pytest.mark.parametrize("persona", ["alice", "carol", "ris", "eve"])
def test_other_roles_cannot_follow_a_verification(personas, persona):
    job = verification_jobs.request_verification(requested_by="otto", enqueue=lambda _id: None)

    assert _client(personas[persona]).get(f"/audit/verifications/{job.pk}", **HTMX).status_code == 403


def test_an_unknown_job_is_404_and_a_post_to_it_405(personas):
    otto = _client(personas["otto"])

    assert otto.get("/audit/verifications/999999", **HTMX).status_code == 404
    assert otto.get("/audit/verifications/abc").status_code == 404
    assert otto.post("/audit/verifications/1").status_code == 405


def test_a_done_job_must_point_at_its_result():
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        VerificationJob.objects.create(state=VerificationJobState.DONE)


def test_the_start_up_verification_is_shown_as_such(personas):
    append_events(3)
    integrate_now()
    call_command("verify_audit", origin="startup", verbosity=0)

    html = _client(personas["otto"]).get("/audit/").content.decode()

    assert "Never" not in html
    assert "at start-up" in html and "Intact" in html


def test_the_status_page_varies_on_htmx(personas):
    response = _client(personas["otto"]).get("/audit/")

    assert "HX-Request" in response["Vary"]
