"""What a package covers: patient, accession numbers, date range and/or model version, resolved to studies.

The criteria combine as: the union of the studies named by patient, accession numbers and model
version, narrowed to the date range when one is given; a date range alone means every study acquired
in it. Dates are study acquisition days in the portal's time zone (as counsel reads them).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.db.models import Q, QuerySet

from inference.selectors import model_version_by_reference
from portal.core.dates import day_start
from portal.core.errors import InvalidRecord
from portal.records.models import AIOutput, Patient, Study

MAX_ACCESSIONS = 10_000


@dataclasses.dataclass(frozen=True)
class ExportScope:
    """The criteria counsel gave; stored verbatim on the job as :meth:`to_json`."""

    patient_mrn: str | None = None
    accession_numbers: tuple[str, ...] = ()
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    model: str | None = None  # "name:version"

    def to_json(self) -> dict[str, Any]:
        """JSON form (dates as ISO text); empty criteria are left out."""
        out: dict[str, Any] = {}
        if self.patient_mrn is not None:
            out["patient_mrn"] = self.patient_mrn
        if self.accession_numbers:
            out["accession_numbers"] = list(self.accession_numbers)
        if self.date_from is not None:
            out["date_from"] = self.date_from.isoformat()
        if self.date_to is not None:
            out["date_to"] = self.date_to.isoformat()
        if self.model is not None:
            out["model"] = self.model
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportScope:
        """Inverse of :meth:`to_json`."""
        return cls(
            patient_mrn=data.get("patient_mrn"),
            accession_numbers=tuple(data.get("accession_numbers") or ()),
            date_from=dt.date.fromisoformat(data["date_from"]) if data.get("date_from") else None,
            date_to=dt.date.fromisoformat(data["date_to"]) if data.get("date_to") else None,
            model=data.get("model"),
        )


def resolve(scope: ExportScope) -> QuerySet[Study]:
    """The studies the scope covers, ordered by id. Raises InvalidRecord for empty or unknown criteria.

    Unknown MRNs, accession numbers or model versions are refused, naming what is unknown: a package
    that silently leaves out what counsel asked for would be worse than none.
    """
    for name in ("date_from", "date_to"):
        value = getattr(scope, name)
        if value is not None and (not isinstance(value, dt.date) or isinstance(value, dt.datetime)):
            raise InvalidRecord(f"{name} must be a date (YYYY-MM-DD).", field=name)
    has_dates = scope.date_from is not None or scope.date_to is not None
    if scope.patient_mrn is None and not scope.accession_numbers and scope.model is None and not has_dates:
        raise InvalidRecord(
            "Give a scope: patient_mrn, accession_numbers, a date range (date_from and date_to) or a model.",
            field="scope",
        )
    if has_dates and (scope.date_from is None or scope.date_to is None):
        raise InvalidRecord("A date range needs both date_from and date_to.", field="date_to")
    if has_dates and scope.date_from > scope.date_to:  # type: ignore[operator]
        raise InvalidRecord("date_from must not be after date_to.", field="date_to")
    if len(scope.accession_numbers) > MAX_ACCESSIONS:
        raise InvalidRecord(f"At most {MAX_ACCESSIONS} accession numbers.", field="accession_numbers")

    named = Q(pk__in=[])
    if scope.patient_mrn is not None:
        patient = Patient.objects.filter(mrn=scope.patient_mrn).first()
        if patient is None:
            raise InvalidRecord("No patient has this MRN.", field="patient_mrn")
        named |= Q(patient=patient)
    if scope.accession_numbers:
        wanted = list(dict.fromkeys(scope.accession_numbers))
        found = set(
            Study.objects.filter(accession_number__in=wanted).values_list("accession_number", flat=True)
        )
        missing = [a for a in wanted if a not in found]
        if missing:
            shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
            raise InvalidRecord(f"Unknown accession numbers: {shown}.", field="accession_numbers")
        named |= Q(accession_number__in=wanted)
    if scope.model is not None:
        version = model_version_by_reference(scope.model, allow_id=False)
        named |= Q(pk__in=AIOutput.objects.filter(model_version=version).values("study_id"))

    only_dates = scope.patient_mrn is None and not scope.accession_numbers and scope.model is None
    studies = Study.objects.all() if only_dates else Study.objects.filter(named)
    if has_dates:
        studies = studies.filter(
            study_datetime__gte=day_start(scope.date_from),  # type: ignore[arg-type]
            study_datetime__lt=day_start(scope.date_to + dt.timedelta(days=1)),  # type: ignore[operator]
        )
    return studies.order_by("id")
