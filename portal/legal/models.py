"""Legal holds: an instruction from counsel that stops routine deletion of some records.

A hold starts when litigation is reasonably anticipated and covers a patient, a list of studies or a
window of study dates. While it is active the retention purge must keep every study it covers. A hold
is released, never deleted, so the history of what was preserved and why stays answerable.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from portal.records.models import Patient, Study


class HoldScope(models.TextChoices):
    """What a hold covers."""

    PATIENT = "patient", "Every study of one patient"
    STUDIES = "studies", "Listed studies"
    DATE_RANGE = "date_range", "Studies acquired within a date range"


class LegalHold(models.Model):
    """One legal hold, identified by counsel's matter reference.

    The scope fields are consistent with ``scope`` (checked by the database): a patient hold names the
    patient and no dates; a studies hold names its studies through ``studies`` and neither patient nor
    dates; a date-range hold has both dates (inclusive) and no patient. ``released_*`` are set together
    when counsel lifts the hold, and an active hold is one whose ``released_at`` is null.
    """

    matter_reference = models.CharField(max_length=128)
    reason = models.TextField()
    scope = models.CharField(max_length=16, choices=HoldScope.choices)
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, null=True, blank=True, related_name="legal_holds"
    )
    studies = models.ManyToManyField(Study, blank=True, related_name="legal_holds")
    date_from = models.DateField(null=True, blank=True)
    date_to = models.DateField(null=True, blank=True)
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="legal_holds_placed"
    )
    placed_at = models.DateTimeField()
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="legal_holds_released",
    )
    released_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(matter_reference=""), name="legal_hold_matter_not_empty"),
            models.CheckConstraint(condition=~Q(reason=""), name="legal_hold_reason_not_empty"),
            # Study membership is an M2M and cannot be checked here; the service requires at least one.
            models.CheckConstraint(
                condition=(
                    Q(scope="patient", patient__isnull=False, date_from__isnull=True, date_to__isnull=True)
                    | Q(scope="studies", patient__isnull=True, date_from__isnull=True, date_to__isnull=True)
                    | Q(
                        scope="date_range",
                        patient__isnull=True,
                        date_from__isnull=False,
                        date_to__isnull=False,
                        date_from__lte=F("date_to"),
                    )
                ),
                name="legal_hold_scope_consistent",
            ),
            models.CheckConstraint(
                condition=(
                    Q(released_by__isnull=True, released_at__isnull=True, release_reason="")
                    | (Q(released_by__isnull=False, released_at__isnull=False) & ~Q(release_reason=""))
                ),
                name="legal_hold_release_all_or_nothing",
            ),
        ]
        indexes = [models.Index(fields=["released_at", "scope"])]

    def __str__(self) -> str:
        return f"LegalHold {self.pk} ({self.matter_reference})"

    @property
    def is_active(self) -> bool:
        """True until the hold is released."""
        return self.released_at is None


class ExportStatus(models.TextChoices):
    """Where an export job stands. Only ``ready`` jobs have a file, and only they can be downloaded."""

    QUEUED = "queued", "Queued"
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ExportPackage(models.Model):
    """A legal export job and, once ``ready``, the signed ZIP package it produced.

    ``scope`` holds the criteria counsel gave (patient MRN, accession numbers, date range, model
    version), resolved to studies when the package is built. The ZIP lives under
    ``$CONCORDANCE_VAR_DIR/exports/`` (never a public path) and is served only through the
    permission-checked, audited download endpoint. While building, the file is a temporary name in the
    same directory and is renamed into place only when complete, so a partial package is never
    visible; ``file_path``, ``sha256`` and ``size`` are set together when the job becomes ready.
    ``heartbeat_at`` advances with the progress; a ``building`` job whose heartbeat stops (the worker
    died) is reaped by a periodic task and rebuilt, up to ``MAX_ATTEMPTS`` times.
    """

    MAX_ATTEMPTS = 3

    package_id = models.UUIDField(unique=True)
    scope = models.JSONField(default=dict)
    matter_reference = models.CharField(max_length=128)
    reason = models.TextField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="export_packages",
    )
    requested_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    file_path = models.CharField(max_length=1024, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    deidentified = models.BooleanField(default=False)
    deid_profile = models.CharField(max_length=512, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(matter_reference=""), name="export_matter_not_empty"),
            models.CheckConstraint(condition=~Q(reason=""), name="export_reason_not_empty"),
            models.CheckConstraint(
                condition=Q(progress_done__lte=F("progress_total")), name="export_progress_bounded"
            ),
            # A file is visible only with its hash and size, and only for a ready package.
            models.CheckConstraint(
                condition=(Q(status="ready") & ~Q(file_path="") & ~Q(sha256="") & Q(size__isnull=False))
                | (~Q(status="ready") & Q(file_path="") & Q(sha256="") & Q(size__isnull=True)),
                name="export_file_only_when_ready",
            ),
            models.CheckConstraint(
                condition=Q(deidentified=False, deid_profile="") | Q(deidentified=True) & ~Q(deid_profile=""),
                name="export_deid_profile_named",
            ),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"ExportPackage {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        """True once the job can no longer change (ready, failed or cancelled)."""
        return self.status in (ExportStatus.READY, ExportStatus.FAILED, ExportStatus.CANCELLED)
