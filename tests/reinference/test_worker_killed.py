"""A worker SIGKILLed while it holds a chunk: the reaper hands the chunk on; nothing lost, nothing twice.

The broker-less file-system transport deletes a message when a worker takes it, so the killed worker's
chunk (and any message it had prefetched) is gone from the queue: only the lease and the reaper bring
them back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from django.db import connection
from django.db.models import Count

from audit.log import SYSTEM
from inference.models import ChunkStatus, ReinferenceChunk, ReinferenceResult, ReinferenceRun
from inference.reinference import reaper, runs
from inference.reinference.cohort import CohortFilter
from portal.celery import app
from portal.core.workers import database_url, start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

LEASE_SECONDS = "3"


def _start_worker() -> subprocess.Popen:
    """A worker started exactly as the shared fixture starts one, with a short lease."""
    env = os.environ.copy()
    env["DATABASE_URL"] = database_url(connection.settings_dict)
    env["REINFERENCE_LEASE_SECONDS"] = LEASE_SECONDS
    return start_worker(env=env)


def _leased_by(run: ReinferenceRun, pid: int):
    return ReinferenceChunk.objects.filter(
        run=run, status=ChunkStatus.RUNNING, lease_owner__contains=f":{pid}:"
    )


def _kill_while_leasing(run: ReinferenceRun) -> bool:
    """Start a worker, SIGKILL it the moment it holds a lease; True when the kill left a chunk leased."""
    worker = _start_worker()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and worker.poll() is None:
            if _leased_by(run, worker.pid).exists():
                os.kill(worker.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=30)
    return _leased_by(run, worker.pid).exists()


def test_a_killed_worker_loses_and_duplicates_nothing(make_cohort, tiny_model_version):
    app.control.purge()
    studies = make_cohort(16, tiny_model_version)
    run = runs.reinference_run_create(
        model_version=tiny_model_version, cohort=CohortFilter(), chunk_size=2, actor=None, context=SYSTEM
    )

    # The kill must land inside a lease; a kill between two chunks proves less, so try again.
    killed_mid_lease = any(_kill_while_leasing(run) for _ in range(3))
    assert killed_mid_lease, "no worker was killed while holding a chunk"
    orphan = ReinferenceChunk.objects.get(run=run, status=ChunkStatus.RUNNING)

    replacement = _start_worker()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            reaper.reinference_reap(redispatch_after=0)
            run.refresh_from_db()
            if run.status == "completed":
                break
            time.sleep(1)
    finally:
        replacement.terminate()
        replacement.wait(timeout=30)

    run.refresh_from_db()
    assert run.status == "completed"
    per_study = dict(
        ReinferenceResult.objects.filter(run=run)
        .values_list("study_id")
        .annotate(n=Count("pk"))
        .values_list("study_id", "n")
    )
    assert per_study == {study.pk: 1 for study in studies}
    assert run.done + run.failed == run.total == 16
    orphan.refresh_from_db()
    assert orphan.status == ChunkStatus.DONE and orphan.attempts >= 2
    assert set(run.chunks.values_list("status", flat=True)) == {ChunkStatus.DONE}
