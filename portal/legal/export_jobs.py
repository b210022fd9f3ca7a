"""Legal export packages as audited jobs: request, build (the worker's task), cancel, download, reap.

A request is validated and queued in one transaction with its audit event; a worker claims the job,
builds the package with :mod:`portal.legal.export.builder` (heartbeats carry progress and notice a
cancel or a reap), and the finished ZIP with its SHA-256 is kept under ``$CONCORDANCE_VAR_DIR/exports/``.
Audit details carry the matter reference, the scope criteria and record ids only: never the free-text
reason, which may quote clinical facts.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from audit import log as audit
from portal.accounts import roles
from portal.core.enqueue import enqueue_on_commit
from portal.core.errors import InvalidRecord, RecordConflict, RecordError, RecordNotFound
from portal.core.validators import require_text
from portal.legal.export import scope as export_scope
from portal.legal.export.builder import build_package
from portal.legal.export.deid import PROFILE as DEID_PROFILE
from portal.legal.export.errors import ExportCancelled, ExportForbidden
from portal.legal.export.lease import build_heartbeat, export_lease
from portal.legal.export.scope import ExportScope
from portal.legal.models import ExportPackage, ExportStatus

# The evidence tables whose append-only triggers the purge lifts (and only for its own transaction):
# AI outputs and signed reports, and the committee's reviews and verdicts on them.
logger = logging.getLogger(__name__)

EXPORT_TASK = "portal.legal.tasks.build_export_package"
# A queued job whose message may have been lost (broker outage) is re-sent after this long.
STALE_BUILD_AFTER = dt.timedelta(minutes=10)


def exports_dir() -> Path:
    """Where finished packages live: ``$CONCORDANCE_VAR_DIR/exports/`` (never a static or media path)."""
    path = Path(settings.VAR_DIR) / "exports"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _export_details(package: ExportPackage, **extra: object) -> dict:
    # References only: the scope's MRN and accession numbers stay on the job row, not in the log.
    return {
        "package_id": str(package.package_id),
        "matter_reference": package.matter_reference,
        "criteria": sorted(package.scope),
        "deidentified": package.deidentified,
        **extra,
    }


def _enqueue_export(package_pk: int) -> None:
    """After commit, send the export job; a broker outage is caught up by the stale-job reaper."""
    enqueue_on_commit(EXPORT_TASK, [package_pk], catch_up="the stale-job reaper")


@transaction.atomic
def export_request(  # one keyword per scope criterion, as the API receives them
    *,
    actor: AbstractBaseUser | None,
    context: audit.AuditContext,
    matter_reference: str,
    reason: str,
    patient_mrn: str | None = None,
    accession_numbers: list[str] | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    model: str | None = None,
    deidentify: bool = False,
    enqueue: bool = True,
) -> ExportPackage:
    """Queue a legal export package for the given scope (see ``portal.legal.export.scope``).

    ``actor`` None is the command line (the operator's shell). A scope that is empty, unknown or
    matches no study is refused before any row is written, as is a scope with studies the actor may
    not read. Texts are stored verbatim.
    """
    if actor is not None and not roles.can_export_packages(actor):
        raise ExportForbidden("This account may not export legal packages.")
    require_text(matter_reference, "matter_reference", "A matter reference")
    require_text(reason, "reason", "A reason")
    scope = ExportScope(
        patient_mrn=patient_mrn,
        accession_numbers=tuple(accession_numbers or ()),
        date_from=date_from,
        date_to=date_to,
        model=model,
    )
    studies = export_scope.resolve(scope)
    count = studies.count()
    if count == 0:
        raise InvalidRecord("The scope matches no study.", field="scope")
    if actor is not None and roles.visible_studies(actor, studies).count() != count:
        raise ExportForbidden("The scope includes studies this account may not read.")
    package = ExportPackage.objects.create(
        package_id=uuid.uuid4(),
        scope=scope.to_json(),
        matter_reference=matter_reference,
        reason=reason,
        requested_by=actor,
        requested_at=timezone.now(),
        progress_total=count,
        deidentified=deidentify,
        deid_profile=DEID_PROFILE if deidentify else "",
    )
    audit.record(
        "export.request",
        actor=actor,
        context=context,
        object_type="export_package",
        object_id=package.pk,
        details=_export_details(package, studies=count),
    )
    if enqueue:
        _enqueue_export(package.pk)
    return package


def _claim(package_pk: int) -> ExportPackage | None:
    """Move a queued job to building (audited); None when it is not queued (idempotent re-delivery)."""
    with transaction.atomic():
        package = ExportPackage.objects.select_for_update().filter(pk=package_pk).first()
        if package is None or package.status != ExportStatus.QUEUED:
            return None
        now = timezone.now()
        package.status = ExportStatus.BUILDING
        package.attempts += 1
        package.started_at = package.started_at or now
        package.heartbeat_at = now
        package.progress_done = 0
        package.save(update_fields=["status", "attempts", "started_at", "heartbeat_at", "progress_done"])
        audit.record(
            "export.build_start",
            actor=None,
            object_type="export_package",
            object_id=package.pk,
            details=_export_details(package, attempt=package.attempts),
        )
    return package


def _heartbeat(package_pk: int) -> Callable[[int, int], None]:
    def beat(done: int, total: int) -> None:
        # Conditional update: if the job was cancelled or reaped meanwhile, no row matches and we stop.
        updated = ExportPackage.objects.filter(pk=package_pk, status=ExportStatus.BUILDING).update(
            progress_done=min(done, total), progress_total=total, heartbeat_at=timezone.now()
        )
        if not updated:
            raise ExportCancelled

    return beat


def export_build(*, package_pk: int, out_path: Path | None = None) -> ExportPackage | None:
    """Build a queued package (the Celery task and the command line call this); idempotent.

    Returns the job in its final state, or None when it was not queued. A cancellation during the
    build leaves the job cancelled; any other failure marks it failed with a message. Either way the
    partial file is deleted, so no incomplete package is ever visible.
    """
    package = _claim(package_pk)
    if package is None:
        return None
    target = out_path or exports_dir() / f"{package.package_id}.zip"
    try:
        with build_heartbeat(package_pk=package.pk):  # the lease lives as long as this process
            result = build_package(package=package, out_path=target, heartbeat=_heartbeat(package.pk))
    except ExportCancelled:
        package.refresh_from_db()
        return package
    except Exception as exc:
        # Type only: exception messages may quote accession numbers or texts, and logs carry no PHI.
        logger.error("export %s failed: %s", package.pk, type(exc).__name__)
        message = exc.message if isinstance(exc, RecordError) else f"Internal error ({type(exc).__name__})."
        return _finish_failed(package.pk, f"The package could not be built: {message}")
    with transaction.atomic():
        locked = ExportPackage.objects.select_for_update().get(pk=package.pk)
        if locked.status != ExportStatus.BUILDING:  # cancelled or reaped after the last heartbeat
            target.unlink(missing_ok=True)
            return locked
        locked.status = ExportStatus.READY
        locked.file_path = str(target)
        locked.sha256 = result.sha256
        locked.size = result.size
        locked.progress_done = locked.progress_total
        locked.finished_at = timezone.now()
        locked.error = ""
        locked.save()
        audit.record(
            "export.build",
            actor=None,
            object_type="export_package",
            object_id=locked.pk,
            details=_export_details(
                locked, sha256=result.sha256, size=result.size, studies=result.studies, events=result.events
            ),
        )
    return locked


def _finish_failed(package_pk: int, message: str) -> ExportPackage:
    with transaction.atomic():
        package = ExportPackage.objects.select_for_update().get(pk=package_pk)
        if package.status == ExportStatus.BUILDING:
            package.status = ExportStatus.FAILED
            package.error = message
            package.finished_at = timezone.now()
            package.save(update_fields=["status", "error", "finished_at"])
            audit.record(
                "export.build_failed",
                actor=None,
                object_type="export_package",
                object_id=package.pk,
                details=_export_details(package, error=message),
            )
    return package


@transaction.atomic
def export_cancel(
    *, actor: AbstractBaseUser | None, context: audit.AuditContext, package: ExportPackage
) -> ExportPackage:
    """Cancel a queued or building job; the builder notices at its next heartbeat and deletes its file."""
    locked = ExportPackage.objects.select_for_update().get(pk=package.pk)
    if locked.is_finished:
        raise RecordConflict(f"This export is already {locked.status}.")
    locked.status = ExportStatus.CANCELLED
    who = actor.get_username() if actor is not None else "the system"
    locked.error = f"Cancelled by {who} before the package was complete; no package was produced."
    locked.finished_at = timezone.now()
    locked.save(update_fields=["status", "error", "finished_at"])
    audit.record(
        "export.cancel",
        actor=actor,
        context=context,
        object_type="export_package",
        object_id=locked.pk,
        details=_export_details(locked),
    )
    return locked


@transaction.atomic
def export_download(
    *, actor: AbstractBaseUser, context: audit.AuditContext, package: ExportPackage
) -> BinaryIO:
    """Open a ready package for streaming, auditing the download; RecordConflict (409) if not ready."""
    if package.status != ExportStatus.READY:
        raise RecordConflict(f"The package is not ready (status: {package.status}).")
    path = Path(package.file_path)
    try:
        handle = path.open("rb")
    except OSError:
        raise RecordNotFound("The package file is no longer available.") from None
    audit.record(
        "export.download",
        actor=actor,
        context=context,
        object_type="export_package",
        object_id=package.pk,
        details=_export_details(package, sha256=package.sha256, size=package.size),
    )
    return handle


def export_reap_stale(*, stale_after: dt.timedelta | None = None) -> list[int]:
    """Requeue (or, after ``MAX_ATTEMPTS``, fail) building jobs whose heartbeat stopped; return their ids.

    Stopped means no heartbeat for ``stale_after`` (default: one lease, see :func:`export_lease`).
    Also re-sends queued jobs whose message may have been lost (queued for ``stale_after``, default
    STALE_BUILD_AFTER). Partial files of a reaped job are deleted; its next attempt writes a new
    temporary name.
    """
    cutoff = timezone.now() - (export_lease() if stale_after is None else stale_after)
    reaped: list[int] = []
    for pk in list(
        ExportPackage.objects.filter(status=ExportStatus.BUILDING, heartbeat_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    ):
        with transaction.atomic():
            package = ExportPackage.objects.select_for_update().get(pk=pk)
            if package.status != ExportStatus.BUILDING or package.heartbeat_at >= cutoff:
                continue
            for leftover in exports_dir().glob(f".{package.package_id}.zip.*.partial"):
                leftover.unlink(missing_ok=True)
            retry = package.attempts < ExportPackage.MAX_ATTEMPTS
            package.status = ExportStatus.QUEUED if retry else ExportStatus.FAILED
            if not retry:
                package.error = (
                    f"The worker building this package stopped {package.attempts} times; "
                    "no package was produced."
                )
                package.finished_at = timezone.now()
            package.save(update_fields=["status", "error", "finished_at"])
            audit.record(
                "export.reap",
                actor=None,
                object_type="export_package",
                object_id=package.pk,
                details=_export_details(package, requeued=retry, attempts=package.attempts),
            )
            if retry:
                _enqueue_export(package.pk)
        reaped.append(pk)
    lost_before = timezone.now() - (STALE_BUILD_AFTER if stale_after is None else stale_after)
    stuck = ExportPackage.objects.filter(status=ExportStatus.QUEUED, requested_at__lt=lost_before)
    for pk in stuck.values_list("pk", flat=True):
        with transaction.atomic():
            _enqueue_export(pk)
    return reaped
