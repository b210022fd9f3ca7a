"""Workflows of legal holds, the retention purge they restrain, and legal export packages.

Every change is audited in the same transaction (``audit.log.record``). Audit details carry the matter
reference, the scope and record ids only: never the free-text reason, which may quote clinical facts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit import immutability
from audit import log as audit
from inference.models import ReinferenceResult
from portal.accounts import roles
from portal.core.enqueue import enqueue_on_commit
from portal.core.errors import InvalidRecord, RecordConflict, RecordError, RecordNotFound
from portal.legal.export import scope as export_scope
from portal.legal.export.builder import build_package
from portal.legal.export.deid import PROFILE as DEID_PROFILE
from portal.legal.export.errors import ExportCancelled, ExportForbidden
from portal.legal.export.lease import build_heartbeat, export_lease
from portal.legal.export.scope import ExportScope
from portal.legal.holds import holds_covering
from portal.legal.models import ExportPackage, ExportStatus, HoldScope, LegalHold
from portal.records.models import AIOutput, GroundTruthLabel, Patient, SignedReport, Study
from portal.review.models import Assignment, Comparison, Discrepancy, DiscrepancyVerdict, Feedback, Review

# The evidence tables whose append-only triggers the purge lifts (and only for its own transaction):
# AI outputs and signed reports, and the committee's reviews and verdicts on them.
PURGED_IMMUTABLE_TABLES = (
    "records_aioutput",
    "records_signedreport",
    "review_review",
    "review_discrepancyverdict",
)
logger = logging.getLogger(__name__)


def _hold_details(hold: LegalHold, study_ids: list[int]) -> dict:
    return {
        "matter_reference": hold.matter_reference,
        "scope": hold.scope,
        "patient_id": hold.patient_id,
        "study_ids": study_ids,
        "date_from": hold.date_from.isoformat() if hold.date_from else None,
        "date_to": hold.date_to.isoformat() if hold.date_to else None,
    }


def _require_text(value: str, field: str, what: str) -> None:
    # Checked here and not only in the serializer: the service is also called from the shell and tests.
    if not value or not value.strip():
        raise InvalidRecord(f"{what} is required.", field=field)


@transaction.atomic
def legal_hold_place(  # noqa: PLR0913 - one keyword per scope field, as the API receives them
    *,
    actor: AbstractBaseUser,
    context: audit.AuditContext,
    matter_reference: str,
    reason: str,
    patient_mrn: str | None = None,
    accession_numbers: list[str] | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> LegalHold:
    """Place a hold on one patient, on listed studies, or on studies acquired in a date range.

    Exactly one scope must be given. Unknown MRNs or accession numbers are refused (a hold on nothing
    would silently preserve nothing). Texts are stored verbatim.
    """
    _require_text(matter_reference, "matter_reference", "A matter reference")
    _require_text(reason, "reason", "A reason")
    given = [
        kind
        for kind, present in (
            (HoldScope.PATIENT, patient_mrn is not None),
            (HoldScope.STUDIES, accession_numbers is not None),
            (HoldScope.DATE_RANGE, date_from is not None or date_to is not None),
        )
        if present
    ]
    if len(given) != 1:
        raise InvalidRecord(
            "Give exactly one scope: patient_mrn, accession_numbers, or date_from and date_to.",
            field="scope",
        )
    scope = given[0]
    hold = LegalHold(
        matter_reference=matter_reference,
        reason=reason,
        scope=scope,
        placed_by=actor,
        placed_at=timezone.now(),
    )
    studies: list[Study] = []
    if scope == HoldScope.PATIENT:
        hold.patient = Patient.objects.filter(mrn=patient_mrn).first()
        if hold.patient is None:
            raise InvalidRecord("No patient has this MRN.", field="patient_mrn")
    elif scope == HoldScope.STUDIES:
        wanted = list(dict.fromkeys(accession_numbers or []))
        if not wanted:
            raise InvalidRecord("List at least one accession number.", field="accession_numbers")
        studies = list(Study.objects.filter(accession_number__in=wanted).order_by("id"))
        missing = sorted(set(wanted) - {s.accession_number for s in studies})
        if missing:
            raise InvalidRecord(
                f"Unknown accession numbers: {', '.join(missing)}.", field="accession_numbers"
            )
    else:
        if date_from is None or date_to is None:
            raise InvalidRecord("A date range needs both date_from and date_to.", field="date_to")
        if date_from > date_to:
            raise InvalidRecord("date_from must not be after date_to.", field="date_to")
        hold.date_from, hold.date_to = date_from, date_to
    hold.save()
    if studies:
        hold.studies.set(studies)
    audit.record(
        "legal_hold.place",
        actor=actor,
        context=context,
        object_type="legal_hold",
        object_id=hold.pk,
        patient_id=hold.patient_id,
        details=_hold_details(hold, [s.pk for s in studies]),
    )
    return hold


@transaction.atomic
def legal_hold_release(
    *, actor: AbstractBaseUser, context: audit.AuditContext, hold: LegalHold, reason: str
) -> LegalHold:
    """Release an active hold, saying why. A hold is released once; a second release is a conflict."""
    _require_text(reason, "reason", "A release reason")
    # Lock the row: two counsel releasing at once must not both succeed.
    locked = LegalHold.objects.select_for_update().get(pk=hold.pk)
    if not locked.is_active:
        raise RecordConflict("This hold was already released.")
    locked.released_by = actor
    locked.released_at = timezone.now()
    locked.release_reason = reason
    locked.save(update_fields=["released_by", "released_at", "release_reason"])
    audit.record(
        "legal_hold.release",
        actor=actor,
        context=context,
        object_type="legal_hold",
        object_id=locked.pk,
        patient_id=locked.patient_id,
        details={"matter_reference": locked.matter_reference, "scope": locked.scope},
    )
    return locked


def holds_blocking(study: Study) -> list[LegalHold]:
    """The active holds that keep ``study`` from the purge (coverage: :mod:`portal.legal.holds`)."""
    return list(LegalHold.objects.filter(pk__in=holds_covering([study])[study.pk]).order_by("id"))


# --- Retention purge -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PurgeOutcome:
    """What the purge did (or, in a dry run, would do) with one study."""

    study_id: int
    kept_by: list[LegalHold]
    deleted: dict[str, int]
    patient_deleted: bool

    @property
    def kept(self) -> bool:
        """True when a hold kept the study."""
        return bool(self.kept_by)


def studies_due(before: dt.date) -> QuerySet[Study]:
    """Studies acquired before the start of ``before`` (portal time zone); undated studies are kept."""
    cutoff = timezone.make_aware(dt.datetime.combine(before, dt.time.min))
    return Study.objects.filter(study_datetime__lt=cutoff).order_by("id")


def _study_rows(study: Study) -> dict[str, QuerySet]:
    """The querysets that hold a study's records, in the order they must be deleted (PROTECT FKs).

    The committee's work on the study's cases (assignments, reviews, verdicts, feedback) protects the
    cases, so it goes first; re-inference results would cascade from the study's drafts and reports,
    and are listed so that the purge's audit event counts them too.
    """
    comparisons = Comparison.objects.filter(study=study)
    return {
        "feedback": Feedback.objects.filter(comparison__in=comparisons),
        "discrepancy_verdicts": DiscrepancyVerdict.objects.filter(review__comparison__in=comparisons),
        "reviews": Review.objects.filter(comparison__in=comparisons),
        "assignments": Assignment.objects.filter(comparison__in=comparisons),
        "discrepancies": Discrepancy.objects.filter(comparison__in=comparisons),
        "comparisons": comparisons,
        "reinference_results": ReinferenceResult.objects.filter(study=study),
        "ground_truth_labels": GroundTruthLabel.objects.filter(study=study),
        "signed_reports": SignedReport.objects.filter(study=study),
        "ai_outputs": AIOutput.objects.filter(study=study),
    }


def _delete_reviews(reviews: QuerySet[Review]) -> int:
    """Delete a study's reviews, corrections first: each correction PROTECTs the review it supersedes."""
    deleted = 0
    while True:
        leaves = reviews.filter(superseded_by__isnull=True)
        count, _ = Review.objects.filter(pk__in=list(leaves.values_list("pk", flat=True))).delete()
        deleted += count
        if not count:
            return deleted


def _delete_reports(reports: QuerySet[SignedReport]) -> int:
    """Delete a study's reports leaves first: each amendment PROTECTs the report it amends."""
    deleted = 0
    while True:
        leaves = reports.filter(amendments__isnull=True)
        count, _ = SignedReport.objects.filter(pk__in=list(leaves.values_list("pk", flat=True))).delete()
        deleted += count
        if not count:
            return deleted


def study_purge(*, study: Study, dry_run: bool, actor: AbstractBaseUser | None = None) -> PurgeOutcome:
    """Delete one study's records unless a hold covers it, in one transaction with its audit event.

    Lifts the immutability triggers of AI outputs, signed reports, reviews and verdicts for this
    transaction only; on
    PostgreSQL that needs the tables' owner, and dropping a trigger locks the table until commit, so
    the transaction is kept to one study. The audit trail itself is never purged.
    """
    with transaction.atomic():
        # Lock the study so a hold placed concurrently on it waits, then re-check the holds.
        study = Study.objects.select_for_update().get(pk=study.pk)
        study_id, patient_id = study.pk, study.patient_id  # delete() clears study.pk
        holds = holds_blocking(study)
        rows = _study_rows(study)
        counts = {name: qs.count() for name, qs in rows.items()}
        siblings = Study.objects.filter(patient_id=patient_id).exclude(pk=study_id).exists()
        # A patient named by any hold, even a released one, stays: the hold's record must keep meaning.
        named = LegalHold.objects.filter(patient_id=patient_id).exists()
        patient_goes = not siblings and not named
        if holds or dry_run:
            return PurgeOutcome(study_id, holds, {**counts, "studies": 1}, patient_goes and not holds)
        with immutability.suspended(connection, PURGED_IMMUTABLE_TABLES):
            rows["feedback"].delete()
            rows["discrepancy_verdicts"].delete()
            _delete_reviews(rows["reviews"])
            rows["assignments"].delete()
            rows["discrepancies"].delete()
            rows["comparisons"].delete()
            rows["reinference_results"].delete()
            rows["ground_truth_labels"].delete()
            _delete_reports(rows["signed_reports"])
            rows["ai_outputs"].delete()
            # Released study-list holds still name it; their place event keeps the ids for the record.
            study.legal_holds.clear()
            study.delete()
            if patient_goes:
                Patient.objects.filter(pk=patient_id).delete()
        audit.record(
            "retention.purge",
            actor=actor,
            object_type="study",
            object_id=study_id,
            patient_id=patient_id,
            study_id=study_id,
            details={"deleted": {**counts, "studies": 1}, "patient_deleted": patient_goes},
        )
        return PurgeOutcome(study_id, [], {**counts, "studies": 1}, patient_goes)


def retention_purge(*, before: dt.date, dry_run: bool) -> Iterator[PurgeOutcome]:
    """Purge (or, with ``dry_run``, assess) every study acquired before ``before``, one at a time.

    One transaction per study keeps locks short and lets a failure stop the run without undoing the
    studies already purged and audited.
    """
    for study_id in list(studies_due(before).values_list("id", flat=True)):
        study = Study.objects.filter(pk=study_id).first()
        if study is not None:
            yield study_purge(study=study, dry_run=dry_run)


# --- Legal export packages -------------------------------------------------------------------------

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
def export_request(  # noqa: PLR0913 - one keyword per scope criterion, as the API receives them
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
    _require_text(matter_reference, "matter_reference", "A matter reference")
    _require_text(reason, "reason", "A reason")
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
