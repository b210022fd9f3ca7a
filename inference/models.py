"""Re-inference runs: a model version re-run over a frozen cohort of historical studies.

A :class:`ReinferenceRun` names a model version, an AI output kind and a cohort filter. At creation
the cohort is frozen into :class:`ReinferenceChunk` rows (each lists its studies with the original AI
output and the signed report they are judged against), so later ingestion cannot change what the
run measures. Workers claim chunks with a lease, generate in one batch and store one
:class:`ReinferenceResult` per study (unique per run and study: a redelivered chunk cannot
duplicate a result). The run's ``done``/``failed`` counters move in the same transaction as the
results they count.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from portal.records.models import AIOutput, AIOutputKind, ModelVersion, SignedReport, Study


class RunStatus(models.TextChoices):
    """Where a run stands. ``completed``, ``failed`` and ``cancelled`` are final."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class ReinferenceRun(models.Model):
    """One re-run of a model version over a cohort of signed studies, with its live progress.

    ``cohort_filter`` keeps the filter exactly as requested (specialty, modality, dates, radiologist,
    sample size and seed); the frozen cohort itself lives in the chunks. ``total`` is the cohort size;
    ``done`` counts stored results, ``failed`` studies that could not be generated.
    """

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="reinference_runs")
    kind = models.CharField(max_length=32, choices=AIOutputKind.choices, default=AIOutputKind.REPORT_DRAFT)
    cohort_filter = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    chunk_size = models.PositiveIntegerField()
    total = models.PositiveIntegerField()
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(total__gt=0), name="reinference_run_cohort_not_empty"),
            models.CheckConstraint(
                condition=Q(done__lte=F("total") - F("failed")), name="reinference_run_progress_le_total"
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in RunStatus]), name="reinference_run_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"ReinferenceRun {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        """True while chunks may still be claimed (queued or running)."""
        return self.status in ACTIVE_RUN_STATUSES


class ChunkStatus(models.TextChoices):
    """A chunk's state. ``running`` means leased: ``lease_owner`` holds it until ``lease_expires_at``."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped"  # the run was cancelled or failed before this chunk ran


class ReinferenceChunk(models.Model):
    """A slice of a run's frozen cohort: one Celery task, one batch of generation.

    ``items`` is a list of ``[study_id, original_ai_output_id, signed_report_id]`` triples, fixed at
    creation. A worker claims the chunk by a compare-and-set UPDATE (pending, or running with an
    expired lease, becomes running with its own lease); the reaper hands expired leases back.
    """

    run = models.ForeignKey(ReinferenceRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    items = models.JSONField()
    status = models.CharField(max_length=16, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    lease_owner = models.CharField(max_length=255, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    generation_ms = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="reinference_chunk_unique_index"),
            models.CheckConstraint(
                condition=~Q(status="running") | (Q(lease_expires_at__isnull=False) & ~Q(lease_owner="")),
                name="reinference_chunk_running_is_leased",
            ),
        ]
        indexes = [models.Index(fields=["status", "lease_expires_at"])]

    def __str__(self) -> str:
        return f"ReinferenceChunk {self.pk} ({self.status})"

    @property
    def study_ids(self) -> list[int]:
        """The studies of this chunk, in cohort order."""
        return [item[0] for item in self.items]


class ResultStatus(models.TextChoices):
    """Whether the new version produced a text for the study."""

    OK = "ok", "Generated"
    FAILED = "failed", "Failed"


class ReinferenceResult(models.Model):
    """What the run's model version produced for one study, and how it compares.

    ``reproduced`` is an exact byte match with the original AI output's text, meaningful only when
    the run's version is the original's (null otherwise). The ``new_*`` figures compare the new text
    with the study's original final signed report; the ``original_*`` figures compare the original
    AI output with the same report (taken from the review app's stored comparison when one exists),
    so the summary compares both versions on the same cohort. ``categories`` maps a discrepancy
    category to ``{"significant": n, "minor": m}``.
    """

    run = models.ForeignKey(ReinferenceRun, on_delete=models.CASCADE, related_name="results")
    chunk = models.ForeignKey(ReinferenceChunk, on_delete=models.CASCADE, related_name="results")
    # CASCADE: a retention purge of the study removes the derived results with its records.
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="+")
    original = models.ForeignKey(AIOutput, on_delete=models.CASCADE, related_name="+")
    reference = models.ForeignKey(SignedReport, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=ResultStatus.choices)
    error = models.CharField(max_length=512, blank=True)
    text = models.TextField(blank=True)
    text_sha256 = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    reproduced = models.BooleanField(null=True, blank=True)
    radpeer_suggested = models.CharField(max_length=2, blank=True)
    significant_count = models.PositiveIntegerField(default=0)
    minor_count = models.PositiveIntegerField(default=0)
    categories = models.JSONField(default=dict, blank=True)
    discrepancies = models.JSONField(default=list, blank=True)
    original_radpeer = models.CharField(max_length=2, blank=True)
    original_significant_count = models.PositiveIntegerField(default=0)
    original_minor_count = models.PositiveIntegerField(default=0)
    original_categories = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "study"], name="reinference_result_once_per_study"),
            models.CheckConstraint(
                condition=(Q(status="ok") & ~Q(text="")) | (Q(status="failed") & Q(text="")),
                name="reinference_result_text_iff_ok",
            ),
            models.CheckConstraint(
                condition=Q(latency_ms__isnull=True) | Q(latency_ms__gte=0),
                name="reinference_result_latency_ge_0",
            ),
        ]
        indexes = [models.Index(fields=["run", "status"])]

    def __str__(self) -> str:
        return f"ReinferenceResult {self.pk} ({self.status})"
