"""How ingestion finds the stored rows a payload names: studies by accession number or UID, patients by
MRN. Each is read once per ingest unit (:mod:`portal.records.units`), however often a message or
Bundle names it; rows the unit creates are remembered with :func:`remember_study`.
"""

from __future__ import annotations

from django.db import models

from portal.core.errors import RecordConflict, RecordNotFound
from portal.records.ingest.payloads import StudyPayload
from portal.records.models import Patient, Study
from portal.records.units import cached, remember, remembered


def patient_by_mrn(mrn: str) -> Patient | None:
    """The stored patient with this MRN (read once per ingest unit)."""
    return remembered(("patient", mrn), lambda: Patient.objects.filter(mrn=mrn).first())


def study_by_keys(payload: StudyPayload) -> Study | None:
    """The stored study this payload describes, by accession number, else by StudyInstanceUID."""
    accession, uid = payload.accession_number, payload.study_instance_uid
    if accession and uid:
        return _study_by_either(accession, uid)
    if accession:
        return _study_by("accession_number", accession)
    if uid:
        return _study_by("study_instance_uid", uid)
    return None


def _study_by_either(accession: str, uid: str) -> Study | None:
    """By accession number, else by UID: one query for both keys (a new study costs one lookup)."""
    study = cached(("study", "accession_number", accession))
    if study is None:
        found = list(
            Study.objects.select_related("patient").filter(
                models.Q(accession_number=accession) | models.Q(study_instance_uid=uid)
            )[:2]
        )
        study = next((s for s in found if s.accession_number == accession), found[0] if found else None)
        if study is not None:
            remember_study(study)
    return study


def _study_by(key: str, value: str) -> Study | None:
    """The study with this accession number or UID, with its patient (read once per ingest unit)."""
    return remembered(
        ("study", key, value), lambda: Study.objects.select_related("patient").filter(**{key: value}).first()
    )


def created_here(study: Study) -> bool:
    """Did the open unit create this study? Then its only outputs and reports are the unit's own
    (no other transaction can reference a study it cannot see yet): nothing to look up for them."""
    return cached(("created", "study", study.pk)) is not None


def mark_created(study: Study) -> None:
    """Note that the open unit created this study (see :func:`created_here`), under both its keys."""
    remember(("created", "study", study.pk), True)
    remember_study(study)


def remember_study(study: Study) -> None:
    """Keep a study the unit found or created under both its keys."""
    for key in ("accession_number", "study_instance_uid"):
        if getattr(study, key):
            remember(("study", key, getattr(study, key)), study)


def unscheduled_match(payload: StudyPayload) -> Study | None:
    """A study kept without accession that this RIS message (which has no UID) must be joining.

    The rule: same patient (MRN), same modality and same study day, among studies still without an
    accession; joined only when exactly one study qualifies, since a wrong join would put a report
    on another examination. Anything else creates a new study.
    """
    if payload.study_instance_uid or not payload.accession_number or payload.study_datetime is None:
        return None
    day = payload.study_datetime.date()
    candidates = list(
        Study.objects.select_related("patient").filter(
            accession_number__isnull=True,
            patient__mrn=payload.patient.mrn,
            modality=payload.modality,
            study_datetime__date=day,
        )[:2]
    )
    return candidates[0] if len(candidates) == 1 else None


def find_study(accession_number: str, study_instance_uid: str | None) -> Study:
    """The study an AI output or report names (accession first); refused when unknown or mismatched."""
    study = None
    if accession_number:
        study = _study_by("accession_number", accession_number)
    if study is None and study_instance_uid:
        study = _study_by("study_instance_uid", study_instance_uid)
    if study is None:
        raise RecordNotFound(
            "No study with this accession number; send the study first.", field="accession_number"
        )
    if study_instance_uid and study.study_instance_uid and study.study_instance_uid != study_instance_uid:
        raise RecordConflict(
            "Accession number and Study Instance UID name different studies.", field="study_instance_uid"
        )
    return study
