"""Reads of the review data that grow beyond one query."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Exists, OuterRef, Q

from portal.accounts import roles
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


def comparison_counts(user: AbstractBaseUser | AnonymousUser) -> dict[str, int]:
    """How many AI drafts were compared, and how many differ significantly, among visible studies."""
    studies = roles.visible_studies(user, Study.objects.all())
    return Comparison.objects.filter(study__in=studies).aggregate(
        compared=Count("pk"), significant=Count("pk", filter=Q(significant_count__gt=0))
    )
