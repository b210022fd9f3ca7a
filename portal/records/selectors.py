"""Reads of the clinical record that grow beyond one query live here."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from portal.accounts import roles
from portal.records.models import AIOutput, SignedReport, Study


def record_counts(user: AbstractBaseUser | AnonymousUser) -> dict[str, int]:
    """How many studies, AI outputs and signed reports ``user`` may see (three COUNT queries)."""
    studies = roles.visible_studies(user, Study.objects.all())
    return {
        "studies": studies.count(),
        "ai_outputs": AIOutput.objects.filter(study__in=studies).count(),
        "signed_reports": SignedReport.objects.filter(study__in=studies).count(),
    }
