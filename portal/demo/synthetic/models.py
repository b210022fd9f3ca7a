"""Typed, immutable records of the synthetic department.

Everything here is plain data: no Django, no database. The ``seed_demo`` command maps these onto the
models in :mod:`portal.records.models`; the discrepancy engine's evaluation reads
:func:`portal.demo.synthetic.labelled_pairs`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

Specialty = Literal["chest", "neuro", "musculoskeletal", "abdominal", "breast"]
Modality = Literal["CR", "CT", "MR", "US", "MG"]
Laterality = Literal["left", "right", "bilateral"]
Severity = Literal["mild", "moderate", "severe", "small", "large"]
Change = Literal["new", "increased", "decreased", "stable", "resolved"]
Certainty = Literal["definite", "possible"]
Priority = Literal["routine", "urgent", "stat"]
Sex = Literal["M", "F", "O"]
PerturbationCategory = Literal[
    "false_finding",
    "missed_finding",
    "location",
    "severity",
    "comparison_added",
    "comparison_omitted",
    "certainty",
]

SPECIALTIES: tuple[str, ...] = ("chest", "neuro", "musculoskeletal", "abdominal", "breast")
MODALITIES: tuple[str, ...] = ("CR", "CT", "MR", "US", "MG")
PERTURBATION_CATEGORIES: tuple[str, ...] = (
    "false_finding",
    "missed_finding",
    "location",
    "severity",
    "comparison_added",
    "comparison_omitted",
    "certainty",
)
INSTITUTION_NAME = "Concordance Synthetic Hospital"
# Secondary Capture Image Storage: the honest SOP class for a picture nobody acquired.
SECONDARY_CAPTURE_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.7"


@dataclass(frozen=True, slots=True)
class Finding:
    """One structured imaging finding.

    ``location`` is the anatomic site with the side already worded in (``"right lower lobe"``,
    ``"upper outer quadrant of the left breast"``); ``laterality`` repeats the side as a field so it can
    be filtered on. A bilateral finding has no location. ``change`` is set only when the study has a
    prior; ``critical`` marks a finding that must be phoned through (an acute, unstable one).
    """

    concept: str
    display: str
    laterality: Laterality | None
    location: str | None
    size_mm: int | None
    severity: Severity | None
    change: Change | None
    certainty: Certainty
    critical: bool

    def to_dict(self) -> dict[str, Any]:
        """The finding as the upstream imaging AI reports it (JSON-ready, keys in field order)."""
        return {
            "concept": self.concept,
            "display": self.display,
            "laterality": self.laterality,
            "location": self.location,
            "size_mm": self.size_mm,
            "severity": self.severity,
            "change": self.change,
            "certainty": self.certainty,
            "critical": self.critical,
        }


@dataclass(frozen=True, slots=True)
class Perturbation:
    """A deliberate error put into the AI's inputs: the ground-truth label of one discrepancy.

    ``concept`` names the finding affected (for ``false_finding`` the one invented); ``detail`` is a
    short human-readable account such as ``"left -> right"`` or ``"12 mm -> 20 mm"``.
    """

    category: PerturbationCategory
    concept: str
    detail: str


@dataclass(frozen=True, slots=True)
class ReportStyle:
    """How one radiologist writes: the traits that make signed reports differ from the AI's template.

    ``hedge_rate`` is the share of findings this radiologist calls only ``possible``;
    ``hedge_phrase`` is how the hedge is worded (``"possible"``, ``"cannot exclude"``,
    ``"suspicious for"`` or ``"questionable"``).
    """

    verbosity: Literal["terse", "verbose"]
    negation: Literal["no", "there_is_no", "no_evidence_of"]
    numbered_impressions: bool
    size_unit: Literal["mm", "cm"]
    hedge_rate: float
    hedge_phrase: Literal["possible", "cannot exclude", "suspicious for", "questionable"]
    header_case: Literal["upper", "title"]
    indication_header: Literal["indication", "clinical history"]
    uses_abbreviations: bool
    date_format: Literal["iso", "us"]


@dataclass(frozen=True, slots=True)
class Radiologist:
    """A reading radiologist (staff, not a patient) with the specialties they cover and a style."""

    username: str
    first_name: str
    last_name: str
    specialties: tuple[Specialty, ...]
    style: ReportStyle

    @property
    def display_name(self) -> str:
        """Name as signed under a report, e.g. ``"Dr. Amara Okafor"``."""
        return f"Dr. {self.first_name} {self.last_name}"


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """A synthetic patient. Family names are built from obviously artificial parts (``Mockridge``)."""

    mrn: str
    family_name: str
    given_name: str
    birth_date: str  # ISO date, e.g. "1961-04-23"
    sex: Sex

    @property
    def dicom_name(self) -> str:
        """PatientName as DICOM writes a person name: ``Family^Given``."""
        return f"{self.family_name}^{self.given_name}"


@dataclass(frozen=True, slots=True)
class StudyRecord:
    """One study with its truth, its signed report, the AI's (possibly perturbed) inputs and draft.

    ``signed_sections`` has the keys ``indication``, ``comparison``, ``findings`` and ``impression``;
    ``signed_text`` joins them under headers in the radiologist's style. ``ai_inputs`` is what the
    drafting model considered (see :func:`portal.demo.synthetic.render_ai_draft`) and
    ``ai_draft_text`` is its rendering. ``laterality`` is the side of a one-sided study (a left knee),
    ``None`` otherwise. Dicts are plain ``dict`` so they serialise straight to JSON; treat them as
    read-only.
    """

    study_instance_uid: str
    accession_number: str
    patient_mrn: str
    modality: Modality
    body_part: str
    laterality: Laterality | None
    specialty: Specialty
    study_datetime: str  # ISO 8601, UTC, e.g. "2025-03-04T14:22:00+00:00"
    description: str
    priority: Priority
    referring_physician: str  # "Given Family"
    radiologist: str  # Radiologist.username
    indication: str
    prior_accession: str | None
    true_findings: tuple[Finding, ...]
    signed_sections: dict[str, str]
    signed_text: str
    signed_at: str  # ISO 8601, UTC, after study_datetime
    ai_inputs: dict[str, Any]
    ai_draft_text: str
    perturbations: tuple[Perturbation, ...]
    patient: PatientRecord = field(repr=False)

    @property
    def series_instance_uid(self) -> str:
        """The one series of the synthetic study (the study UID with ``.1`` appended)."""
        return f"{self.study_instance_uid}.1"

    @property
    def sop_instance_uid(self) -> str:
        """The one instance of that series."""
        return f"{self.study_instance_uid}.1.1"

    @property
    def is_normal(self) -> bool:
        """True when the truth has no findings at all."""
        return not self.true_findings

    @property
    def is_perturbed(self) -> bool:
        """True when the AI's inputs were altered, i.e. the draft should show a discrepancy."""
        return bool(self.perturbations)

    def dicom_header(self) -> dict[str, str]:
        """The subset of the DICOM header that QA needs, keyed by DICOM keyword, values as DICOM text.

        Dates are ``YYYYMMDD``, times ``HHMMSS``, person names ``Family^Given``. The SOP class is
        Secondary Capture Image Storage, which is what :func:`write_dicom` writes.
        """
        date, time = self.study_datetime[:10], self.study_datetime[11:19]
        given, family = self.referring_physician.rsplit(" ", 1)
        return {
            "PatientID": self.patient.mrn,
            "PatientName": self.patient.dicom_name,
            "PatientBirthDate": self.patient.birth_date.replace("-", ""),
            "PatientSex": self.patient.sex,
            "StudyInstanceUID": self.study_instance_uid,
            "AccessionNumber": self.accession_number,
            "Modality": self.modality,
            "BodyPartExamined": self.body_part,
            "StudyDate": date.replace("-", ""),
            "StudyTime": time.replace(":", ""),
            "StudyDescription": self.description,
            "ReferringPhysicianName": f"{family}^{given}",
            "SeriesInstanceUID": self.series_instance_uid,
            "SOPInstanceUID": self.sop_instance_uid,
            "SOPClassUID": SECONDARY_CAPTURE_SOP_CLASS_UID,
            "InstitutionName": INSTITUTION_NAME,
        }


@dataclass(frozen=True, slots=True)
class Department:
    """A whole synthetic department: who reads, who is imaged, and every study in time order."""

    seed: int
    radiologists: tuple[Radiologist, ...]
    patients: tuple[PatientRecord, ...]
    studies: tuple[StudyRecord, ...]

    def iter_studies(self) -> Iterator[StudyRecord]:
        """Studies in chronological order (a prior always comes before the study that cites it)."""
        return iter(self.studies)

    def patient(self, mrn: str) -> PatientRecord:
        """The patient with this MRN; ``KeyError`` if there is none."""
        for patient in self.patients:
            if patient.mrn == mrn:
                return patient
        raise KeyError(mrn)

    def radiologist(self, username: str) -> Radiologist:
        """The radiologist with this username; ``KeyError`` if there is none."""
        for radiologist in self.radiologists:
            if radiologist.username == username:
                return radiologist
        raise KeyError(username)
