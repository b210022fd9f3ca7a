"""Comparisons of AI outputs with signed reports, and the discrepancies they found."""

from __future__ import annotations

from django.db import models

from portal.records.models import AIOutput, SignedReport, Study


class Significance(models.TextChoices):
    """Whether a discrepancy is likely to matter clinically."""

    SIGNIFICANT = "significant", "Significant"
    MINOR = "minor", "Minor"


class DiscrepancyCategory(models.TextChoices):
    """The engine's vocabulary, mirroring GREEN's error types."""

    FALSE_FINDING = "false_finding", "False finding"
    MISSED_FINDING = "missed_finding", "Missed finding"
    LOCATION = "location", "Location / laterality"
    SEVERITY = "severity", "Severity / size"
    COMPARISON_ADDED = "comparison_added", "Comparison added"
    COMPARISON_OMITTED = "comparison_omitted", "Comparison omitted"
    CERTAINTY = "certainty", "Certainty"


class Comparison(models.Model):
    """One run of the discrepancy engine over an AI output (candidate) and a signed report (reference).

    Unique per pair: comparing the same two immutable texts again can only give the same answer.
    """

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="comparisons")
    candidate = models.ForeignKey(AIOutput, on_delete=models.PROTECT, related_name="comparisons")
    reference = models.ForeignKey(SignedReport, on_delete=models.PROTECT, related_name="comparisons")
    radpeer_suggested = models.CharField(max_length=2)
    scores = models.JSONField(default=dict)
    significant_count = models.PositiveIntegerField(default=0)
    minor_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["candidate", "reference"], name="comparison_pair_unique")
        ]
        indexes = [
            models.Index(fields=["radpeer_suggested", "created_at"]),
            models.Index(fields=["significant_count", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"Comparison {self.pk}"


class Discrepancy(models.Model):
    """One difference, with the exact words on each side (character spans into the stored texts)."""

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
    explanation = models.TextField()

    class Meta:
        verbose_name_plural = "discrepancies"
        indexes = [models.Index(fields=["category", "significance"])]

    def __str__(self) -> str:
        return f"Discrepancy {self.pk} {self.category}"
