"""Periodic audit work for Celery beat: integration, signed checkpoints and verification."""

from celery import shared_task

from audit import integrator, verification_jobs
from audit.checkpoints import create_checkpoint
from audit.models import VerificationOrigin
from audit.verify import verify_and_store


@shared_task(acks_late=True, ignore_result=True)
def integrate_log() -> int:
    """Add every committed event to the Merkle tree (idempotent; skips while another pass runs)."""
    return integrator.integrate_all(max_seconds=50).size


@shared_task(acks_late=True, ignore_result=True)
def write_checkpoint() -> int | None:
    """Integrate, then sign the tree head (idempotent: nothing new, nothing written)."""
    checkpoint = create_checkpoint()
    return checkpoint.tree_size if checkpoint else None


@shared_task(acks_late=True, ignore_result=True)
def verify_log(full: bool = False, job_id: int | None = None) -> bool | None:
    """Verify the log and store the verdict: incrementally from the last verified checkpoint (beat),
    or the auditor's "Verify now" job ``job_id`` (every event, progress recorded for the page)."""
    if job_id is not None:
        return verification_jobs.run_job(job_id)
    verdict, _ = verify_and_store(full=full, origin=VerificationOrigin.SCHEDULE)
    return verdict.ok
