"""Thin Celery tasks of the review app: ids in, a service call, idempotent, retried on transient errors."""

from celery import shared_task
from django.db import OperationalError

from portal.review import services
from portal.review.selectors import studies_awaiting_comparison

SWEEP_BATCH = 500


@shared_task(
    acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=8
)
def compare_study(study_id: int) -> int:
    """Compare the study's AI drafts with its signed report; returns how many comparisons exist."""
    return len(services.study_compare(study_id))


@shared_task(acks_late=True, ignore_result=True)
def sweep_uncompared() -> int:
    """Re-enqueue studies whose comparison never ran (broker down at commit time, lost message)."""
    ids = studies_awaiting_comparison(limit=SWEEP_BATCH)
    for study_id in ids:
        compare_study.delay(study_id)
    return len(ids)


@shared_task(
    acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3
)
def refresh_review_stats() -> int:
    """Recompute the dashboard's daily figures (idempotent: the rollup is replaced as a whole)."""
    return services.daily_stats_refresh()
