"""Review workflows: turning an AI output and a signed report into stored discrepancies."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from audit import log as audit
from inference.compare import compare
from portal.records.models import AIOutput, AIOutputKind, AIOutputOrigin, SignedReport, Study
from portal.review.models import Comparison, Discrepancy


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
            comparison = Comparison.objects.create(
                study_id=candidate.study_id,
                candidate=candidate,
                reference=reference,
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
