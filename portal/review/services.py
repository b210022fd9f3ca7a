"""Review workflows: turning an AI output and a signed report into stored discrepancies, and the
committee's work on them (assignments, sampling campaigns, RADPEER reviews, feedback, dashboard rollup).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Mapping
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from audit import log as audit
from audit.bulk import record_many
from inference.compare import compare
from portal.accounts import roles
from portal.records.models import AIOutput, AIOutputKind, AIOutputOrigin, SignedReport, Study
from portal.review.errors import CaseNotFound, InvalidReview, ReviewForbidden
from portal.review.models import (
    Assignment,
    CampaignMethod,
    Comparison,
    DailyStat,
    Discrepancy,
    DiscrepancyCategory,
    DiscrepancyVerdict,
    Feedback,
    RadpeerScore,
    Review,
    ReviewStatus,
    SamplingCampaign,
    StatDimension,
    Verdict,
)
from portal.review.selectors import QueueFilters, queue_queryset
from portal.review.signals import assignments_created

MAX_COMMENT_CHARS = 10_000
# A campaign reads its cohort's ids into memory and writes one assignment per pick: both bounded.
MAX_COHORT = 200_000
MAX_SELECTED = 5_000


def reference_report(study: Study) -> SignedReport | None:
    """The signed text a draft is judged against: the latest report in the study's chain."""
    return study.signed_reports.order_by("-signed_at", "-pk").first()


def comparison_create(*, candidate: AIOutput, reference: SignedReport) -> tuple[Comparison, bool]:
    """Compare the two texts and store the result with its discrepancies (idempotent per pair)."""
    existing = Comparison.objects.filter(candidate=candidate, reference=reference).first()
    if existing is not None:
        return existing, False
    result = compare(candidate.text, reference.text)
    significant = sum(1 for d in result.discrepancies if d.significance == "significant")
    try:
        with transaction.atomic():
            study = candidate.study
            comparison = Comparison.objects.create(
                study_id=candidate.study_id,
                candidate=candidate,
                reference=reference,
                study_date=study.study_datetime or study.created_at,
                specialty=study.specialty,
                modality=study.modality,
                model_version_id=candidate.model_version_id,
                radiologist_id=reference.radiologist_id,
                radpeer_suggested=result.radpeer,
                scores=result.scores,
                significant_count=significant,
                minor_count=len(result.discrepancies) - significant,
            )
            Discrepancy.objects.bulk_create(
                [
                    Discrepancy(
                        comparison=comparison,
                        category=d.category,
                        significance=d.significance,
                        finding=d.finding,
                        candidate_text=d.candidate_text or "",
                        reference_text=d.reference_text or "",
                        candidate_start=d.candidate_span[0] if d.candidate_span else None,
                        candidate_end=d.candidate_span[1] if d.candidate_span else None,
                        reference_start=d.reference_span[0] if d.reference_span else None,
                        reference_end=d.reference_span[1] if d.reference_span else None,
                        explanation=d.explanation,
                    )
                    for d in result.discrepancies
                ]
            )
            audit.record(
                "comparison.create",
                actor=None,
                object_type="comparison",
                object_id=comparison.pk,
                patient_id=candidate.study.patient_id,
                study_id=candidate.study_id,
                details={
                    "candidate": candidate.pk,
                    "reference": reference.pk,
                    "radpeer_suggested": result.radpeer,
                    "discrepancies": len(result.discrepancies),
                    "significant": significant,
                },
            )
    except IntegrityError:
        # Another worker stored the same pair first (redelivery or a duplicate task): keep theirs.
        return Comparison.objects.get(candidate=candidate, reference=reference), False
    return comparison, True


def study_compare(study_id: int) -> list[Comparison]:
    """Compare every clinical report draft of the study with its reference report."""
    study = Study.objects.select_related("patient").filter(pk=study_id).first()
    if study is None:
        return []
    reference = reference_report(study)
    if reference is None:
        return []
    drafts = AIOutput.objects.filter(
        study=study, kind=AIOutputKind.REPORT_DRAFT, origin=AIOutputOrigin.CLINICAL
    )
    return [
        comparison_create(candidate=draft, reference=reference)[0] for draft in drafts.select_related("study")
    ]


# --- Adjudication -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VerdictInput:
    """The committee's view of one engine discrepancy (``category`` only when re-categorised)."""

    verdict: str
    category: str = ""


def review_submit(
    *,
    comparison: Comparison,
    reviewer: AbstractBaseUser,
    radpeer: str,
    comment: str,
    verdicts: Mapping[int, VerdictInput],
    feedback_message: str = "",
    supersedes: Review | None = None,
    context: audit.AuditContext,
) -> Review:
    """Store a RADPEER adjudication of a case, with a verdict on every engine discrepancy.

    A reviewer's second opinion on the same case must name the review it corrects (``supersedes``):
    reviews are immutable, corrections are new rows. Optional feedback goes to the radiologist who
    signed the report. Completes the reviewer's assignment of the case.
    """
    if not roles.can_adjudicate(reviewer, radiologist_id=comparison.radiologist_id):
        raise ReviewForbidden("This account may not score this case.")
    if radpeer not in RadpeerScore.values:
        raise InvalidReview("Choose a RADPEER score: 1, 2a, 2b, 3a or 3b.", field="radpeer")
    if len(comment) > MAX_COMMENT_CHARS or len(feedback_message) > MAX_COMMENT_CHARS:
        raise InvalidReview(f"Comments are limited to {MAX_COMMENT_CHARS} characters.", field="comment")
    discrepancy_ids = set(comparison.discrepancies.values_list("pk", flat=True))
    if set(verdicts) != discrepancy_ids:
        raise InvalidReview("Give a verdict on every discrepancy of this case.", field="verdicts")
    for item in verdicts.values():
        if item.verdict not in Verdict.values:
            raise InvalidReview("Unknown verdict.", field="verdicts")
        if (item.verdict == Verdict.RECATEGORISE) != bool(item.category):
            raise InvalidReview("Name the new category exactly when re-categorising.", field="verdicts")
        if item.category and item.category not in DiscrepancyCategory.values:
            raise InvalidReview("Unknown discrepancy category.", field="verdicts")
    if feedback_message.strip() and comparison.radiologist_id is None:
        raise InvalidReview("This case has no signing radiologist to send feedback to.", field="feedback")
    with transaction.atomic():
        # Lock the case: two submissions for it (a double click, two tabs) run one after the other, so
        # the second sees the first and must name it as the review it corrects.
        Comparison.objects.select_for_update().filter(pk=comparison.pk).first()
        latest = Review.objects.filter(
            comparison=comparison, reviewer=reviewer, superseded_by__isnull=True
        ).first()
        if (latest.pk if latest else None) != (supersedes.pk if supersedes else None):
            raise InvalidReview(
                "You already scored this case: submit a correction of your latest review."
                if latest
                else "There is no earlier review of yours to correct.",
                field="supersedes",
            )
        review = Review.objects.create(
            comparison=comparison, reviewer=reviewer, radpeer=radpeer, comment=comment, supersedes=supersedes
        )
        DiscrepancyVerdict.objects.bulk_create(
            [
                DiscrepancyVerdict(review=review, discrepancy_id=pk, verdict=v.verdict, category=v.category)
                for pk, v in sorted(verdicts.items())
            ]
        )
        Assignment.objects.filter(comparison=comparison, reviewer=reviewer, completed_at__isnull=True).update(
            completed_at=timezone.now()
        )
        Comparison.objects.filter(pk=comparison.pk).update(review_status=ReviewStatus.REVIEWED)
        comparison.review_status = ReviewStatus.REVIEWED
        study = comparison.study
        audit.record(
            "review.submit",
            actor=reviewer,
            context=context,
            object_type="review",
            object_id=review.pk,
            patient_id=study.patient_id,
            study_id=study.pk,
            details={
                "comparison": comparison.pk,
                "radpeer": radpeer,
                "supersedes": supersedes.pk if supersedes else None,
                "verdicts": {str(pk): v.verdict for pk, v in sorted(verdicts.items())},
            },
        )
        if feedback_message.strip():
            feedback = Feedback.objects.create(
                review=review,
                comparison=comparison,
                radiologist_id=comparison.radiologist_id,
                message=feedback_message.strip(),
            )
            audit.record(
                "feedback.create",
                actor=reviewer,
                context=context,
                object_type="feedback",
                object_id=feedback.pk,
                patient_id=study.patient_id,
                study_id=study.pk,
                details={"review": review.pk, "radiologist": comparison.radiologist_id},
            )
    return review


def feedback_acknowledge(
    *, feedback_id: int, user: AbstractBaseUser, context: audit.AuditContext
) -> Feedback:
    """The radiologist confirms having read a feedback (idempotent; someone else's is "not found")."""
    with transaction.atomic():
        feedback = (
            Feedback.objects.select_for_update(of=("self",))
            .select_related("comparison__study")
            .filter(pk=feedback_id, radiologist_id=user.pk)
            .first()
        )
        if feedback is None:
            raise CaseNotFound("No such feedback.")
        if feedback.acknowledged_at is not None:
            return feedback
        feedback.acknowledged_at = timezone.now()
        feedback.save(update_fields=["acknowledged_at"])
        study = feedback.comparison.study
        audit.record(
            "feedback.acknowledge",
            actor=user,
            context=context,
            object_type="feedback",
            object_id=feedback.pk,
            patient_id=study.patient_id,
            study_id=study.pk,
        )
    return feedback


# --- Assignment and sampling ------------------------------------------------------------------------


def _check_reviewer(reviewer: AbstractBaseUser) -> None:
    if not roles.can_adjudicate(reviewer):
        raise InvalidReview("Cases can only be assigned to QA reviewers or chairs.", field="reviewer")


def assignments_create(
    *,
    comparison_ids: list[int],
    reviewer: AbstractBaseUser,
    actor: AbstractBaseUser,
    context: audit.AuditContext,
    campaign: SamplingCampaign | None = None,
) -> tuple[int, int]:
    """Give cases to a reviewer; returns (assigned, skipped). Skipped: already theirs, or their own report.

    Runs inside the caller's transaction when there is one (a campaign), else in its own.
    """
    if not roles.can_assign(actor):
        raise ReviewForbidden("This account may not assign cases.")
    _check_reviewer(reviewer)
    if len(comparison_ids) > MAX_SELECTED:
        raise InvalidReview(f"At most {MAX_SELECTED} cases at a time.", field="cases")
    with transaction.atomic():
        cases = list(
            Comparison.objects.filter(pk__in=comparison_ids)
            .exclude(radiologist_id=reviewer.pk)
            .exclude(assignments__reviewer=reviewer)
            .select_related("study")
            .order_by("pk")
        )
        if len(set(comparison_ids)) != Comparison.objects.filter(pk__in=comparison_ids).count():
            raise InvalidReview("Some of these cases do not exist.", field="cases")
        created = Assignment.objects.bulk_create(
            [Assignment(comparison=c, reviewer=reviewer, assigned_by=actor, campaign=campaign) for c in cases]
        )
        assignments_created.send(sender=Assignment, assignments=created)
        Comparison.objects.filter(pk__in=[c.pk for c in cases], review_status=ReviewStatus.UNASSIGNED).update(
            review_status=ReviewStatus.ASSIGNED
        )
        record_many(
            [
                {
                    "action": "assignment.create",
                    "object_type": "comparison",
                    "object_id": c.pk,
                    "patient_id": c.study.patient_id,
                    "study_id": c.study_id,
                    "details": {"reviewer": reviewer.pk, "campaign": campaign.pk if campaign else None},
                }
                for c in cases
            ],
            actor=actor,
            context=context,
        )
    return len(cases), len(set(comparison_ids)) - len(cases)


def campaign_select(
    ids: list[int], *, method: str, percentage: Decimal | None, every_nth: int | None, seed: int
) -> list[int]:
    """The draw itself, a pure function: the same ids (in cohort order) and seed give the same picks."""
    if method == CampaignMethod.RANDOM:
        share = Decimal(percentage or 0) / 100
        count = min(len(ids), max(1, int((share * len(ids)).to_integral_value()))) if ids else 0
        return sorted(random.Random(seed).sample(ids, count))  # noqa: S311 - sampling, not security
    if method == CampaignMethod.EVERY_NTH:
        step = int(every_nth or 0)
        return ids[seed % step :: step]
    return list(ids)


def campaign_create(
    *,
    name: str,
    method: str,
    filters: QueueFilters,
    reviewer: AbstractBaseUser,
    actor: AbstractBaseUser,
    context: audit.AuditContext,
    percentage: Decimal | None = None,
    every_nth: int | None = None,
    seed: int | None = None,
) -> SamplingCampaign:
    """Draw cases from the cohort the filters describe and assign them to ``reviewer``.

    The cohort is ordered by (study date, id); the seed (random when not given, stored either way)
    makes the draw reproducible.
    """
    if not roles.can_assign(actor):
        raise ReviewForbidden("This account may not draw sampling campaigns.")
    _check_reviewer(reviewer)
    if not name.strip() or len(name) > 128:
        raise InvalidReview("Give the campaign a name (at most 128 characters).", field="name")
    if method not in CampaignMethod.values:
        raise InvalidReview("Unknown sampling method.", field="method")
    if method == CampaignMethod.RANDOM and not (percentage is not None and 0 < percentage <= 100):
        raise InvalidReview(
            "A random campaign needs a percentage above 0 and at most 100.", field="percentage"
        )
    if method == CampaignMethod.EVERY_NTH and not (every_nth and every_nth >= 1):
        raise InvalidReview("An every-Nth campaign needs N of at least 1.", field="every_nth")
    # A short seed is easy to note down and type again; the audit log's JSON keeps integers below 2**53.
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    cohort = queue_queryset(filters).exclude(radiologist_id=reviewer.pk).order_by("study_date", "pk")
    ids = list(cohort.values_list("pk", flat=True)[: MAX_COHORT + 1])
    if len(ids) > MAX_COHORT:
        raise InvalidReview(
            f"The cohort has more than {MAX_COHORT} cases: narrow the filters.", field="filters"
        )
    picks = campaign_select(ids, method=method, percentage=percentage, every_nth=every_nth, seed=seed)
    if len(picks) > MAX_SELECTED:
        raise InvalidReview(
            f"This draw selects {len(picks)} cases; at most {MAX_SELECTED} per campaign.", field="filters"
        )
    with transaction.atomic():
        campaign = SamplingCampaign.objects.create(
            name=name.strip(),
            method=method,
            percentage=percentage if method == CampaignMethod.RANDOM else None,
            every_nth=every_nth if method == CampaignMethod.EVERY_NTH else None,
            filters=filters.as_params(),
            seed=seed,
            reviewer=reviewer,
            created_by=actor,
            cohort_size=len(ids),
            selected_count=len(picks),
        )
        audit.record(
            "sampling_campaign.create",
            actor=actor,
            context=context,
            object_type="sampling_campaign",
            object_id=campaign.pk,
            details={
                "method": method,
                "filters": campaign.filters,
                "seed": str(seed),
                "cohort": len(ids),
                "selected": len(picks),
                "reviewer": reviewer.pk,
            },
        )
        assignments_create(
            comparison_ids=picks, reviewer=reviewer, actor=actor, context=context, campaign=campaign
        )
    return campaign


# --- Dashboard rollup ---------------------------------------------------------------------------------

_DIMENSION_COLUMNS = {
    StatDimension.ALL: None,
    StatDimension.SPECIALTY: "specialty",
    StatDimension.MODALITY: "modality",
    StatDimension.MODEL: "model_version_id",
    StatDimension.RADIOLOGIST: "radiologist_id",
}


def daily_stats_refresh() -> int:
    """Recompute the dashboard's daily counts from the cases, studies and AI outputs; returns rows written.

    Derived figures only (no record changes, nothing to audit). Replaced in one transaction, so the
    dashboard never shows half a refresh.
    """
    now = timezone.now()
    cells: dict[tuple[str, str, dt.date], DailyStat] = {}

    def cell(dimension: str, key: object, day: dt.date) -> DailyStat:
        ident = (dimension, "" if key is None else str(key), day)
        if ident not in cells:
            cells[ident] = DailyStat(dimension=dimension, key=ident[1], day=day, refreshed_at=now)
        return cells[ident]

    radpeer_counts = {
        f"radpeer_{score}": Count("pk", filter=Q(radpeer_suggested=score)) for score in RadpeerScore.values
    }
    for dimension, column in _DIMENSION_COLUMNS.items():
        key = F(column) if column else F("radpeer_suggested")  # ignored for "all"
        rows = (
            Comparison.objects.filter(study_date__isnull=False)
            .annotate(day=TruncDate("study_date"), k=key)
            .values("day", *(["k"] if column else []))
            .annotate(
                compared=Count("pk"),
                with_discrepancy=Count("pk", filter=Q(significant_count__gt=0) | Q(minor_count__gt=0)),
                significant=Count("pk", filter=Q(significant_count__gt=0)),
                **radpeer_counts,
            )
        )
        for row in rows:
            target = cell(dimension, row.get("k") if column else None, row["day"])
            for name in ("compared", "with_discrepancy", "significant", *radpeer_counts):
                setattr(target, name, row[name])
    committee_counts = {
        f"committee_{score}": Count("pk", filter=Q(radpeer=score)) for score in RadpeerScore.values
    }
    current = Review.objects.filter(superseded_by__isnull=True, comparison__study_date__isnull=False)
    for dimension, column in _DIMENSION_COLUMNS.items():
        values = ["day", "k"] if column else ["day"]
        rows = (
            current.annotate(
                day=TruncDate("comparison__study_date"), k=F(f"comparison__{column or 'specialty'}")
            )
            .values(*values)
            .annotate(**committee_counts)
        )
        for row in rows:
            target = cell(dimension, row.get("k") if column else None, row["day"])
            for name in committee_counts:
                setattr(target, name, row[name])
    study_day = TruncDate(Coalesce("study_datetime", "created_at"))
    for dimension, column in (
        (StatDimension.ALL, None),
        (StatDimension.SPECIALTY, "specialty"),
        (StatDimension.MODALITY, "modality"),
    ):
        values = ["day", column] if column else ["day"]
        for row in Study.objects.annotate(day=study_day).values(*values).annotate(n=Count("pk")):
            cell(dimension, row.get(column) if column else None, row["day"]).studies = row["n"]
    output_day = TruncDate("generated_at")
    for dimension, column in ((StatDimension.ALL, None), (StatDimension.MODEL, "model_version_id")):
        values = ["day", column] if column else ["day"]
        for row in AIOutput.objects.annotate(day=output_day).values(*values).annotate(n=Count("pk")):
            cell(dimension, row.get(column) if column else None, row["day"]).ai_outputs = row["n"]
    with transaction.atomic():
        DailyStat.objects.all().delete()
        DailyStat.objects.bulk_create(list(cells.values()), batch_size=2000)
    return len(cells)
