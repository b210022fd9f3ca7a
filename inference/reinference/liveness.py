"""What is really happening to a run's work: chunks lost with their worker, and whether any worker works.

Progress counters alone say nothing while work waits: a chunk whose worker died sits unfinished until
its lease runs out and the reaper hands it on, and with no worker at all nothing moves. This module
reads that from the chunks' leases (see :mod:`inference.reinference.lease`), so the run page, the API
and ``reinfer --wait`` can say it in words and count the wait in the ETA.

A chunk is *lost* while it waits to be taken again: its lease ran out (its worker stopped renewing)
or the reaper handed it back (pending again, its last lease kept as the time it was last heard from).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from inference.models import ChunkStatus, ReinferenceChunk, ReinferenceRun


def _lease() -> dt.timedelta:
    return dt.timedelta(seconds=settings.REINFERENCE_LEASE_SECONDS)


def _reap_interval() -> dt.timedelta:
    return dt.timedelta(seconds=settings.CELERY_BEAT_SCHEDULE["reinference-reap"]["schedule"])


def _clock(moment: dt.datetime) -> str:
    return timezone.localtime(moment).strftime("%H:%M:%S")


@dataclass(frozen=True)
class Liveness:
    """Lost chunks (how many, last heard from, retried from) and the workers' state for one run."""

    lost_chunks: int
    lost_at: dt.datetime | None
    retry_from: dt.datetime | None
    workers: str  # "working", "busy_elsewhere", "none" or "" (the run is not active)
    notice: str

    def wait_seconds(self, now: dt.datetime) -> float:
        """Seconds until the lost work is taken again (0 when it is already queued)."""
        if self.retry_from is None:
            return 0.0
        return max(0.0, (self.retry_from - now).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        """For the API: times as ISO 8601."""
        return {
            "lost_chunks": self.lost_chunks,
            "lost_at": self.lost_at.isoformat() if self.lost_at else None,
            "retry_from": self.retry_from.isoformat() if self.retry_from else None,
            "workers": self.workers,
            "notice": self.notice,
        }


def _lost(run: ReinferenceRun, now: dt.datetime) -> tuple[int, dt.datetime | None, dt.datetime | None]:
    """Lost chunks of ``run``: how many, when their worker was last heard from, when they are retried."""
    expired = Q(status=ChunkStatus.RUNNING, lease_expires_at__lt=now)
    handed_back = Q(status=ChunkStatus.PENDING, attempts__gt=0, lease_expires_at__isnull=False)
    rows = list(
        run.chunks.filter(expired | handed_back).values_list("status", "lease_expires_at", "dispatched_at")
    )
    if not rows:
        return 0, None, None
    lost_at = min(lease for _, lease, _ in rows) - _lease()  # the last renewal: last heard from
    # Handed back: queued again at dispatched_at. Not yet reaped: by the next reaper pass at the latest.
    retries = [
        dispatched if status == ChunkStatus.PENDING else max(now, lease + _reap_interval())
        for status, lease, dispatched in rows
    ]
    return len(rows), lost_at, min((t for t in retries if t is not None), default=None)


def _workers(run: ReinferenceRun, now: dt.datetime) -> str:
    """Whether a worker is taking work: a live lease anywhere, or this run's chunks moved recently."""
    if run.chunks.filter(status=ChunkStatus.RUNNING, lease_expires_at__gte=now).exists():
        return "working"
    recent = run.chunks.aggregate(last=Max("finished_at"), started=Max("started_at"))
    last = max([t for t in (recent["last"], recent["started"], run.created_at) if t])
    if now - last < _lease():
        return "working"
    others = ReinferenceChunk.objects.filter(
        ~Q(run=run), status=ChunkStatus.RUNNING, lease_expires_at__gte=now
    )
    return "busy_elsewhere" if others.exists() else "none"


def run_liveness(run: ReinferenceRun, *, now: dt.datetime | None = None) -> Liveness:
    """What is happening to ``run``'s work now, with one sentence for people (empty when all is well)."""
    now = now or timezone.now()
    if not run.is_active:
        return Liveness(0, None, None, "", "")
    count, lost_at, retry_from = _lost(run, now)
    workers = _workers(run, now)
    sentences = []
    if count:
        heard = f" at {_clock(lost_at)}" if lost_at else ""
        retry = f"; retrying from {_clock(retry_from)}" if retry_from else ""
        sentences.append(f"{count} chunk{'s' if count != 1 else ''} lost with their worker{heard}{retry}")
    if workers == "none":
        sentences.append("no worker is taking work")
    elif workers == "busy_elsewhere":
        sentences.append("waiting for a worker: all are busy with other runs")
    notice = "; ".join(sentences)
    return Liveness(
        count, lost_at, retry_from, workers, notice[:1].upper() + notice[1:] + ("." if notice else "")
    )
