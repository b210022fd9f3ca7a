"""The re-inference reaper: hands chunks whose lease expired back to the queue.

Run by Celery beat every minute, and on demand by ``reinfer --wait``: the broker-less transport
delivers at most once, so a killed worker's message is gone and only the reaper re-sends its chunk.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from inference.models import (
    ACTIVE_RUN_STATUSES,
    ChunkStatus,
    ReinferenceChunk,
    ReinferenceRun,
)
from inference.reinference.runs import complete_if_finished, dispatch, lease_seconds

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Reaped:
    """What one reaper pass did."""

    expired: int
    redispatched: int
    skipped: int
    completed: int


def reinference_reap(*, now: Any = None, redispatch_after: int | None = None) -> Reaped:
    """Hand expired leases back and re-send chunks whose message was lost; close runs with nothing left.

    A chunk whose lease expired (its worker died or hung) returns to ``pending`` and is re-sent. A
    pending chunk of a stalled run (no live lease, nothing started for ``redispatch_after`` seconds,
    default the lease time) is re-sent too: the file-system transport loses the messages a killed
    worker had taken. Re-sending is safe: a chunk is claimed by compare-and-set and closed once.
    """
    now = now or timezone.now()
    redispatch_after = lease_seconds() if redispatch_after is None else redispatch_after
    to_send: list[int] = []
    with transaction.atomic():
        skipped = (
            ReinferenceChunk.objects.filter(status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING])
            .exclude(run__status__in=ACTIVE_RUN_STATUSES)
            .filter(Q(status=ChunkStatus.PENDING) | Q(lease_expires_at__lt=now))
        )
        skipped_count = ReinferenceChunk.objects.filter(
            pk__in=list(skipped.values_list("pk", flat=True))
        ).update(status=ChunkStatus.SKIPPED, lease_owner="", lease_expires_at=None, finished_at=now)
        expired = ReinferenceChunk.objects.filter(
            status=ChunkStatus.RUNNING, lease_expires_at__lt=now, run__status__in=ACTIVE_RUN_STATUSES
        ).values_list("pk", "lease_owner")
        expired_count = 0
        for pk, owner in list(expired):
            if ReinferenceChunk.objects.filter(
                pk=pk, status=ChunkStatus.RUNNING, lease_owner=owner, lease_expires_at__lt=now
            ).update(status=ChunkStatus.PENDING, lease_owner="", dispatched_at=now):  # last lease kept
                logger.warning("re-inference chunk %s: lease of %s expired; handed back", pk, owner)
                to_send.append(pk)
                expired_count += 1
        stale = now - timedelta(seconds=redispatch_after)
        live = ReinferenceChunk.objects.filter(status=ChunkStatus.RUNNING, lease_expires_at__gte=now)
        stalled_runs = (
            ReinferenceRun.objects.filter(status__in=ACTIVE_RUN_STATUSES, chunks__status=ChunkStatus.PENDING)
            .exclude(pk__in=live.values("run_id"))
            .exclude(chunks__started_at__gte=stale)
            .values_list("pk", flat=True)
            .distinct()
        )
        resend = ReinferenceChunk.objects.filter(
            run_id__in=list(stalled_runs), status=ChunkStatus.PENDING, dispatched_at__lte=stale
        ).exclude(pk__in=to_send)
        resend_ids = list(resend.values_list("pk", flat=True))
        ReinferenceChunk.objects.filter(pk__in=resend_ids).update(dispatched_at=now)
        to_send += resend_ids
        completed = 0
        for run_id in ReinferenceRun.objects.filter(status__in=ACTIVE_RUN_STATUSES).values_list(
            "pk", flat=True
        ):
            completed += complete_if_finished(run_id, now)
        dispatch(to_send)
    return Reaped(
        expired=expired_count, redispatched=len(resend_ids), skipped=skipped_count, completed=completed
    )
