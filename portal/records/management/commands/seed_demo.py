"""``manage.py seed_demo --studies N --seed S``: load a synthetic department (deterministic per seed).

Radiologists become user accounts (radiologist role, no usable password: the demo logins are made
by ``run_demo``); every study gets its DICOM header, the AI draft with its provenance, the signed
report and the ground-truth labels of the differences the generator injected into the draft.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError

from portal.accounts.roles import Role
from portal.records import bulk
from portal.records.payloads import AIOutputPayload, PatientPayload, SignedReportPayload, StudyPayload
from portal.records.synthetic import Department, StudyRecord, generate_department, write_dicom

# Until the local model exists (see the inference issue), demo drafts come from the generator's
# neutral template; they are stored under this model version so they can be told apart later.
TEMPLATE_MODEL = ("concordance-template", "0.1.0")
PHI_KEYWORDS = {"PatientID", "PatientName", "PatientBirthDate", "PatientSex"}


def study_pairs(department: Department) -> Iterator[bulk.ReportPair]:
    """Translate the generator's records into the neutral payloads the importer takes."""
    for study in department.iter_studies():
        yield _pair(study)


def _when(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC)


def _pair(study: StudyRecord) -> bulk.ReportPair:
    patient = study.patient
    study_payload = StudyPayload(
        study_instance_uid=study.study_instance_uid,
        accession_number=study.accession_number,
        patient=PatientPayload(
            mrn=patient.mrn,
            family_name=patient.family_name,
            given_name=patient.given_name,
            birth_date=dt.date.fromisoformat(patient.birth_date),
            sex=patient.sex,
        ),
        modality=study.modality,
        body_part=study.body_part,
        specialty=study.specialty,
        study_datetime=_when(study.study_datetime),
        description=study.description,
        priority=study.priority,
        referring_physician=study.referring_physician,
        dicom_header={k: v for k, v in study.dicom_header().items() if k not in PHI_KEYWORDS},
    )
    generated_at = _when(study.study_datetime) + dt.timedelta(minutes=3)
    ai_output = AIOutputPayload(
        accession_number=study.accession_number,
        study_instance_uid=study.study_instance_uid,
        kind="report_draft",
        model_name=TEMPLATE_MODEL[0],
        model_version=TEMPLATE_MODEL[1],
        inputs=study.ai_inputs,
        generation_settings={"decoding": "template"},
        text=study.ai_draft_text,
        prompt_tokens=None,
        completion_tokens=None,
        latency_ms=None,
        generated_at=generated_at,
    )
    report = SignedReportPayload(
        accession_number=study.accession_number,
        study_instance_uid=study.study_instance_uid,
        radiologist_username=study.radiologist,
        sections=dict(study.signed_sections),
        text=study.signed_text,
        signed_at=_when(study.signed_at),
        status="final",
        amends_report_id=None,
    )
    labels = tuple(
        {"category": p.category, "concept": p.concept, "detail": p.detail} for p in study.perturbations
    )
    return bulk.ReportPair(study=study_payload, ai_output=ai_output, signed_report=report, labels=labels)


class Command(BaseCommand):
    """Load the synthetic demo department."""

    help = "Load N synthetic studies (deterministic for a seed) with AI drafts, signed reports and labels."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--studies", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--dicom-dir",
            type=Path,
            default=None,
            help="also write one DICOM file per study there (headers + a tiny image)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 < options["studies"] <= 1_000_000:
            raise CommandError("--studies must be between 1 and 1,000,000")
        started = time.monotonic()
        try:
            department = generate_department(studies=options["studies"], seed=options["seed"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        group, _ = Group.objects.get_or_create(name=Role.RADIOLOGIST.value)
        for radiologist in department.radiologists:
            user, created = User.objects.get_or_create(
                username=radiologist.username,
                defaults={"first_name": radiologist.first_name, "last_name": radiologist.last_name},
            )
            if created:
                user.set_unusable_password()
                user.save()
            user.groups.add(group)
        counts = bulk.import_pairs(study_pairs(department))
        if options["dicom_dir"] is not None:
            options["dicom_dir"].mkdir(parents=True, exist_ok=True)
            for study in department.iter_studies():
                write_dicom(study, study.patient, options["dicom_dir"] / f"{study.accession_number}.dcm")
        self.stdout.write(
            f"seeded {counts.studies} studies ({counts.skipped} already present), "
            f"{counts.ai_outputs} AI outputs, {counts.signed_reports} signed reports "
            f"in {time.monotonic() - started:.1f} s"
        )
