"""Bulk import of report pairs (study + AI output + signed report): seeding and historical back-loads.

The same rows and audit events as the per-record services, written in batches: a batch is one
transaction, studies already present are skipped (so a re-run is idempotent), and every created row
gets its audit event in that same transaction.

On PostgreSQL the rows and their audit events are written with ``COPY`` (:func:`_insert`): psycopg
binds the arrays of a ``bulk_create`` on the client, value by value, which was two thirds of an
import's time. The rows are the same (each value prepared by its field, primary keys drawn from the
table's own identity sequence); the immutability triggers (UPDATE, DELETE, TRUNCATE) and the unique
and CHECK constraints hold for COPY as for INSERT. Elsewhere (SQLite) ``bulk_create`` writes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from itertools import islice

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, connections, transaction
from django.db.models import Model

from audit.bulk import copy_values, record_many
from audit.log import SYSTEM, AuditContext
from portal.records.clinicians import clinician_for_account
from portal.records.ingest.payloads import AIOutputPayload, SignedReportPayload, StudyPayload
from portal.records.models import (
    AIOutput,
    AIOutputOrigin,
    Clinician,
    GroundTruthLabel,
    ModelVersion,
    Patient,
    SignedReport,
    Study,
    sha256_text,
)
from portal.records.services import compose_text, payload_hash, to_jsonable

User = get_user_model()


@dataclasses.dataclass(frozen=True)
class ReportPair:
    """One study with its AI output, its signed report and (for synthetic data) its known differences."""

    study: StudyPayload
    ai_output: AIOutputPayload | None
    signed_report: SignedReportPayload | None
    labels: tuple[dict, ...] = ()


@dataclasses.dataclass
class ImportCounts:
    """What a bulk import did."""

    studies: int = 0
    skipped: int = 0
    ai_outputs: int = 0
    signed_reports: int = 0


def import_pairs(
    pairs: Iterable[ReportPair],
    *,
    actor: AbstractBaseUser | None = None,
    context: AuditContext = SYSTEM,
    batch_size: int = 500,
) -> ImportCounts:
    """Import report pairs in batches of ``batch_size`` (one transaction each)."""
    counts = ImportCounts()
    for batch in _batches(pairs, batch_size):
        _import_batch(batch, actor=actor, context=context, counts=counts)
    return counts


def _batches(items: Iterable[ReportPair], size: int) -> Iterator[list[ReportPair]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


@transaction.atomic
def _import_batch(
    batch: list[ReportPair], *, actor: AbstractBaseUser | None, context: AuditContext, counts: ImportCounts
) -> None:
    """Write one batch (studies not stored yet) and its audit events in ONE transaction."""
    present = set(
        Study.objects.filter(accession_number__in=[p.study.accession_number for p in batch]).values_list(
            "accession_number", flat=True
        )
    )
    fresh = [p for p in batch if p.study.accession_number not in present]
    counts.skipped += len(batch) - len(fresh)
    if not fresh:
        return
    events: list[dict] = []
    patients = _patients(fresh, events)
    studies = _studies(fresh, patients, events)
    counts.studies += len(studies)
    outputs = _ai_outputs(fresh, studies, events)
    reports = _signed_reports(fresh, studies, events, actor=actor, context=context)
    _insert(
        [
            GroundTruthLabel(study=study, **label)
            for pair, study in zip(fresh, studies, strict=True)
            for label in pair.labels
        ]
    )
    counts.ai_outputs += len(outputs)
    counts.signed_reports += len(reports)
    record_many(events, actor=actor, context=context, copy=_use_copy())


def _patients(fresh: list[ReportPair], events: list[dict]) -> dict[str, Patient]:
    """The batch's patients by MRN: those stored, and the new ones created here (each audited)."""
    patients = {p.mrn: p for p in Patient.objects.filter(mrn__in={x.study.patient.mrn for x in fresh})}
    new_patients = {}
    for pair in fresh:
        info = pair.study.patient
        if info.mrn not in patients and info.mrn not in new_patients:
            new_patients[info.mrn] = Patient(
                mrn=info.mrn,
                family_name=info.family_name,
                given_name=info.given_name,
                birth_date=info.birth_date,
                sex=info.sex or "U",
            )
    _insert(list(new_patients.values()))
    patients.update(new_patients)
    events += [
        {"action": "patient.create", "object_type": "patient", "object_id": p.pk, "patient_id": p.pk}
        for p in new_patients.values()
    ]
    return patients


def _studies(fresh: list[ReportPair], patients: dict[str, Patient], events: list[dict]) -> list[Study]:
    """One new Study per pair, in the batch's order (each audited)."""
    studies = [
        Study(
            study_instance_uid=s.study_instance_uid or None,
            accession_number=s.accession_number,
            patient=patients[s.patient.mrn],
            modality=s.modality,
            body_part=s.body_part,
            specialty=s.specialty or "",
            study_datetime=s.study_datetime,
            description=s.description,
            priority=s.priority,
            referring_physician=s.referring_physician,
            dicom_header=to_jsonable(s.dicom_header or {}),
        )
        for s in (p.study for p in fresh)
    ]
    _insert(studies)
    events += [
        {
            "action": "study.create",
            "object_type": "study",
            "object_id": s.pk,
            "patient_id": s.patient_id,
            "study_id": s.pk,
        }
        for s in studies
    ]
    return studies


def _ai_outputs(fresh: list[ReportPair], studies: list[Study], events: list[dict]) -> list[AIOutput]:
    """The batch's AI drafts with their provenance (model versions created as needed; each audited)."""
    models = _model_versions(
        {(p.ai_output.model_name, p.ai_output.model_version) for p in fresh if p.ai_output}, events
    )
    outputs = [
        AIOutput(
            study=study,
            kind=out.kind,
            model_version=models[(out.model_name, out.model_version)],
            inputs=to_jsonable(out.inputs),
            generation_settings=to_jsonable(out.generation_settings),
            text=out.text,
            text_sha256=sha256_text(out.text),
            payload_sha256=payload_hash(out),
            prompt_tokens=out.prompt_tokens,
            completion_tokens=out.completion_tokens,
            latency_ms=out.latency_ms,
            generated_at=out.generated_at,
            origin=AIOutputOrigin.CLINICAL,
        )
        for pair, study in zip(fresh, studies, strict=True)
        if (out := pair.ai_output) is not None
    ]
    _insert(outputs)
    events += [
        {
            "action": "ai_output.create",
            "object_type": "ai_output",
            "object_id": o.pk,
            "patient_id": o.study.patient_id,
            "study_id": o.study_id,
            "details": {"kind": o.kind, "text_sha256": o.text_sha256, "origin": o.origin},
        }
        for o in outputs
    ]
    return outputs


def _signed_reports(
    fresh: list[ReportPair],
    studies: list[Study],
    events: list[dict],
    *,
    actor: AbstractBaseUser | None,
    context: AuditContext,
) -> list[SignedReport]:
    """The batch's signed reports by their radiologists (account and clinician; each audited)."""
    radiologists, clinicians = _signers(fresh, actor, context)
    reports = []
    for pair, study in zip(fresh, studies, strict=True):
        if (rep := pair.signed_report) is not None:
            text = rep.text or compose_text(rep.sections)
            reports.append(
                SignedReport(
                    study=study,
                    radiologist=radiologists[rep.radiologist_username],
                    clinician=clinicians[rep.radiologist_username],
                    sections=rep.sections,
                    text=text,
                    text_sha256=sha256_text(text),
                    payload_sha256=payload_hash(rep),
                    signed_at=rep.signed_at,
                    status=rep.status,
                )
            )
    _insert(reports)
    events += [
        {
            "action": f"signed_report.{r.status}",
            "object_type": "signed_report",
            "object_id": r.pk,
            "patient_id": r.study.patient_id,
            "study_id": r.study_id,
            "details": {
                "radiologist_id": r.radiologist_id,
                "clinician_id": r.clinician_id,
                "text_sha256": r.text_sha256,
                "amends": None,
            },
        }
        for r in reports
    ]
    return reports


def _signers(
    pairs: list[ReportPair], actor: AbstractBaseUser | None, context: AuditContext
) -> tuple[dict[str, AbstractBaseUser], dict[str, Clinician]]:
    """The signing accounts of the pairs' reports by username, and the clinician standing for each."""
    names = {p.signed_report.radiologist_username for p in pairs if p.signed_report}
    accounts = {u.username: u for u in User.objects.filter(username__in=names)}
    clinicians = {
        name: clinician_for_account(user=user, actor=actor, context=context)
        for name, user in accounts.items()
    }
    return accounts, clinicians


def _model_versions(keys: set[tuple[str, str]], events: list[dict]) -> dict[tuple[str, str], ModelVersion]:
    found = {}
    for name, version in keys:
        mv, created = ModelVersion.objects.get_or_create(name=name, version=version)
        if created:
            events.append(
                {
                    "action": "model_version.create",
                    "object_type": "model_version",
                    "object_id": mv.pk,
                    "details": {"name": name, "version": version},
                }
            )
        found[(name, version)] = mv
    return found


def _use_copy() -> bool:
    """Whether this database takes rows by ``COPY`` (PostgreSQL); tests switch it off to compare."""
    return connection.vendor == "postgresql"


def _insert(objs: list[Model]) -> None:
    """Insert new rows of one model and set their primary keys: ``bulk_create``, or on PostgreSQL one
    statement drawing the keys from the table's identity sequence and one ``COPY`` of the rows."""
    if not objs:
        return
    model = type(objs[0])
    if not _use_copy():
        model.objects.bulk_create(objs)
        return
    meta = model._meta
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, len(objs)],
        )
        for obj, (pk,) in zip(objs, sorted(cursor.fetchall()), strict=True):
            obj.pk = pk
        fields = meta.concrete_fields
        wrapper = connections[connection.alias]  # not the thread-local proxy: ~150,000 lookups a batch
        columns = ", ".join(quote(f.column) for f in fields)
        # wrap_database_errors: a unique or CHECK violation is an IntegrityError, as from bulk_create.
        values = copy_values(fields, wrapper, pre_save=True)  # pre_save: auto_now_add, as bulk_create
        with (
            wrapper.wrap_database_errors,
            cursor.copy(f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy,
        ):
            for obj in objs:
                copy.write_row(values(obj))
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
