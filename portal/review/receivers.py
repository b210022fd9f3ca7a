"""Answers of the review app to signals of the rooms below it (connected in :mod:`.apps`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from portal.review.models import Comparison, Discrepancy

Pair = tuple[int, int]


def stored_comparisons(sender: Any, *, pairs: Iterable[Pair], **_: Any) -> dict[Pair, tuple]:
    """The stored comparison of each (AI output, signed report) pair: RADPEER, counts, discrepancies."""
    wanted = set(pairs)
    if not wanted:
        return {}
    stored = Comparison.objects.filter(
        candidate_id__in={c for c, _r in wanted}, reference_id__in={r for _c, r in wanted}
    ).values_list(
        "pk", "candidate_id", "reference_id", "radpeer_suggested", "significant_count", "minor_count"
    )
    found: dict[Pair, tuple] = {}
    pair_of: dict[int, Pair] = {}
    for pk, candidate_id, reference_id, radpeer, significant, minor in stored:
        pair = (candidate_id, reference_id)
        if pair in wanted:
            found[pair] = (radpeer, significant, minor, [])
            pair_of[pk] = pair
    for comparison_id, category, significance in Discrepancy.objects.filter(
        comparison_id__in=list(pair_of)
    ).values_list("comparison_id", "category", "significance"):
        found[pair_of[comparison_id]][3].append({"category": category, "significance": significance})
    return found
