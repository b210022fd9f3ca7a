"""Review workflows: turning an AI output and a signed report into stored discrepancies, and the
committee's work on them (assignments, sampling campaigns, attributed reviews with RADPEER, feedback).
The dashboard's rollup is in :mod:`portal.review.rollup`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import log as audit
from audit.bulk import record_many
from inference.compare import compare
from portal.accounts import roles
from portal.records.models import AIOutput, AIOutputKind, AIOutputOrigin, SignedReport, Study
from portal.review.errors import CaseNotFound, InvalidReview, ReviewForbidden
from portal.review.models import (
    DISCREPANT_SCORES,
    Assignment,
    CampaignMethod,
    Comparison,
    CorrectSide,
    Discrepancy,
    DiscrepancyCategory,
    DiscrepancyVerdict,
    Feedback,
    RadpeerScore,
    Review,
    ReviewStatus,
    SamplingCampaign,
    Verdict,
)
from portal.review.rollup import daily_stats_refresh, refresh_day_of
from portal.review.selectors import QueueFilters, queue_queryset
from portal.review.signals import assignments_created

__all__ = ["daily_stats_refresh"]  # the periodic task and the command call it through services

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
            clinician = reference.clinician
            comparison = Comparison.objects.create(
                study_id=candidate.study_id,
                candidate=candidate,
                reference=reference,
                study_date=study.study_datetime or study.created_at,
                specialty=study.specialty,
                modality=study.modality,
                model_version_id=candidate.model_version_id,
                clinician=clinician,
                # The clinician's current account: a reader linked after signing is still theirs.
                radiologist_id=clinician.account_id or reference.radiologist_id,
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
                        candidate_marks=[list(m) for m in d.candidate_marks],
                        reference_marks=[list(m) for m in d.reference_marks],
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
    """The committee's view of one engine discrepancy.

    ``category`` only when re-categorised. For a real discrepancy (agree or re-categorise),
    ``correct_side`` says who was right against the images and ``carried`` whether the AI's error
    survived into the signed report; a rejected one ("not a discrepancy") has neither.
    """

    verdict: str
    category: str = ""
    correct_side: str = ""
    carried: bool = False

    @property
    def radiologist_erred(self) -> bool:
        """The signed report is wrong here: the draft was right, or the report repeats the AI's error."""
        return self.verdict != Verdict.NOT_A_DISCREPANCY and (
            self.correct_side == CorrectSide.AI_DRAFT or self.carried
        )

    @property
    def ai_erred(self) -> bool:
        """The AI draft is wrong here: the signed report was right, or the error was carried into it."""
        return self.verdict != Verdict.NOT_A_DISCREPANCY and (
            self.correct_side == CorrectSide.SIGNED_REPORT or self.carried
        )


@dataclasses.dataclass(frozen=True)
class Attribution:
    """Who erred in a case, from its verdicts (what the review stores beside the score)."""

    radiologist_erred: bool
    ai_erred: bool
    carried: bool


def _check_verdict(item: VerdictInput) -> None:
    if item.verdict not in Verdict.values:
        raise InvalidReview("Unknown verdict.", field="verdicts")
    if (item.verdict == Verdict.RECATEGORISE) != bool(item.category):
        raise InvalidReview("Name the new category exactly when re-categorising.", field="verdicts")
    if item.category and item.category not in DiscrepancyCategory.values:
        raise InvalidReview("Unknown discrepancy category.", field="verdicts")
    if item.verdict == Verdict.NOT_A_DISCREPANCY:
        if item.correct_side or item.carried:
            raise InvalidReview(
                "A rejected discrepancy has no right side and no carried error.", field="verdicts"
            )
        return
    if item.correct_side not in CorrectSide.values:
        raise InvalidReview(
            "Say who was right against the images for every real discrepancy.", field="verdicts"
        )
    if item.carried and item.correct_side == CorrectSide.BOTH_ACCEPTABLE:
        raise InvalidReview(
            "A difference of wording cannot be an AI error carried into the report.", field="verdicts"
        )


def attribution_of(verdicts: Mapping[int, VerdictInput], radpeer: str) -> Attribution:
    """Check the verdicts and the score together; who erred in the case.

    RADPEER grades the radiologist's interpretation: a discrepant score (2a-3b) exactly when some
    verdict finds the signed report wrong; otherwise "1" (concur) or no score. An error of the AI
    draft alone never gives the radiologist a discrepant score: it counts for the model version.
    """
    for item in verdicts.values():
        _check_verdict(item)
    attribution = Attribution(
        radiologist_erred=any(v.radiologist_erred for v in verdicts.values()),
        ai_erred=any(v.ai_erred for v in verdicts.values()),
        carried=any(v.carried and v.verdict != Verdict.NOT_A_DISCREPANCY for v in verdicts.values()),
    )
    if attribution.radiologist_erred and radpeer not in DISCREPANT_SCORES:
        raise InvalidReview("The signed report erred: score it 2a, 2b, 3a or 3b.", field="radpeer")
    if not attribution.radiologist_erred and radpeer not in ("", "1"):
        raise InvalidReview(
            "RADPEER scores the radiologist's report, and no verdict finds it wrong: choose 1 (concur) "
            "or leave it unscored. Errors of the AI draft count for the model.",
            field="radpeer",
        )
    return attribution


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
    """Store the committee's adjudication of a case: a verdict with attribution on every engine
    discrepancy and, where the radiologist's report is judged, a RADPEER score.

    A reviewer's second opinion on the same case must name the review it corrects (``supersedes``):
    reviews are immutable, corrections are new rows. Optional feedback goes to the radiologist who
    signed the report. Completes the reviewer's assignment of the case. Once committed, the case's
    day of the rollup is recomputed, so every figure shows the review at once.
    """
    if not roles.can_adjudicate(reviewer, radiologist_id=comparison.radiologist_id):
        raise ReviewForbidden("This account may not score this case.")
    if radpeer not in ("", *RadpeerScore.values):
        raise InvalidReview("Choose a RADPEER score: 1, 2a, 2b, 3a or 3b, or none.", field="radpeer")
    if len(comment) > MAX_COMMENT_CHARS or len(feedback_message) > MAX_COMMENT_CHARS:
        raise InvalidReview(f"Comments are limited to {MAX_COMMENT_CHARS} characters.", field="comment")
    discrepancy_ids = set(comparison.discrepancies.values_list("pk", flat=True))
    if set(verdicts) != discrepancy_ids:
        raise InvalidReview("Give a verdict on every discrepancy of this case.", field="verdicts")
    attribution = attribution_of(verdicts, radpeer)
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
        review = _review_store(comparison, reviewer, radpeer, comment, verdicts, attribution, supersedes)
        _review_audit(review, verdicts, context)
        if feedback_message.strip():
            _feedback_create(review, feedback_message.strip(), context)
        comparison_id = comparison.pk
        transaction.on_commit(lambda: refresh_day_of(comparison_id))
    return review


def _review_store(  # noqa: PLR0913 - the parts of one review, checked by the caller
    comparison: Comparison,
    reviewer: AbstractBaseUser,
    radpeer: str,
    comment: str,
    verdicts: Mapping[int, VerdictInput],
    attribution: Attribution,
    supersedes: Review | None,
) -> Review:
    review = Review.objects.create(
        comparison=comparison,
        reviewer=reviewer,
        radpeer=radpeer,
        comment=comment,
        supersedes=supersedes,
        radiologist_erred=attribution.radiologist_erred,
        ai_erred=attribution.ai_erred,
        carried_ai_error=attribution.carried,
    )
    DiscrepancyVerdict.objects.bulk_create(
        [
            DiscrepancyVerdict(
                review=review,
                discrepancy_id=pk,
                verdict=v.verdict,
                category=v.category,
                correct_side=v.correct_side if v.verdict != Verdict.NOT_A_DISCREPANCY else "",
                carried_into_report=v.carried and v.verdict != Verdict.NOT_A_DISCREPANCY,
            )
            for pk, v in sorted(verdicts.items())
        ]
    )
    Assignment.objects.filter(comparison=comparison, reviewer=reviewer, completed_at__isnull=True).update(
        completed_at=timezone.now()
    )
    Comparison.objects.filter(pk=comparison.pk).update(review_status=ReviewStatus.REVIEWED)
    comparison.review_status = ReviewStatus.REVIEWED
    return review


def _review_audit(review: Review, verdicts: Mapping[int, VerdictInput], context: audit.AuditContext) -> None:
    comparison = review.comparison
    audit.record(
        "review.submit",
        actor=review.reviewer,
        context=context,
        object_type="review",
        object_id=review.pk,
        patient_id=comparison.study.patient_id,
        study_id=comparison.study_id,
        details={
            "comparison": comparison.pk,
            "radpeer": review.radpeer,
            "radiologist_erred": review.radiologist_erred,
            "ai_erred": review.ai_erred,
            "carried_ai_error": review.carried_ai_error,
            "supersedes": review.supersedes_id,
            "verdicts": {
                str(pk): {
                    "verdict": v.verdict,
                    "category": v.category,
                    "correct_side": v.correct_side,
                    "carried": v.carried,
                }
                for pk, v in sorted(verdicts.items())
            },  # fmt: skip
        },
    )


def _feedback_create(review: Review, message: str, context: audit.AuditContext) -> Feedback:
    comparison = review.comparison
    feedback = Feedback.objects.create(
        review=review, comparison=comparison, radiologist_id=comparison.radiologist_id, message=message
    )
    audit.record(
        "feedback.create",
        actor=review.reviewer,
        context=context,
        object_type="feedback",
        object_id=feedback.pk,
        patient_id=comparison.study.patient_id,
        study_id=comparison.study_id,
        details={"review": review.pk, "radiologist": comparison.radiologist_id},
    )
    return feedback


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
