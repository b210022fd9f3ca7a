"""Progress that tells the truth: lost chunks, when they are retried, and runs no worker is taking.

The chunks' real leases drive everything (claimed by the service, handed back by the real reaper);
time moves by passing ``now``, as a page polled later would see it.
"""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from audit.log import SYSTEM
from inference import selectors
from inference.models import ChunkStatus, ReinferenceChunk
from inference.reinference import chunks, reaper, runs
from inference.reinference.cohort import CohortFilter
from inference.reinference.liveness import run_liveness

CLOCK = r"\d\d:\d\d:\d\d"


def _create(version, chunk_size: int = 2):
    return runs.reinference_run_create(
        model_version=version, cohort=CohortFilter(), chunk_size=chunk_size, actor=None, context=SYSTEM
    )


@pytest.fixture
def run(make_cohort, tiny_model_version, settings):
    settings.REINFERENCE_LEASE_SECONDS = 30
    make_cohort(6, tiny_model_version)
    return _create(tiny_model_version)


def _claim_two(run) -> list[ReinferenceChunk]:
    taken = list(run.chunks.order_by("index")[:2])
    for chunk in taken:
        assert chunks._claim(chunk.pk, f"host:{chunk.pk}:1")
    return taken


def test_a_run_in_good_health_says_nothing_more(run):
    _claim_two(run)
    liveness = run_liveness(run, now=timezone.now() + dt.timedelta(seconds=5))

    assert liveness.lost_chunks == 0 and liveness.workers == "working" and liveness.notice == ""


def test_chunks_whose_worker_stopped_renewing_are_reported_lost_before_the_reaper_runs(run, settings):
    _claim_two(run)
    later = timezone.now() + dt.timedelta(seconds=31)  # past the lease: nobody renewed it

    progress = selectors.run_progress(run, now=later)
    notice = progress["liveness"]["notice"]

    assert progress["liveness"]["lost_chunks"] == 2
    expected = rf"2 chunks lost with their worker at {CLOCK}; retrying from {CLOCK}; "
    expected += r"no worker is taking work\."
    assert re.fullmatch(expected, notice), notice
    retry = dt.datetime.fromisoformat(progress["liveness"]["retry_from"])
    reap = settings.CELERY_BEAT_SCHEDULE["reinference-reap"]["schedule"]
    assert later < retry <= later + dt.timedelta(seconds=reap)


def test_after_the_reaper_hands_them_back_they_are_lost_until_retaken(run):
    taken = _claim_two(run)
    later = timezone.now() + dt.timedelta(seconds=31)
    assert reaper.reinference_reap(now=later).expired == 2

    liveness = run_liveness(run, now=later + dt.timedelta(seconds=1))
    assert liveness.lost_chunks == 2
    assert liveness.retry_from == later  # queued again by the reaper at that moment
    assert liveness.notice.startswith("2 chunks lost with their worker at ")

    assert chunks._claim(taken[0].pk, "host:new:1")  # a live worker takes one of them again
    liveness = run_liveness(run, now=timezone.now() + dt.timedelta(seconds=1))
    assert liveness.lost_chunks == 1 and liveness.workers == "working"
    assert liveness.notice.startswith("1 chunk lost with their worker at ")


def test_the_eta_counts_the_wait_for_lost_work(make_cohort, tiny_model_version, settings):
    settings.REINFERENCE_LEASE_SECONDS = 30
    make_cohort(6, tiny_model_version)
    run = _create(tiny_model_version)
    first, second, third = run.chunks.order_by("index")
    chunks.reinference_chunk_process(chunk_id=first.pk)  # 2 studies done
    assert chunks._claim(second.pk, "host:dead:1")
    assert chunks._claim(third.pk, "host:alive:1")
    run.refresh_from_db()
    later = timezone.now() + dt.timedelta(seconds=31)
    # The live worker's heartbeat kept its lease; the dead one's ran out.
    ReinferenceChunk.objects.filter(pk=third.pk).update(lease_expires_at=later + dt.timedelta(seconds=20))

    progress = selectors.run_progress(run, now=later)
    wait = (dt.datetime.fromisoformat(progress["liveness"]["retry_from"]) - later).total_seconds()

    elapsed = (later - run.started_at).total_seconds()
    without_wait = 4 / (2 / elapsed)
    assert wait > 0 and progress["liveness"]["workers"] == "working"
    assert progress["eta_seconds"] == pytest.approx(without_wait + wait, abs=0.2)


def test_with_no_worker_there_is_no_eta(make_cohort, tiny_model_version):
    make_cohort(4, tiny_model_version)
    run = _create(tiny_model_version)
    chunks.reinference_chunk_process(chunk_id=run.chunks.order_by("index").first().pk)
    run.refresh_from_db()

    progress = selectors.run_progress(run, now=run.started_at + dt.timedelta(minutes=5))

    assert progress["liveness"]["workers"] == "none" and progress["eta_seconds"] is None


def test_a_run_no_worker_takes_says_so_within_a_minute(run):
    assert run_liveness(run, now=run.created_at + dt.timedelta(seconds=5)).notice == ""
    liveness = run_liveness(run, now=run.created_at + dt.timedelta(seconds=31))

    assert liveness.workers == "none"
    assert liveness.notice == "No worker is taking work."


def test_a_run_waiting_behind_another_run_s_live_work_says_that_instead(run, make_cohort, tiny_model_version):
    other = _create(tiny_model_version, chunk_size=6)
    later = run.created_at + dt.timedelta(seconds=40)
    ReinferenceChunk.objects.filter(run=other).update(
        status=ChunkStatus.RUNNING, lease_owner="host:9:9", lease_expires_at=later + dt.timedelta(seconds=20)
    )

    liveness = run_liveness(run, now=later)

    assert liveness.workers == "busy_elsewhere"
    assert liveness.notice == "Waiting for a worker: all are busy with other runs."


def test_a_finished_or_cancelled_run_has_no_notice(run, personas):
    run = runs.reinference_run_cancel(run=run, actor=personas["dana"], context=SYSTEM)

    assert run_liveness(run, now=run.created_at + dt.timedelta(hours=1)).notice == ""


def test_the_run_page_and_the_api_say_it(run, personas, client_for):
    _claim_two(run)
    ReinferenceChunk.objects.filter(run=run).update(started_at=timezone.now() - dt.timedelta(minutes=5))
    ReinferenceChunk.objects.filter(run=run, status=ChunkStatus.RUNNING).update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    type(run).objects.filter(pk=run.pk).update(created_at=timezone.now() - dt.timedelta(minutes=5))

    api = client_for("carol").get(f"/api/v1/reinference-runs/{run.pk}").json()
    page = Client()
    page.force_login(personas["carol"])
    partial = page.get(f"/reinference/{run.pk}/progress").content.decode()

    assert api["progress"]["liveness"]["lost_chunks"] == 2
    assert "2 chunks lost with their worker at" in api["progress"]["liveness"]["notice"]
    assert 'data-testid="run-notice"' in partial
    assert "2 chunks lost with their worker at" in partial and "no worker is taking work." in partial


def test_reinfer_wait_prints_it(make_cohort, tiny_model_version, settings):
    settings.REINFERENCE_LEASE_SECONDS = 1
    make_cohort(2, tiny_model_version)
    out = io.StringIO()

    with pytest.raises(CommandError, match="still queued"):
        call_command(
            "reinfer",
            f"--model={tiny_model_version.name}:{tiny_model_version.version}",
            "--wait",
            "--poll=0.5",
            "--timeout=2.5",
            stdout=out,
        )

    assert "No worker is taking work." in out.getvalue()


def test_lists_of_runs_leave_liveness_out_one_run_has_it(run, client_for):
    listed = client_for("carol").get("/api/v1/reinference-runs").json()["results"]
    one = client_for("carol").get(f"/api/v1/reinference-runs/{run.pk}").json()

    assert [item["progress"]["liveness"] for item in listed] == [None]
    assert one["progress"]["liveness"]["workers"] == "working"
