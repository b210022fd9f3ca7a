"""The committee's verdicts as labelled data for the discrepancy engine (its test set grows with use).

One record per reviewed case, in the JSON-lines shape ``inference.compare.evaluate`` reads:
``{"id", "candidate", "reference", "expected": [{"category", "finding", "where"}], "note"}``.
``expected`` holds the discrepancies the committee confirmed as real, under the committee's category
(a re-categorised one under its new category: the correction is the label). Rejected ones ("not a
discrepancy") and differences of wording ("both acceptable") are left out, so an engine that still
reports them counts a false positive. ``where`` gives the quoted spans, which ``evaluate`` uses to
match a finding the engine names more precisely.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.db.models import Prefetch

from portal.review.models import CorrectSide, DiscrepancyVerdict, Review, Verdict


def _expected(verdict: DiscrepancyVerdict) -> dict[str, Any] | None:
    if verdict.verdict == Verdict.NOT_A_DISCREPANCY or verdict.correct_side == CorrectSide.BOTH_ACCEPTABLE:
        return None
    d = verdict.discrepancy
    where = {}
    for side in ("candidate", "reference"):
        start, end = getattr(d, f"{side}_start"), getattr(d, f"{side}_end")
        if start is not None and end is not None:
            where[side] = [[start, end]]
    return {"category": verdict.category or d.category, "finding": d.finding, "where": where}


def committee_labels(*, since: dt.datetime | None = None) -> Iterator[dict[str, Any]]:
    """Labelled pairs from the latest current review of each reviewed case, oldest case first."""
    reviews = (
        Review.objects.filter(superseded_by__isnull=True)
        .select_related("comparison__candidate", "comparison__reference")
        .prefetch_related(
            Prefetch(
                "verdicts", queryset=DiscrepancyVerdict.objects.select_related("discrepancy").order_by("pk")
            )
        )
        .order_by("comparison_id", "-submitted_at", "-pk")
    )
    if since is not None:
        reviews = reviews.filter(submitted_at__gte=since)
    seen: set[int] = set()
    for review in reviews.iterator(chunk_size=500):
        if review.comparison_id in seen:
            continue
        seen.add(review.comparison_id)
        comparison = review.comparison
        expected = [item for item in map(_expected, review.verdicts.all()) if item is not None]
        yield {
            "id": f"case-{comparison.pk}",
            "candidate": comparison.candidate.text,
            "reference": comparison.reference.text,
            "expected": expected,
            "note": f"committee review {review.pk} of {review.submitted_at.date().isoformat()}",
            "source": "committee",
        }
