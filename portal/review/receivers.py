"""Answers of the review app to signals of the rooms below it (connected in :mod:`.apps`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from portal.records.models import Clinician
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


def clinician_saved(sender: Any, *, instance: Clinician, created: bool, **_: Any) -> None:
    """A clinician linked to (or unlinked from) an account: their cases follow the link.

    Readers known only from HL7/FHIR are stored with no account; once an admin links them, their cases
    reach their queue rows, feedback and performance figures (and unlinking takes them away again).
    Runs inside the linking transaction, so the link and the cases change together.
    """
    if created:
        return
    Comparison.objects.filter(clinician_id=instance.pk).exclude(radiologist_id=instance.account_id).update(
        radiologist_id=instance.account_id
    )
