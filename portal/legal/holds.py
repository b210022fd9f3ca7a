"""Which studies a legal hold covers: the ONE answer, used by the purge, the legal page and packages.

A hold covers a study by its patient (patient scope), by naming it (studies scope) or by the study's
acquisition date (date-range scope, both ends inclusive, dates read in the portal's time zone
``settings.TIME_ZONE`` as counsel reads them; an undated study is covered by no date-range hold).

The released-hold rule, decided once, as counsel reads it: a released hold preserves nothing any
more, so the retention purge and the "held" flag of the legal page ask for *active* holds only
(``include_released=False``); but it stays part of the matter's history, so an export package lists
every hold that ever covered its studies, released ones too (``include_released=True``), with the
audit events of their placing and release.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from django.db.models import QuerySet
from django.utils import timezone

from portal.legal.models import HoldScope, LegalHold
from portal.records.models import Study

#: Studies per membership query (keeps the IN list well under every database's parameter limit).
CHUNK = 500


class Dated(Protocol):
    """What coverage needs of a study: its id, its patient and when it was acquired."""

    pk: int
    patient_id: int
    study_datetime: object


def active_holds() -> QuerySet[LegalHold]:
    """Holds not yet released."""
    return LegalHold.objects.filter(released_at__isnull=True)


def _holds(include_released: bool) -> QuerySet[LegalHold]:
    return LegalHold.objects.all() if include_released else active_holds()


def holds_covering(studies: Sequence[Dated], *, include_released: bool = False) -> dict[int, list[int]]:
    """For each study (by id), the ids of the holds that cover it, ascending; three queries per 500.

    Active holds only unless ``include_released`` (see the module's released-hold rule).
    """
    holds = _holds(include_released)
    covered: dict[int, set[int]] = {study.pk: set() for study in studies}
    by_patient: dict[int, set[int]] = {}
    for hold_id, patient_id in holds.filter(
        scope=HoldScope.PATIENT, patient_id__in={s.patient_id for s in studies}
    ).values_list("id", "patient_id"):
        by_patient.setdefault(patient_id, set()).add(hold_id)
    ranges = list(holds.filter(scope=HoldScope.DATE_RANGE).values_list("id", "date_from", "date_to"))
    ids = list(covered)
    for start in range(0, len(ids), CHUNK):
        for hold_id, study_id in LegalHold.studies.through.objects.filter(
            legalhold__in=holds.filter(scope=HoldScope.STUDIES), study_id__in=ids[start : start + CHUNK]
        ).values_list("legalhold_id", "study_id"):
            covered[study_id].add(hold_id)
    for study in studies:
        covered[study.pk] |= by_patient.get(study.patient_id, set())
        if study.study_datetime is not None:
            day = timezone.localtime(study.study_datetime).date()
            covered[study.pk].update(hold_id for hold_id, begin, end in ranges if begin <= day <= end)
    return {study_id: sorted(hold_ids) for study_id, hold_ids in covered.items()}


def hold_ids_covering(study_ids: Iterable[int], *, include_released: bool = False) -> set[int]:
    """The ids of the holds that cover any of ``study_ids`` (for a package's scope of any size)."""
    ids = list(study_ids)
    found: set[int] = set()
    for start in range(0, len(ids), CHUNK):
        studies = list(
            Study.objects.filter(pk__in=ids[start : start + CHUNK]).only("id", "patient_id", "study_datetime")
        )
        for hold_ids in holds_covering(studies, include_released=include_released).values():
            found.update(hold_ids)
    return found
