"""Comparisons of AI outputs with signed reports, the discrepancies they found, and the committee's work
on them: assignments, sampling campaigns, RADPEER reviews and feedback to the radiologist.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from portal.records.models import AIOutput, Clinician, ModelVersion, SignedReport, Study


class Significance(models.TextChoices):
    """Whether a discrepancy is likely to matter clinically."""

    SIGNIFICANT = "significant", "Significant"
    MINOR = "minor", "Minor"


class DiscrepancyCategory(models.TextChoices):
    """The engine's vocabulary, mirroring GREEN's error types (plus certainty and self-contradiction)."""

    INTERNAL_CONTRADICTION = "internal_contradiction", "Internal contradiction"
    FALSE_FINDING = "false_finding", "False finding"
    MISSED_FINDING = "missed_finding", "Missed finding"
    LOCATION = "location", "Location / laterality"
    SEVERITY = "severity", "Severity / size"
    COMPARISON_ADDED = "comparison_added", "Comparison added"
    COMPARISON_OMITTED = "comparison_omitted", "Comparison omitted"
    CERTAINTY = "certainty", "Certainty"


class ReviewStatus(models.TextChoices):
    """Where a case stands in the QA queue."""

    UNASSIGNED = "unassigned", "Unassigned"
    ASSIGNED = "assigned", "Assigned"
    REVIEWED = "reviewed", "Reviewed"


class Comparison(models.Model):
    """One run of the discrepancy engine over an AI output (candidate) and a signed report (reference).

    Unique per pair: comparing the same two immutable texts again can only give the same answer.
    A comparison is also a *case* of the QA queue. The queue filters and sorts a million of them, so
    the study's date, specialty and modality, the draft's model version and the signing radiologist are
    copied here (they never change: studies' clinical header, AI outputs and signed reports are
    immutable), and ``review_status`` follows the assignments and reviews.
    """

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="comparisons")
    candidate = models.ForeignKey(AIOutput, on_delete=models.PROTECT, related_name="comparisons")
    reference = models.ForeignKey(SignedReport, on_delete=models.PROTECT, related_name="comparisons")
    radpeer_suggested = models.CharField(max_length=2)
    scores = models.JSONField(default=dict)
    significant_count = models.PositiveIntegerField(default=0)
    minor_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Denormalised for the queue (see the class docstring); filled by save() when left empty.
    study_date = models.DateTimeField(null=True, blank=True)
    specialty = models.CharField(max_length=32, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    radiologist = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Who signed, as the feed named them. ``radiologist`` follows ``clinician.account`` (kept in step by
    # the review app's receiver when an admin links or unlinks the clinician), so readers known only
    # from HL7/FHIR are reviewed under their clinician and reach their account once it is linked.
    clinician = models.ForeignKey(
        Clinician, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    review_status = models.CharField(
        max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.UNASSIGNED
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["candidate", "reference"], name="comparison_pair_unique")
        ]
        indexes = [
            models.Index(fields=["radpeer_suggested", "created_at"]),
            models.Index(fields=["significant_count", "created_at"]),
            # One index per queue filter, each ending in the keyset (study_date, id).
            models.Index(fields=["study_date", "id"], name="queue_date"),
            models.Index(fields=["specialty", "study_date", "id"], name="queue_specialty"),
            models.Index(fields=["modality", "study_date", "id"], name="queue_modality"),
            models.Index(fields=["review_status", "study_date", "id"], name="queue_status"),
            models.Index(fields=["radpeer_suggested", "study_date", "id"], name="queue_radpeer"),
            models.Index(fields=["model_version", "study_date", "id"], name="queue_model"),
            models.Index(fields=["radiologist", "study_date", "id"], name="queue_radiologist"),
            models.Index(fields=["significant_count", "study_date", "id"], name="queue_significant"),
        ]

    def __str__(self) -> str:
        return f"Comparison {self.pk}"

    def save(self, *args, **kwargs) -> None:
        """Copy the queue's columns from the study, the draft and the report when not given."""
        if self.study_date is None:
            study = self.study
            self.study_date = study.study_datetime or study.created_at
            self.specialty = self.specialty or study.specialty
            self.modality = self.modality or study.modality
        if self.model_version_id is None and self.candidate_id is not None:
            self.model_version_id = self.candidate.model_version_id
        if self.clinician_id is None and self.reference_id is not None:
            self.clinician_id = self.reference.clinician_id
        if self.radiologist_id is None and self.reference_id is not None:
            self.radiologist_id = self.reference.radiologist_id or self.reference.clinician.account_id
        super().save(*args, **kwargs)


class Discrepancy(models.Model):
    """One difference, with the exact words on each side (character spans into the stored texts).

    ``*_start``/``*_end`` span the quoted sentence; ``*_marks`` list the words that differ, as
    ``[[start, end], ...]`` into the same text, one per repeat of the finding (findings and impression).
    """

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="discrepancies")
    category = models.CharField(max_length=32, choices=DiscrepancyCategory.choices)
    significance = models.CharField(max_length=16, choices=Significance.choices)
    finding = models.CharField(max_length=128)
    candidate_text = models.TextField(blank=True)
    candidate_start = models.PositiveIntegerField(null=True, blank=True)
    candidate_end = models.PositiveIntegerField(null=True, blank=True)
    reference_text = models.TextField(blank=True)
    reference_start = models.PositiveIntegerField(null=True, blank=True)
    reference_end = models.PositiveIntegerField(null=True, blank=True)
    candidate_marks = models.JSONField(default=list, blank=True)
    reference_marks = models.JSONField(default=list, blank=True)
    explanation = models.TextField()

    class Meta:
        verbose_name_plural = "discrepancies"
        indexes = [
            models.Index(fields=["category", "significance"]),
            models.Index(fields=["comparison", "category"], name="discrepancy_case_category"),
        ]

    def __str__(self) -> str:
        return f"Discrepancy {self.pk} {self.category}"


class RadpeerScore(models.TextChoices):
    """The ACR RADPEER scale the committee scores a case on (a = unlikely, b = likely to matter)."""

    CONCUR = "1", "1 - Concur with interpretation"
    MISS_NOT_EXPECTED = "2a", "2a - Discrepancy, not ordinarily expected to be made; unlikely significant"
    MISS_NOT_EXPECTED_SIGNIFICANT = "2b", "2b - Discrepancy, not ordinarily expected; likely significant"
    MISS_EXPECTED = "3a", "3a - Discrepancy, should be made most of the time; unlikely significant"
    MISS_EXPECTED_SIGNIFICANT = "3b", "3b - Discrepancy, should be made most of the time; likely significant"


class Verdict(models.TextChoices):
    """The committee's view of one discrepancy the engine reported."""

    AGREE = "agree", "Agree with the engine"
    RECATEGORISE = "recategorise", "Real, but another category"
    NOT_A_DISCREPANCY = "not_a_discrepancy", "Not a discrepancy"


class CorrectSide(models.TextChoices):
    """Who was right against the images, for one discrepancy (the committee's attribution)."""

    SIGNED_REPORT = "signed_report", "Signed report (the AI draft erred)"
    AI_DRAFT = "ai_draft", "AI draft (the signed report erred)"
    BOTH_ACCEPTABLE = "both_acceptable", "Both acceptable (wording or style)"
    INDETERMINATE = "indeterminate", "Indeterminate from the images"


#: Scores that say the radiologist's interpretation was discrepant (2a-3b); "1" is concurrence.
DISCREPANT_SCORES = ("2a", "2b", "3a", "3b")


class CampaignMethod(models.TextChoices):
    """How a sampling campaign picks cases from its cohort."""

    RANDOM = "random", "Random percentage"
    EVERY_NTH = "every_nth", "Every Nth study"
    TARGETED = "targeted", "All cases matching the filters"


class SamplingCampaign(models.Model):
    """A chair's draw of cases for peer review: a random percentage of a cohort, every Nth study, or all
    cases matching targeted filters (``filters`` uses the queue's filter names).

    Reproducible: the cohort is ordered by (study date, id) and ``seed`` drives the draw, so the same
    seed over the same cohort selects the same cases. Immutable once created (its assignments are the
    outcome).
    """

    name = models.CharField(max_length=128)
    method = models.CharField(max_length=16, choices=CampaignMethod.choices)
    percentage = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    every_nth = models.PositiveIntegerField(null=True, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField()
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sampling_campaigns_assigned"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sampling_campaigns_created"
    )
    cohort_size = models.PositiveIntegerField(default=0)
    selected_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(method="random") | (Q(percentage__gt=0) & Q(percentage__lte=100)),
                name="campaign_random_needs_percentage",
            ),
            models.CheckConstraint(
                condition=~Q(method="every_nth") | Q(every_nth__gte=1), name="campaign_nth_needs_n"
            ),
            models.CheckConstraint(condition=~Q(name=""), name="campaign_name_not_empty"),
        ]

    def __str__(self) -> str:
        return f"SamplingCampaign {self.pk} ({self.method})"


class Assignment(models.Model):
    """A case given to a reviewer by the chair (by hand or by a sampling campaign)."""

    comparison = models.ForeignKey(Comparison, on_delete=models.PROTECT, related_name="assignments")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    campaign = models.ForeignKey(
        SamplingCampaign, on_delete=models.PROTECT, null=True, blank=True, related_name="assignments"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "reviewer"], name="assignment_once_per_reviewer")
        ]
        indexes = [models.Index(fields=["reviewer", "completed_at"])]

    def __str__(self) -> str:
        return f"Assignment {self.pk}"


class Review(models.Model):
    """The committee's adjudication of a case. Immutable (database triggers): a reviewer who changes
    their mind submits a new Review that ``supersedes`` the old one, so the history stays.

    Attribution is part of the verdict: each DiscrepancyVerdict says who was right against the images.
    ``radiologist_erred`` (some verdict blames the signed report, or an AI error was carried into it)
    and ``ai_erred`` (some verdict blames the AI draft) are derived from the verdicts when the review is
    stored. RADPEER grades the radiologist's interpretation, so a discrepant score (2a-3b) is recorded
    exactly when the radiologist erred; otherwise the score is "1" (concur) or empty (not scored), and
    the AI's errors count for the model version, never for the radiologist.
    """

    comparison = models.ForeignKey(Comparison, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    radpeer = models.CharField(max_length=2, choices=RadpeerScore.choices, blank=True)
    radiologist_erred = models.BooleanField(default=False)
    ai_erred = models.BooleanField(default=False)
    carried_ai_error = models.BooleanField(default=False)
    comment = models.TextField(blank=True)
    supersedes = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by"
    )
    submitted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(radpeer__in=[*(choice.value for choice in RadpeerScore), ""]),
                name="review_radpeer_valid",
            ),
            # RADPEER against the radiologist only where the radiologist erred (see the docstring).
            models.CheckConstraint(
                condition=(Q(radiologist_erred=True) & Q(radpeer__in=DISCREPANT_SCORES))
                | (Q(radiologist_erred=False) & Q(radpeer__in=["", "1"])),
                name="review_radpeer_follows_attribution",
            ),
            models.CheckConstraint(
                condition=Q(carried_ai_error=False) | (Q(radiologist_erred=True) & Q(ai_erred=True)),
                name="review_carried_error_is_both",
            ),
        ]
        indexes = [models.Index(fields=["comparison", "submitted_at"]), models.Index(fields=["radpeer"])]

    def __str__(self) -> str:
        return f"Review {self.pk} ({self.radpeer})"


class DiscrepancyVerdict(models.Model):
    """Part of a Review: the committee agrees with one engine discrepancy, moves it to another category,
    or rejects it, and for a real discrepancy says who was right against the images (``correct_side``)
    and whether the AI's error was carried into the signed report (accepted unchanged: automation bias).
    Immutable with its review. ``correct_side`` is empty only on reviews stored before attribution.
    """

    review = models.ForeignKey(Review, on_delete=models.PROTECT, related_name="verdicts")
    discrepancy = models.ForeignKey(Discrepancy, on_delete=models.PROTECT, related_name="verdicts")
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    category = models.CharField(max_length=32, choices=DiscrepancyCategory.choices, blank=True)
    correct_side = models.CharField(max_length=16, choices=CorrectSide.choices, blank=True)
    carried_into_report = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["review", "discrepancy"], name="verdict_once_per_review"),
            models.CheckConstraint(
                condition=~Q(verdict="not_a_discrepancy")
                | (Q(correct_side="") & Q(carried_into_report=False)),
                name="verdict_no_attribution_when_rejected",
            ),
            # A carried error is an AI error the signed report repeats: not a matter of wording.
            models.CheckConstraint(
                condition=Q(carried_into_report=False) | ~Q(correct_side__in=["", "both_acceptable"]),
                name="verdict_carried_error_is_an_error",
            ),
            models.CheckConstraint(
                condition=(Q(verdict="recategorise") & ~Q(category=""))
                | (~Q(verdict="recategorise") & Q(category="")),
                name="verdict_category_only_when_recategorised",
            ),
        ]

    def __str__(self) -> str:
        return f"DiscrepancyVerdict {self.pk} ({self.verdict})"


class Feedback(models.Model):
    """What the committee tells the radiologist who signed the report, from one review.

    The text and its origin never change; only ``acknowledged_at`` is set, once, by the radiologist.
    """

    review = models.OneToOneField(Review, on_delete=models.PROTECT, related_name="feedback")
    comparison = models.ForeignKey(Comparison, on_delete=models.PROTECT, related_name="feedback")
    radiologist = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "feedback"
        constraints = [models.CheckConstraint(condition=~Q(message=""), name="feedback_message_not_empty")]
        indexes = [models.Index(fields=["radiologist", "created_at"])]

    def __str__(self) -> str:
        return f"Feedback {self.pk}"


class StatDimension(models.TextChoices):
    """The breakdowns the dashboard shows; ``all`` is the department as a whole (key "")."""

    ALL = "all", "Department"
    SPECIALTY = "specialty", "Specialty"
    MODALITY = "modality", "Modality"
    MODEL = "model", "Model version"
    RADIOLOGIST = "radiologist", "Radiologist"


class DailyStat(models.Model):
    """Daily counts per dashboard breakdown, recomputed from the cases by a periodic task.

    Aggregating a million cases on every dashboard view would take seconds; these rows are a few
    thousand. ``key`` is the specialty, modality, model version id or radiologist id ("" for all).
    ``radpeer_*`` count the engine's suggestions, ``committee_*`` the committee's current scores (only
    reviews that scored the radiologist); ``reviewed`` counts current reviews, ``ai_errors`` those that
    found an error of the AI draft (the model's figure), ``radiologist_errors`` those that found one of
    the signed report, ``carried`` those where the AI's error survived into the signed report.
    """

    dimension = models.CharField(max_length=16, choices=StatDimension.choices)
    key = models.CharField(max_length=64, blank=True)
    day = models.DateField()
    studies = models.PositiveIntegerField(default=0)
    ai_outputs = models.PositiveIntegerField(default=0)
    compared = models.PositiveIntegerField(default=0)
    with_discrepancy = models.PositiveIntegerField(default=0)
    significant = models.PositiveIntegerField(default=0)
    radpeer_1 = models.PositiveIntegerField(default=0)
    radpeer_2a = models.PositiveIntegerField(default=0)
    radpeer_2b = models.PositiveIntegerField(default=0)
    radpeer_3a = models.PositiveIntegerField(default=0)
    radpeer_3b = models.PositiveIntegerField(default=0)
    # The committee's current scores (superseded reviews left out) of the day's cases.
    committee_1 = models.PositiveIntegerField(default=0)
    committee_2a = models.PositiveIntegerField(default=0)
    committee_2b = models.PositiveIntegerField(default=0)
    committee_3a = models.PositiveIntegerField(default=0)
    committee_3b = models.PositiveIntegerField(default=0)
    reviewed = models.PositiveIntegerField(default=0)
    ai_errors = models.PositiveIntegerField(default=0)
    radiologist_errors = models.PositiveIntegerField(default=0)
    carried = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dimension", "key", "day"], name="daily_stat_unique")]
        indexes = [models.Index(fields=["dimension", "day"])]

    def __str__(self) -> str:
        return f"DailyStat {self.dimension}:{self.key} {self.day}"
