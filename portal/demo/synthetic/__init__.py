"""A deterministic synthetic radiology department: patients, studies, signed reports, AI drafts.

No real PHI: patient names are made of obviously artificial parts and UIDs live under a synthetic root.
Given ``(studies, seed)`` the output is byte-identical across runs and machines.

Typical use::

    department = generate_department(studies=2000, seed=1)
    for study in department.iter_studies():
        ...  # persist study, study.patient, study.ai_draft_text, study.signed_text
    pairs = list(labelled_pairs(department))  # the discrepancy engine's evaluation set

Nothing here imports Django; ``seed_demo`` persists the records.
"""

from .catalog import Catalog, Pattern, Protocol, load_catalog
from .dicom import build_dataset, write_dicom
from .generate import PERIOD_END, PERIOD_START, UID_ROOT, generate_department, labelled_pairs
from .models import (
    MODALITIES,
    PERTURBATION_CATEGORIES,
    SPECIALTIES,
    Department,
    Finding,
    PatientRecord,
    Perturbation,
    Radiologist,
    ReportStyle,
    StudyRecord,
)
from .render import HEDGE_CUES, render_ai_draft

__all__ = [
    "HEDGE_CUES",
    "MODALITIES",
    "PERIOD_END",
    "PERIOD_START",
    "PERTURBATION_CATEGORIES",
    "SPECIALTIES",
    "UID_ROOT",
    "Catalog",
    "Department",
    "Finding",
    "PatientRecord",
    "Pattern",
    "Perturbation",
    "Protocol",
    "Radiologist",
    "ReportStyle",
    "StudyRecord",
    "build_dataset",
    "generate_department",
    "labelled_pairs",
    "load_catalog",
    "render_ai_draft",
    "write_dicom",
]
