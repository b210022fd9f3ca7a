""" "Verify now": a verification an auditor asks for, followed from the request to its stored result.

The page calls :func:`request_verification` (a queued :class:`VerificationJob`, the worker task
enqueued once the row is committed); the worker calls :func:`run_job`, which records progress as the
events are recomputed so the page can show it while it polls, then links the stored result.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from audit.models import VerificationJob, VerificationJobState, VerificationOrigin
from audit.verify import verify_and_store

#: Seconds between two progress writes: often enough for a bar, rare enough to cost nothing.
PROGRESS_EVERY_S = 0.5
#: A queued or running job not touched for this long is shown as stalled (its worker died).
STALLED_AFTER_S = 600


def request_verification(
    *, requested_by: str, enqueue: Callable[[int], object], full: bool = True
) -> VerificationJob:
    """Create a queued job and hand its id to ``enqueue`` once the row is committed.

    A job already queued or running is returned instead of a second one: pressing the button twice
    must not verify the log twice.
    """
    with transaction.atomic():
        pending = (
            VerificationJob.objects.select_for_update()
            .filter(state__in=[VerificationJobState.QUEUED, VerificationJobState.RUNNING])
            .order_by("-requested_at")
            .first()
        )
        if pending is not None and not is_stalled(pending):
            return pending
        job = VerificationJob.objects.create(requested_by=requested_by[:150], full=full)
        transaction.on_commit(lambda: enqueue(job.pk))
    return job


def is_stalled(job: VerificationJob) -> bool:
    """An unfinished job whose worker has not reported for :data:`STALLED_AFTER_S`."""
    return not job.finished and (timezone.now() - job.updated_at).total_seconds() > STALLED_AFTER_S


def run_job(job_id: int) -> bool | None:
    """Run the verification of job ``job_id`` and store its result; idempotent (a redelivered task
    finds the job finished and does nothing). The verdict, or None when it could not run."""
    claimed = VerificationJob.objects.filter(
        pk=job_id, state__in=[VerificationJobState.QUEUED, VerificationJobState.RUNNING]
    ).update(state=VerificationJobState.RUNNING, updated_at=timezone.now())
    if not claimed:
        return None
    job = VerificationJob.objects.get(pk=job_id)
    try:
        verdict, run = verify_and_store(
            full=job.full,
            origin=VerificationOrigin.AUDITOR,
            requested_by=job.requested_by,
            progress=_progress_writer(job_id),
        )
    except (FileNotFoundError, PermissionError, ValueError) as exc:
        # The signing key cannot be read: nothing can be vouched for, which is not a failed log.
        _finish(job_id, state=VerificationJobState.FAILED, error=f"cannot verify: {exc}")
        return None
    except Exception as exc:
        _finish(
            job_id, state=VerificationJobState.FAILED, error=f"the verification stopped: {type(exc).__name__}"
        )
        raise
    _finish(job_id, state=VerificationJobState.DONE, run=run, events_done=verdict.tree_size)
    return verdict.ok


def _finish(job_id: int, **fields: object) -> None:
    VerificationJob.objects.filter(pk=job_id).update(updated_at=timezone.now(), **fields)


def _progress_writer(job_id: int) -> Callable[[int, int], None]:
    """A progress callback that writes (done, total) at most every :data:`PROGRESS_EVERY_S`."""
    last = [0.0]

    def write(done: int, total: int) -> None:
        now = time.monotonic()
        if done and done < total and now - last[0] < PROGRESS_EVERY_S:
            return
        last[0] = now
        VerificationJob.objects.filter(pk=job_id).update(
            events_done=min(done, total), events_total=total, updated_at=timezone.now()
        )

    return write
