"""Thin Celery tasks of the review app: ids in, a service call, idempotent, retried on transient errors."""

import logging

from celery import shared_task
from django.db import OperationalError

from portal.review import services
from portal.review.selectors import studies_awaiting_comparison

SWEEP_BATCH = 500

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=8
)
def compare_study(study_id: int) -> int:
    """Compare the study's AI drafts with its signed report; returns how many comparisons exist."""
    return len(services.study_compare(study_id))


@shared_task(
    acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=8
)
def compare_studies(study_ids: list[int]) -> int:
    """Compare several studies (one message for a Bundle's studies); returns how many were compared.

    A transient database error retries the whole batch (each comparison is idempotent). Any other
    failure of one study does not stop the others: it is logged (ids only) and raised at the end, and
    the sweeper sends that study again.
    """
    failed: Exception | None = None
    for study_id in study_ids:
        try:
            services.study_compare(int(study_id))
        except OperationalError:
            raise
        except Exception as error:  # one bad study must not leave the rest of the batch uncompared
            logger.exception("comparison of study %s failed", study_id)
            failed = failed or error
    if failed is not None:
        raise failed
    return len(study_ids)


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
