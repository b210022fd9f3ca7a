"""Reads of the review data that grow beyond one query."""

from __future__ import annotations

from django.db.models import Exists, OuterRef

from portal.records.models import AIOutput, AIOutputKind, AIOutputOrigin, SignedReport, Study
from portal.review.models import Comparison


def studies_awaiting_comparison(*, limit: int) -> list[int]:
    """Studies with a clinical AI draft and a signed report but no comparison of that draft yet."""
    drafts = AIOutput.objects.filter(
        study=OuterRef("pk"), kind=AIOutputKind.REPORT_DRAFT, origin=AIOutputOrigin.CLINICAL
    )
    uncompared = drafts.filter(~Exists(Comparison.objects.filter(candidate=OuterRef("pk"))))
    qs = Study.objects.filter(Exists(SignedReport.objects.filter(study=OuterRef("pk"))), Exists(uncompared))
    return list(qs.order_by("pk").values_list("pk", flat=True)[:limit])
