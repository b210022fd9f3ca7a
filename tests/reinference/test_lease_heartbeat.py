"""Chunk leases renewed by a heartbeat: a slow live worker keeps its chunk, a dead one loses it in seconds.

Real processes and the real database: the heartbeat thread renews through its own connection; the
prefork test SIGKILLs the pool process that holds a lease (the worker itself lives on) and runs the
reaper as beat does, every REINFERENCE_REAP_SECONDS, with the shipped 30-second lease.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import time

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count

from audit.log import SYSTEM
from inference import selectors
from inference.models import ChunkStatus, ReinferenceChunk, ReinferenceResult, RunStatus
from inference.reinference import chunks, reaper, runs
from inference.reinference.cohort import CohortFilter
from inference.reinference.lease import chunk_heartbeat, chunk_lease_renew
from portal.celery import app
from portal.core.leases import LeaseHeartbeat, renew_interval
from portal.core.workers import database_url, start_worker

pytestmark = [pytest.mark.django_db(transaction=True)]


def _run(make_cohort, version, studies: int, chunk_size: int):
    make_cohort(studies, version)
    return runs.reinference_run_create(
        model_version=version, cohort=CohortFilter(), chunk_size=chunk_size, actor=None, context=SYSTEM
    )


def test_a_slow_live_worker_keeps_its_chunk_and_a_silent_one_loses_it_within_the_lease(
    make_cohort, tiny_model_version, settings
):
    settings.REINFERENCE_LEASE_SECONDS = 2
    run = _run(make_cohort, tiny_model_version, 2, 2)
    chunk = run.chunks.get()
    assert chunks._claim(chunk.pk, "host:1:1")

    with chunk_heartbeat(chunk_id=chunk.pk, owner="host:1:1", lease_seconds=2) as heartbeat:
        for _ in range(4):  # 4 s of "slow work": twice the lease
            time.sleep(1)
            assert reaper.reinference_reap(redispatch_after=0).expired == 0
    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.RUNNING and chunk.lease_owner == "host:1:1"
    assert heartbeat.renewals >= 5 and not heartbeat.lost

    time.sleep(2.1)  # silent now, as a dead process is: one lease later the chunk is free
    assert reaper.reinference_reap(redispatch_after=0).expired == 1
    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.PENDING and chunk.lease_owner == ""


def test_a_heartbeat_notices_when_its_lease_was_taken_over(make_cohort, tiny_model_version):
    run = _run(make_cohort, tiny_model_version, 2, 2)
    chunk = run.chunks.get()
    assert chunks._claim(chunk.pk, "host:1:1")

    renew = functools.partial(chunk_lease_renew, chunk_id=chunk.pk, owner="host:1:1", lease_seconds=2)
    with LeaseHeartbeat(renew, every=0.1, what="test") as beat:
        ReinferenceChunk.objects.filter(pk=chunk.pk).update(lease_owner="host:2:2")  # reaped and retaken
        deadline = time.monotonic() + 10
        while not beat.lost and time.monotonic() < deadline:
            time.sleep(0.05)
    assert beat.lost


def test_the_renewal_interval_leaves_two_renewals_inside_a_lease(settings):
    settings.LEASE_RENEW_SECONDS = 10
    assert renew_interval(30) == 10
    assert renew_interval(3) == 1
    assert renew_interval(600) == 10


def _pool_pid_holding_a_lease(run) -> int | None:
    owners = ReinferenceChunk.objects.filter(run=run, status=ChunkStatus.RUNNING).values_list(
        "lease_owner", flat=True
    )
    for owner in owners:
        return int(owner.split(":")[1])
    return None


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(400)
def test_a_sigkilled_prefork_child_s_chunk_is_retaken_within_a_minute(make_cohort, tiny_model_version):
    """The shipped timings (30 s lease renewed every 10 s; reaper every 15 s): recovery under 60 s."""
    app.control.purge()
    run = _run(make_cohort, tiny_model_version, 24, 2)
    env = os.environ.copy()
    env["DATABASE_URL"] = database_url(connection.settings_dict)
    for name in ("REINFERENCE_LEASE_SECONDS", "LEASE_RENEW_SECONDS", "REINFERENCE_REAP_SECONDS"):
        env.pop(name, None)  # the defaults of settings.py
    worker = start_worker(env=env, solo=False, concurrency=2, loglevel="WARNING")
    try:
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline:
            victim = _pool_pid_holding_a_lease(run)
            time.sleep(0.01)
        assert victim is not None and victim != worker.pid, "no pool process took a chunk"
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        orphan = ReinferenceChunk.objects.get(run=run, lease_owner__contains=f":{victim}:")

        reap_every = settings.CELERY_BEAT_SCHEDULE["reinference-reap"]["schedule"]
        next_reap = killed_at + reap_every
        notices = set()
        while time.monotonic() - killed_at < 120:
            orphan.refresh_from_db()
            if orphan.status == ChunkStatus.DONE:
                break
            run.refresh_from_db()
            notices.add(selectors.run_progress(run)["liveness"]["notice"])
            if time.monotonic() >= next_reap:
                reaper.reinference_reap()  # what beat sends every REINFERENCE_REAP_SECONDS
                next_reap += reap_every
            time.sleep(0.2)
        recovered = time.monotonic() - killed_at
        print(f"chunk of the SIGKILLed pool process done again {recovered:.1f} s after the kill")  # noqa: T201
        assert orphan.status == ChunkStatus.DONE and orphan.attempts >= 2
        assert recovered < 60
        # While it waited, the progress said so (the API, the page and reinfer --wait read the same).
        assert any(n.startswith("1 chunk lost with their worker at ") for n in notices), notices

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            reaper.reinference_reap()
            run.refresh_from_db()
            if run.status == RunStatus.COMPLETED:
                break
            time.sleep(1)
        assert worker.poll() is None, "the worker itself lived on"
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert run.status == RunStatus.COMPLETED
    counts = ReinferenceResult.objects.filter(run=run).values("study_id").annotate(n=Count("pk"))
    assert len(counts) == 24 and {row["n"] for row in counts} == {1}, "every study exactly once"
