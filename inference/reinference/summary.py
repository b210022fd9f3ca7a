"""The arithmetic of a run summary: percentiles, per-category rates, distributions. Pure Python.

Kept apart from the database reads (:mod:`inference.selectors`) so it can be tested on plain lists.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from inference.compare import CATEGORIES, RADPEER_SCORES

SIGNIFICANT = "significant"
MINOR = "minor"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def latency_percentiles(values: Iterable[float | None]) -> dict[str, float | None]:
    """p50, p95 and p99 of the known latencies (milliseconds, rounded to 0.01)."""
    known = [float(v) for v in values if v is not None]
    return {
        name: (None if (p := percentile(known, q)) is None else round(p, 2))
        for name, q in (("p50", 50), ("p95", 95), ("p99", 99))
    }


def categories_of(discrepancies: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """``{category: {"significant": n, "minor": m}}`` of a list of discrepancy dicts (engine to_dict)."""
    out: dict[str, dict[str, int]] = {}
    for d in discrepancies:
        counts = out.setdefault(str(d["category"]), {SIGNIFICANT: 0, MINOR: 0})
        counts[SIGNIFICANT if d["significance"] == SIGNIFICANT else MINOR] += 1
    return out


def side_summary(rows: Sequence[tuple[Mapping[str, Mapping[str, int]], str, int]]) -> dict[str, Any]:
    """Figures of one side (new version or original) over the same studies.

    Each row is ``(categories, radpeer, significant_count)``. Returns the mean number of significant
    discrepancies per study in each category (every known category listed, zeros included), the
    share of studies with at least one significant discrepancy and the RADPEER-suggested distribution.
    """
    studies = len(rows)
    per_category: dict[str, float] = {}
    totals: Counter[str] = Counter()
    for categories, _radpeer, _sig in rows:
        for category, counts in categories.items():
            totals[category] += int(counts.get(SIGNIFICANT, 0))
    for category in sorted(set(CATEGORIES) | set(totals)):
        per_category[category] = round(totals[category] / studies, 4) if studies else 0.0
    radpeer = Counter(radpeer for _c, radpeer, _s in rows if radpeer)
    with_significant = sum(1 for _c, _r, sig in rows if sig > 0)
    return {
        "studies": studies,
        "significant_per_study": round(sum(totals.values()) / studies, 4) if studies else 0.0,
        "significant_per_study_by_category": per_category,
        "studies_with_significant": with_significant,
        "studies_with_significant_rate": round(with_significant / studies, 4) if studies else None,
        "radpeer_suggested": {score: radpeer.get(score, 0) for score in RADPEER_SCORES}
        | {score: n for score, n in radpeer.items() if score not in RADPEER_SCORES},
    }


def rate(numerator: int, denominator: int) -> float | None:
    """numerator / denominator rounded to 4 places; None when nothing was counted."""
    return round(numerator / denominator, 4) if denominator else None
