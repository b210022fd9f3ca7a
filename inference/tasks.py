"""Thin Celery tasks of re-inference: ids in, a service call, idempotent, retried on transient errors."""

from celery import shared_task
from django.db import OperationalError

from inference.reinference import chunks, reaper


@shared_task(
    acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=8
)
def reinference_chunk(chunk_id: int) -> str:
    """Claim, generate, compare and store one chunk of a run (a second delivery finds it done)."""
    return chunks.reinference_chunk_process(chunk_id=chunk_id)


@shared_task(acks_late=True, ignore_result=True)
def reap_reinference() -> int:
    """Hand expired chunk leases back and re-send lost chunks; returns how many chunks were re-sent."""
    reaped = reaper.reinference_reap()
    return reaped.expired + reaped.redispatched
