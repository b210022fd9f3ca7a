"""Thin Celery tasks of the legal app: build an export package by id; reap builds whose worker died."""

from celery import shared_task

from portal.legal import export_jobs


@shared_task(acks_late=True, ignore_result=True)
def build_export_package(package_pk: int) -> str | None:
    """Build one queued package (idempotent: a job that is not queued is left alone); its final status."""
    package = export_jobs.export_build(package_pk=package_pk)
    return package.status if package is not None else None


@shared_task(acks_late=True, ignore_result=True)
def reap_stale_exports() -> int:
    """Requeue or fail builds whose heartbeat stopped (worker killed mid-build); how many were reaped."""
    return len(export_jobs.export_reap_stale())
