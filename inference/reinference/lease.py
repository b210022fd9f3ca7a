"""A worker's lease on a re-inference chunk, renewed by a heartbeat while the worker lives.

See :mod:`portal.core.leases`: a process that dies stops renewing, so its chunk is free again one lease
later and the reaper hands it on; a slow process keeps its chunk however long the batch takes.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from inference.models import ChunkStatus, ReinferenceChunk
from portal.core.leases import LeaseHeartbeat, renew_interval


def chunk_lease_renew(*, chunk_id: int, owner: str, lease_seconds: float) -> bool:
    """Extend ``owner``'s lease on a running chunk to a lease from now; False when it is not theirs."""
    until = timezone.now() + timedelta(seconds=lease_seconds)
    running = ReinferenceChunk.objects.filter(pk=chunk_id, status=ChunkStatus.RUNNING, lease_owner=owner)
    return bool(running.update(lease_expires_at=until))


def chunk_heartbeat(*, chunk_id: int, owner: str, lease_seconds: float) -> LeaseHeartbeat:
    """The heartbeat that keeps ``owner``'s lease on a chunk while the ``with`` block runs."""
    return LeaseHeartbeat(
        lambda: chunk_lease_renew(chunk_id=chunk_id, owner=owner, lease_seconds=lease_seconds),
        every=renew_interval(lease_seconds),
        what=f"re-inference chunk {chunk_id}",
    )
