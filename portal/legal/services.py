"""Workflows of legal holds and the retention purge they restrain (export packages: :mod:`.export_jobs`).

Every change is audited in the same transaction (``audit.log.record``). Audit details carry the matter
reference, the scope and record ids only: never the free-text reason, which may quote clinical facts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit import immutability
from audit import log as audit
from inference.models import ReinferenceResult
from portal.core.errors import InvalidRecord, RecordConflict
from portal.core.validators import require_text
from portal.legal.holds import holds_covering
from portal.legal.models import HoldScope, LegalHold
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


@transaction.atomic
def legal_hold_place(  # one keyword per scope field, as the API receives them
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
    require_text(matter_reference, "matter_reference", "A matter reference")
    require_text(reason, "reason", "A reason")
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
    require_text(reason, "reason", "A release reason")
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
