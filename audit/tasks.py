"""Periodic audit work for Celery beat: signed checkpoints and nightly verification."""

from celery import shared_task

from audit.checkpoints import create_checkpoint
from audit.verify import verify_and_store


@shared_task(acks_late=True, ignore_result=True)
def write_checkpoint() -> int | None:
    """Sign the current tree head (idempotent: nothing new, nothing written)."""
    checkpoint = create_checkpoint()
    return checkpoint.tree_size if checkpoint else None


@shared_task(acks_late=True, ignore_result=True)
def verify_log() -> bool:
    """Verify the whole log and store the verdict for the auditor's page."""
    verdict, _ = verify_and_store()
    return verdict.ok
