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
