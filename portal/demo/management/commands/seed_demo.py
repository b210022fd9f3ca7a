"""``manage.py seed_demo --studies N --seed S``: load a synthetic department (deterministic per seed).

Radiologists become user accounts (radiologist role, no usable password: the demo logins are made
by ``run_demo``); every study gets its DICOM header, the AI draft with its provenance, the signed
report and the ground-truth labels of the differences the generator injected into the AI's inputs.

When a model ships with the project (``inference/artifacts/``), it is registered and the demo's
report drafts are real outputs of it (``--drafts auto``, the default; ``--drafts model`` insists on
it): greedy and batch-invariant, so re-inference with the same version must reproduce every one, and
the model's own mistakes reach the QA queue beside the injected ones. ``--drafts template`` keeps the
generator's neutral template text (no model needed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import django
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError

from audit.log import SYSTEM
from inference import registry, runtime
from portal.accounts.roles import Role
from portal.demo.synthetic import Department, StudyRecord, generate_department, write_dicom
from portal.records import bulk
from portal.records.ingest.payloads import AIOutputPayload, PatientPayload, SignedReportPayload, StudyPayload
from portal.records.models import Study

# Without a shipped model (or with --drafts template), demo drafts come from the generator's neutral
# template; they are stored under this model version so they can be told apart.
TEMPLATE_MODEL = ("concordance-template", "0.1.0")
# Studies per runtime.generate call (the runtime micro-batches inside it); also the progress step.
DRAFT_CHUNK = 256
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


@dataclasses.dataclass
class DraftCounts:
    """How the demo drafts were written."""

    model: int = 0
    template: int = 0
    seconds: float = 0.0


def model_drafts(
    pairs: list[bulk.ReportPair], counts: DraftCounts, processes: int = 1
) -> list[bulk.ReportPair]:
    """The pairs with their report drafts written by the active model serving each study's specialty.

    A study no model serves, whose prompt does not fit the model's context, or for which the model
    writes nothing keeps its template draft (counted): the seed never fails on one study. With
    ``processes`` > 1 the chunks are drafted in that many fresh processes; greedy decoding is batch
    invariant, so the drafts are byte-identical to a single-process seed.
    """
    started = time.perf_counter()
    present = set(Study.objects.values_list("accession_number", flat=True))  # skipped by the import
    serving: dict[str, Any] = {}
    by_model: dict[int, tuple[Any, list[int]]] = {}
    for index, pair in enumerate(pairs):
        if pair.ai_output is None or pair.study.accession_number in present:
            continue
        specialty = pair.study.specialty or ""
        if specialty not in serving:
            serving[specialty] = registry.active_version_for(specialty=specialty, kind="report_draft")
        if serving[specialty] is not None:
            by_model.setdefault(serving[specialty].pk, (serving[specialty], []))[1].append(index)
    jobs = [
        (mv, indexes[start : start + DRAFT_CHUNK])
        for mv, indexes in by_model.values()
        for start in range(0, len(indexes), DRAFT_CHUNK)
    ]
    inputs = [(mv, [pairs[i].ai_output.inputs for i in chunk]) for mv, chunk in jobs]
    result = list(pairs)
    for (mv, chunk), generations in zip(jobs, _draft_chunks(inputs, processes), strict=True):
        settings = runtime.generation_settings(mv)
        for index, generation in zip(chunk, generations, strict=True):
            if generation is None or not generation.text.strip():
                continue
            pair = pairs[index]
            draft = dataclasses.replace(
                pair.ai_output,
                model_name=mv.name,
                model_version=mv.version,
                generation_settings=settings,
                text=generation.text,
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=generation.completion_tokens,
                latency_ms=generation.latency_ms,
            )
            result[index] = dataclasses.replace(pair, ai_output=draft)
            counts.model += 1
    counts.template = len(pairs) - counts.model
    counts.seconds = time.perf_counter() - started
    return result


def _draft_chunks(
    jobs: list[tuple[Any, list[Any]]], processes: int
) -> Iterator[list[runtime.Generation | None]]:
    """Draft each (model version, inputs) job, in order: here, or in a pool of fresh processes.

    Spawned, not forked: a forked child would share the parent's database connection. The children
    only read the model's files; they never touch the database.
    """
    if processes <= 1 or len(jobs) <= 1:
        yield from (_generate(mv, chunk) for mv, chunk in jobs)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=django.setup) as pool:
        yield from pool.map(_generate_job, jobs)


def _generate_job(job: tuple[Any, list[Any]]) -> list[runtime.Generation | None]:
    """One pool job (a top-level function, so that it pickles)."""
    return _generate(*job)


def _generate(mv: Any, inputs: list[Any]) -> list[runtime.Generation | None]:
    """One batch; when one prompt is too long for the model, the others are drafted one by one."""
    try:
        return list(runtime.generate(mv, "report_draft", inputs))
    except runtime.PromptTooLong:
        drafted: list[runtime.Generation | None] = []
        for one in inputs:
            try:
                drafted.append(runtime.generate(mv, "report_draft", [one])[0])
            except runtime.PromptTooLong:
                drafted.append(None)
        return drafted


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
        parser.add_argument(
            "--drafts",
            choices=["auto", "model", "template"],
            default="auto",
            help="who writes the AI report drafts: the shipped model (model), the generator's template "
            "(template), or the model when one is shipped (auto, the default)",
        )
        parser.add_argument(
            "--draft-processes",
            type=int,
            default=min(os.cpu_count() or 1, 4),
            help="processes drafting with the model at once (default: the cores, at most 4)",
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
        pairs = list(study_pairs(department))
        drafts = DraftCounts(template=len(pairs))
        if options["drafts"] != "template":
            shipped = registry.register_builtin_models(context=SYSTEM)
            if not shipped and options["drafts"] == "model":
                raise CommandError("No model is shipped under inference/artifacts/; use --drafts template.")
            if shipped:
                pairs = model_drafts(pairs, drafts, processes=max(1, options["draft_processes"]))
        counts = bulk.import_pairs(pairs)
        if options["dicom_dir"] is not None:
            options["dicom_dir"].mkdir(parents=True, exist_ok=True)
            for study in department.iter_studies():
                write_dicom(study, study.patient, options["dicom_dir"] / f"{study.accession_number}.dcm")
        self.stdout.write(
            f"seeded {counts.studies} studies ({counts.skipped} already present), "
            f"{counts.ai_outputs} AI outputs ({drafts.model} drafted by the model in {drafts.seconds:.1f} s, "
            f"{drafts.template} from the template), {counts.signed_reports} signed reports "
            f"in {time.monotonic() - started:.1f} s"
        )
