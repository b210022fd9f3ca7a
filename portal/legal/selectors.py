"""Reads of the legal page: study search, the hold list and recent export packages.

Reads of patient data are accesses: the search and the hold list are audited here, in the same place
for every caller (the API's hold list audits the same action).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from audit import log as audit
from portal.legal.export import scope as export_scope
from portal.legal.export.scope import ExportScope
from portal.legal.holds import holds_covering
from portal.legal.models import ExportPackage, LegalHold
from portal.records.models import Study

SEARCH_LIMIT = 200
HOLDS_SHOWN = 50
EXPORTS_SHOWN = 25


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The first studies found (each flagged ``is_held`` by an active hold) and how many matched."""

    studies: list[Study]
    count: int


def legal_search(
    *, criteria: Mapping[str, Any], actor: AbstractBaseUser, context: audit.AuditContext
) -> SearchResult:
    """Studies by patient MRN, accession numbers and/or study dates; audited (criteria names, no MRN).

    Raises :class:`~portal.core.errors.InvalidRecord` for empty, contradictory or unknown criteria.
    """
    studies_qs = export_scope.resolve(
        ExportScope(
            patient_mrn=criteria.get("patient_mrn"),
            accession_numbers=tuple(criteria.get("accession_numbers", ())),
            date_from=criteria.get("date_from"),
            date_to=criteria.get("date_to"),
        )
    )
    count = studies_qs.count()
    studies = list(studies_qs.select_related("patient").order_by("study_datetime", "pk")[:SEARCH_LIMIT])
    with transaction.atomic():
        audit.record(
            "legal.search",
            actor=actor,
            context=context,
            object_type="study",
            # Which criteria and which studies were shown; the MRN itself stays out of the log.
            details={"criteria": sorted(criteria), "matches": count, "studies": [s.pk for s in studies]},
        )
    held = holds_covering(studies) if studies else {}
    for study in studies:
        study.is_held = bool(held[study.pk])  # type: ignore[attr-defined]
    return SearchResult(studies, count)


def holds_listed(*, actor: AbstractBaseUser, context: audit.AuditContext) -> list[LegalHold]:
    """The latest holds with their people, patient and studies; audited (the list names patients)."""
    holds = list(
        LegalHold.objects.select_related("placed_by", "released_by", "patient").prefetch_related("studies")[
            :HOLDS_SHOWN
        ]
    )
    with transaction.atomic():
        audit.record(
            "legal_hold.list",
            actor=actor,
            context=context,
            object_type="legal_hold",
            details={"ids": [hold.pk for hold in holds]},
        )
    return holds


def recent_exports() -> list[ExportPackage]:
    """The latest export packages, newest first, with who asked for them."""
    return list(ExportPackage.objects.select_related("requested_by").order_by("-pk")[:EXPORTS_SHOWN])
