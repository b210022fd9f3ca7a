"""Reads of the peer-learning pages (bounded, without N+1)."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from portal.peer.models import RoutingRule, RoutingRun, TeachingSet
from portal.review.models import Assignment, Comparison, ReviewStatus

CANDIDATES = 30


def teaching_sets() -> QuerySet[TeachingSet]:
    """Every teaching set, newest first, with its number of cases."""
    return TeachingSet.objects.annotate(case_count=Count("cases")).order_by("-created_at", "-pk")


def teachable_cases(*, exclude_set: TeachingSet) -> list[Comparison]:
    """The most recently adjudicated cases not yet in the set, for the chair to pick from."""
    return list(
        Comparison.objects.filter(review_status=ReviewStatus.REVIEWED)
        .exclude(pk__in=exclude_set.cases.filter(comparison__isnull=False).values("comparison_id"))
        .only("pk", "specialty", "modality", "radpeer_suggested", "significant_count", "minor_count")
        .order_by("-pk")[:CANDIDATES]
    )


def routing_rules() -> list[dict[str, object]]:
    """Every rule with its reviewer and how many open cases of its specialty the reviewer holds now."""
    rules = list(RoutingRule.objects.select_related("reviewer").order_by("specialty", "reviewer__username"))
    open_rows = (
        Assignment.objects.filter(completed_at__isnull=True, reviewer_id__in={r.reviewer_id for r in rules})
        .values("reviewer_id", "comparison__specialty")
        .annotate(n=Count("pk"))
    )
    open_counts = {(row["reviewer_id"], row["comparison__specialty"]): row["n"] for row in open_rows}
    return [{"rule": r, "open": open_counts.get((r.reviewer_id, r.specialty), 0)} for r in rules]


def waiting_by_specialty() -> dict[str, int]:
    """Unassigned cases per specialty (what a routing run could take)."""
    rows = (
        Comparison.objects.filter(review_status=ReviewStatus.UNASSIGNED)
        .values("specialty")
        .annotate(n=Count("pk", filter=Q(routed__isnull=True)))
        .order_by("specialty")
    )
    return {row["specialty"] or "": row["n"] for row in rows}


def recent_runs(limit: int = 10) -> list[RoutingRun]:
    """The latest routing runs, newest first."""
    return list(RoutingRun.objects.select_related("started_by").order_by("-created_at", "-pk")[:limit])
