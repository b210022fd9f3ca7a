"""Which studies a re-inference run covers, frozen at creation and split into chunks.

A study belongs to the cohort when it has a clinical AI output of the run's kind (the original) and
an original ``final`` signed report (the reference), and passes the filter. When a study has several
originals of the kind, the one the run's own model version produced is preferred (so reproduction
can be checked), else the latest. Sampling is seeded: the same cohort, size and seed always pick
the same studies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re
from collections.abc import Sequence
from typing import Any

from django.db.models import Case, Exists, IntegerField, OuterRef, QuerySet, Subquery, Value, When

from portal.core.dates import day_start
from portal.core.errors import InvalidRecord
from portal.records.models import (
    AIOutput,
    AIOutputKind,
    AIOutputOrigin,
    ModelVersion,
    ReportStatus,
    SignedReport,
    Specialty,
    Study,
)

#: Modality codes as DICOM writes them (CR, CT, MR, US, MG, ...).
MODALITY_PATTERN = re.compile(r"^[A-Za-z0-9]{1,16}$")
#: Names of the common DICOM modality codes (PS3.3 C.7.3.1.1.1). "XR" is no DICOM code: plain films are
#: CR or DX, which is why the launch form lists the codes the studies carry instead of a free text box.
MODALITY_NAMES = {
    "CR": "Computed radiography",
    "DX": "Digital radiography",
    "CT": "Computed tomography",
    "MR": "Magnetic resonance",
    "US": "Ultrasound",
    "MG": "Mammography",
    "NM": "Nuclear medicine",
    "PT": "Positron emission tomography",
    "XA": "X-ray angiography",
    "RF": "Radiofluoroscopy",
    "IO": "Intra-oral radiography",
    "PX": "Panoramic X-ray",
    "OT": "Other",
}
#: Distinct modality values read from the studies; a department has a handful.
MAX_MODALITIES = 200
USERNAME_PATTERN = re.compile(r"^[\w.@+-]{1,150}$")
MAX_SAMPLE = 1_000_000
MAX_SEED = 2**63 - 1

#: One cohort entry: the study, its original AI output and the signed report it is judged against.
Item = tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class CohortFilter:
    """The filter a run was created with; every field optional. Dates are inclusive, study dates."""

    specialty: str = ""
    modality: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    radiologist: str = ""
    sample: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.specialty and self.specialty not in Specialty.values:
            raise InvalidRecord(f"specialty must be one of {', '.join(Specialty.values)}", field="specialty")
        if self.modality and not MODALITY_PATTERN.match(self.modality):
            raise InvalidRecord(
                "modality must be a DICOM modality code (letters and digits)", field="modality"
            )
        if self.radiologist and not USERNAME_PATTERN.match(self.radiologist):
            raise InvalidRecord("radiologist must be a user name", field="radiologist")
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, dt.date) or isinstance(value, dt.datetime)):
                raise InvalidRecord(f"{name} must be a date (YYYY-MM-DD)", field=name)
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise InvalidRecord("date_from must not be after date_to", field="date_from")
        if self.sample is not None and (
            isinstance(self.sample, bool)
            or not isinstance(self.sample, int)
            or not 1 <= self.sample <= MAX_SAMPLE
        ):
            raise InvalidRecord(f"sample must be an integer from 1 to {MAX_SAMPLE}", field="sample")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise InvalidRecord("seed must be a non-negative integer", field="seed")

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored on the run (dates as ISO text, unset fields left out)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value in ("", None):
                continue
            out[field.name] = value.isoformat() if isinstance(value, dt.date) else value
        return out


def modalities_in_data() -> list[str]:
    """The modality codes the stored studies carry, upper-cased and sorted: the cohort filter's list."""
    codes = (
        Study.objects.exclude(modality="")
        .order_by()
        .values_list("modality", flat=True)
        .distinct()[:MAX_MODALITIES]
    )
    return sorted({code.upper() for code in codes if MODALITY_PATTERN.match(code)})


def modality_label(code: str) -> str:
    """``"CR — Computed radiography"``; an unnamed code as it is."""
    name = MODALITY_NAMES.get(code.upper())
    return f"{code} — {name}" if name else code


def cohort_queryset(*, model_version: ModelVersion, kind: str, cohort: CohortFilter) -> QuerySet[Study]:
    """Studies of the cohort, annotated with ``original_id`` and ``reference_id``, in id order."""
    if kind not in AIOutputKind.values:
        raise InvalidRecord(f"kind must be one of {', '.join(AIOutputKind.values)}", field="kind")
    originals = (
        AIOutput.objects.filter(study=OuterRef("pk"), kind=kind, origin=AIOutputOrigin.CLINICAL)
        .annotate(
            own=Case(
                When(model_version=model_version, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("own", "-generated_at", "-pk")
        .values("pk")[:1]
    )
    finals = SignedReport.objects.filter(study=OuterRef("pk"), status=ReportStatus.FINAL).values("pk")[:1]
    studies = Study.objects.all()
    if cohort.specialty:
        studies = studies.filter(specialty=cohort.specialty)
    if model_version.specialties:
        # A model trained for some specialties is only judged on those studies.
        studies = studies.filter(specialty__in=list(model_version.specialties))
    if cohort.modality:
        studies = studies.filter(modality__iexact=cohort.modality)
    if cohort.date_from and cohort.date_from > dt.date.min:
        studies = studies.filter(study_datetime__gte=day_start(cohort.date_from))
    if cohort.date_to and cohort.date_to < dt.date.max:
        # Year 9999-12-31 has no next day: it is simply no upper bound.
        studies = studies.filter(study_datetime__lt=day_start(cohort.date_to + dt.timedelta(days=1)))
    if cohort.radiologist:
        studies = studies.filter(
            Exists(
                SignedReport.objects.filter(
                    study=OuterRef("pk"), status=ReportStatus.FINAL, radiologist__username=cohort.radiologist
                )
            )
        )
    return (
        studies.annotate(original_id=Subquery(originals), reference_id=Subquery(finals))
        .filter(original_id__isnull=False, reference_id__isnull=False)
        .order_by("pk")
    )


def select_cohort(*, model_version: ModelVersion, kind: str, cohort: CohortFilter) -> list[Item]:
    """The frozen cohort: ``(study, original output, signed report)`` triples in study id order."""
    rows: list[Item] = [
        (study_id, original_id, reference_id)
        for study_id, original_id, reference_id in cohort_queryset(
            model_version=model_version, kind=kind, cohort=cohort
        ).values_list("pk", "original_id", "reference_id")
    ]
    return sample(rows, cohort.sample, cohort.seed)


def sample(rows: Sequence[Item], size: int | None, seed: int) -> list[Item]:
    """A seeded random sample of ``size`` rows (all rows when ``size`` is None or not smaller), id order."""
    if size is None or size >= len(rows):
        return list(rows)
    picked = random.Random(seed).sample(list(rows), size)
    return sorted(picked)


def split(items: Sequence[Item], size: int) -> list[list[Item]]:
    """Consecutive chunks of at most ``size`` items (the last one may be shorter)."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    return [list(items[start : start + size]) for start in range(0, len(items), size)]
