"""Workflows that write the clinical record. Every ingestion path (REST, FHIR, HL7, DICOM, seed) ends here.

Each function writes its rows and their audit events in ONE transaction (an
:func:`~portal.records.units.ingest_unit`: events appended together at its end) and is idempotent: an
identical payload returns the stored record (``created=False``); a different payload under the same
natural key raises :class:`RecordConflict`, because evidence is never overwritten.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from audit import log as audit
from audit.canonical import canonical_json
from portal.core.enqueue import enqueue_on_commit
from portal.core.errors import InvalidRecord, RecordConflict, RecordNotFound
from portal.records import lookups
from portal.records.clinicians import signer_resolve
from portal.records.ingest.payloads import (
    AIOutputPayload,
    PatientPayload,
    SignedReportPayload,
    StudyPayload,
    split_sections,
)
from portal.records.models import (
    AIOutput,
    AIOutputKind,
    AIOutputOrigin,
    ModelVersion,
    Patient,
    ReportStatus,
    SignedReport,
    Study,
    sha256_text,
)
from portal.records.units import cached, ingest_unit, remember, remembered

T = TypeVar("T")

# By name, so that records does not import review (review reads records, not the reverse).
COMPARE_TASK = "portal.review.tasks.compare_study"
COMPARE_BATCH_TASK = "portal.review.tasks.compare_studies"
#: Most studies one comparison message names (a worker compares them one after the other).
COMPARE_BATCH = 50

# The clinical order of sections when a report's text is rebuilt from them.
SECTION_ORDER = ("indication", "technique", "comparison", "findings", "impression")


@dataclasses.dataclass(frozen=True)
class Ingested:
    """What an ingestion call returns: the record and whether this call created it."""

    record: Any
    created: bool


def payload_hash(payload: Any) -> str:
    """SHA-256 of a payload's canonical JSON: equal payloads, equal hashes, on every machine.

    Fields added to a payload after records were stored (``metadata={"omit_when_none": True}``) are
    left out while empty, so a payload re-sent in its old shape still hashes as it did then.
    """
    # Field by field rather than dataclasses.asdict: the same document without asdict's deep copy of
    # every value (the AI inputs are large), which cost most of the bulk importer's hashing time.
    data = {
        item.name: getattr(payload, item.name)
        for item in dataclasses.fields(payload)
        if not (item.metadata.get("omit_when_none") and getattr(payload, item.name) is None)
    }
    return hashlib.sha256(canonical_json(to_jsonable(data))).hexdigest()


_JSON_LEAVES = frozenset({str, int, bool})


def to_jsonable(value: Any) -> Any:
    """Dates and datetimes as ISO text (UTC, Z), tuples as lists, whole floats as ints, nested payloads
    (dataclasses) as dicts of all their fields: JSON-ready."""
    if value is None or type(value) in _JSON_LEAVES:
        return value  # most values of a payload: tested first, before the costlier is_dataclass
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: to_jsonable(getattr(value, item.name)) for item in dataclasses.fields(value)}
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 12.0 and 12 are the same latency; JSON round trips blur them
    return value


def enqueue_comparison(study_id: int) -> None:
    """After commit, ask a worker to compare the study's AI drafts with its signed report.

    A broker outage must not fail the ingestion that already committed: the periodic sweeper
    (``sweep_uncompared``) finds studies whose comparison never ran.
    """
    enqueue_on_commit(COMPARE_TASK, [study_id], catch_up="the sweeper")


def enqueue_comparisons(study_ids: list[int]) -> None:
    """After commit, compare many studies (a FHIR Bundle's), :data:`COMPARE_BATCH` to a message: a send
    per study was a quarter of such a Bundle's CPU. A single study goes as :func:`enqueue_comparison`."""
    ids = list(dict.fromkeys(study_ids))
    if len(ids) == 1:
        return enqueue_comparison(ids[0])
    enqueue_on_commit(COMPARE_BATCH_TASK, ids, catch_up="the sweeper", batch=COMPARE_BATCH)


def _insert_or_fetch(create: Callable[[], T], fetch: Callable[[], T | None]) -> tuple[T, bool]:
    """Insert inside a savepoint; if a concurrent writer won the unique key, return its row instead."""
    try:
        with transaction.atomic():
            return create(), True
    except IntegrityError:
        existing = fetch()
        if existing is None:
            raise
        return existing, False


# --- Patients and studies --------------------------------------------------------------------------


# The rows the services create, unsaved: one definition for the services, which save them one at a
# time, and for the set-based writer of FHIR transaction Bundles (ingest/fhir_sets.py), which
# bulk-inserts them.
def _saved(row: T) -> T:
    row.save(force_insert=True)  # type: ignore[attr-defined]
    return row


def patient_row(payload: PatientPayload) -> Patient:
    """A new patient from its payload (unsaved)."""
    return Patient(
        mrn=payload.mrn,
        family_name=payload.family_name,
        given_name=payload.given_name,
        birth_date=payload.birth_date,
        sex=payload.sex or "U",
    )


def study_row(payload: StudyPayload, patient: Patient) -> Study:
    """A new study of ``patient`` from its payload (unsaved)."""
    return Study(
        study_instance_uid=payload.study_instance_uid or None,
        accession_number=payload.accession_number or None,
        patient=patient,
        modality=payload.modality,
        body_part=payload.body_part,
        specialty=payload.specialty or "",
        study_datetime=payload.study_datetime,
        description=payload.description,
        priority=payload.priority or "routine",
        referring_physician=payload.referring_physician,
        dicom_header=to_jsonable(payload.dicom_header or {}),
    )


def ai_output_row(
    payload: AIOutputPayload, study: Study, mv: ModelVersion, digest: str, origin: str
) -> AIOutput:
    """A new AI output of ``study`` by ``mv`` (unsaved); ``digest`` is :func:`payload_hash` of the payload."""
    return AIOutput(
        study=study,
        kind=payload.kind,
        model_version=mv,
        inputs=to_jsonable(payload.inputs),
        generation_settings=to_jsonable(payload.generation_settings),
        text=payload.text,
        text_sha256=sha256_text(payload.text),
        payload_sha256=digest,
        prompt_tokens=payload.prompt_tokens,
        completion_tokens=payload.completion_tokens,
        latency_ms=payload.latency_ms,
        generated_at=payload.generated_at,
        origin=origin,
    )


def signed_report_row(
    payload: SignedReportPayload,
    study: Study,
    signer: tuple[Any, AbstractBaseUser | None],
    content: tuple[dict[str, str], str],
    *,
    digest: str,
    amends: SignedReport | None,
) -> SignedReport:
    """A new signed report (unsaved): ``signer`` is (clinician, account), ``content`` (sections, text)
    as :func:`report_content` gives them."""
    (clinician, radiologist), (sections, text) = signer, content
    return SignedReport(
        study=study,
        radiologist=radiologist,
        clinician=clinician,
        sections=sections,
        text=text,
        text_sha256=sha256_text(text),
        payload_sha256=digest,
        signed_at=payload.signed_at,
        status=payload.status,
        amends=amends,
    )


def patient_get_or_create(
    *, payload: PatientPayload, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> Patient:
    """Find a patient by MRN or create one; later payloads only fill demographics still blank."""
    patient = lookups.patient_by_mrn(payload.mrn)
    if patient is None:
        patient, created = _insert_or_fetch(
            lambda: _saved(patient_row(payload)),
            lambda: Patient.objects.filter(mrn=payload.mrn).first(),
        )
        remember(("patient", payload.mrn), patient)
        if created:
            audit.record(
                "patient.create",
                actor=actor,
                context=context,
                object_type="patient",
                object_id=patient.pk,
                patient_id=patient.pk,
            )
            return patient
    changed = _fill_blanks(
        patient,
        {
            "family_name": payload.family_name,
            "given_name": payload.given_name,
            "birth_date": payload.birth_date,
            "sex": payload.sex if payload.sex not in ("", "U") else None,
        },
        blank_values=("", None, "U"),
    )
    if changed:
        patient.save(update_fields=changed)
        audit.record(
            "patient.update",
            actor=actor,
            context=context,
            object_type="patient",
            object_id=patient.pk,
            patient_id=patient.pk,
            details={"filled": changed},
        )
    return patient


def _fill_blanks(obj: Any, values: dict[str, Any], blank_values: tuple = ("", None)) -> list[str]:
    changed = []
    for name, value in values.items():
        if value in ("", None) or getattr(obj, name) not in blank_values:
            continue
        setattr(obj, name, value)
        changed.append(name)
    return changed


@ingest_unit()
def study_ingest(
    *, payload: StudyPayload, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> Ingested:
    """Create a study, or return it when it exists; fields still blank are filled in, keys never change.

    A study stored without accession (DICOM from an unscheduled or outside exam) is joined by the
    first message that brings its accession: by the same StudyInstanceUID, or, when that message has
    no UID, by :func:`~portal.records.lookups.unscheduled_match` (same patient, modality and day, one
    candidate only).
    """
    existing = lookups.study_by_keys(payload) or lookups.unscheduled_match(payload)
    if (
        existing is not None
        and payload.accession_number
        and existing.accession_number not in (None, payload.accession_number)
    ):
        raise RecordConflict(
            "Study Instance UID is already stored under another accession number.",
            field="study_instance_uid",
        )
    if existing is not None:
        return Ingested(_study_merge(existing, payload, actor, context), False)

    patient = patient_get_or_create(payload=payload.patient, actor=actor, context=context)
    study, created = _insert_or_fetch(
        lambda: _saved(study_row(payload, patient)),
        lambda: lookups.study_by_keys(payload),
    )
    if not created:
        return Ingested(_study_merge(study, payload, actor, context), False)
    lookups.mark_created(study)
    audit.record(
        "study.create",
        actor=actor,
        context=context,
        object_type="study",
        object_id=study.pk,
        patient_id=patient.pk,
        study_id=study.pk,
    )
    return Ingested(study, True)


def _study_merge(
    study: Study, payload: StudyPayload, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> Study:
    if study.patient.mrn != payload.patient.mrn:
        raise RecordConflict("This accession number belongs to another patient.", field="patient.mrn")
    if (
        study.study_instance_uid
        and payload.study_instance_uid
        and study.study_instance_uid != payload.study_instance_uid
    ):
        raise RecordConflict(
            "This accession number is stored with another Study Instance UID.", field="study_instance_uid"
        )
    if payload.study_instance_uid and not study.study_instance_uid:
        clash = (
            Study.objects.filter(study_instance_uid=payload.study_instance_uid).exclude(pk=study.pk).first()
        )
        if clash is not None:
            raise RecordConflict(
                "Study Instance UID is already stored under another accession number.",
                field="study_instance_uid",
            )
    changed = _fill_blanks(
        study,
        {
            "accession_number": payload.accession_number,
            "study_instance_uid": payload.study_instance_uid,
            "modality": payload.modality,
            "body_part": payload.body_part,
            "specialty": payload.specialty,
            "study_datetime": payload.study_datetime,
            "description": payload.description,
            "referring_physician": payload.referring_physician,
        },
    )
    if payload.dicom_header and not study.dicom_header:
        study.dicom_header = to_jsonable(payload.dicom_header)
        changed.append("dicom_header")
    if changed:
        study.save(update_fields=changed)
        audit.record(
            "study.update",
            actor=actor,
            context=context,
            object_type="study",
            object_id=study.pk,
            patient_id=study.patient_id,
            study_id=study.pk,
            details={"filled": changed},
        )
    return study


# --- AI outputs ------------------------------------------------------------------------------------


def model_version_get_or_create(
    *, name: str, version: str, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> ModelVersion:
    """The registry entry of a model version named by an ingested output (created on first sight)."""
    key = ("model_version", name, version)
    mv = remembered(key, lambda: ModelVersion.objects.filter(name=name, version=version).first())
    if mv is not None:
        return mv
    mv, created = _insert_or_fetch(
        lambda: ModelVersion.objects.create(name=name, version=version),
        lambda: ModelVersion.objects.filter(name=name, version=version).first(),
    )
    remember(key, mv)
    if created:
        audit.record(
            "model_version.create",
            actor=actor,
            context=context,
            object_type="model_version",
            object_id=mv.pk,
            details={"name": name, "version": version},
        )
    return mv


@ingest_unit()
def ai_output_ingest(
    *,
    payload: AIOutputPayload,
    actor: AbstractBaseUser | None,
    context: audit.AuditContext,
    origin: str = AIOutputOrigin.CLINICAL,
) -> Ingested:
    """Store one AI output with its provenance beside its study (idempotent, immutable)."""
    if payload.kind not in AIOutputKind.values:
        raise InvalidRecord(f"Unknown AI output kind {payload.kind!r}.", field="kind")
    if payload.generated_at is None:
        raise InvalidRecord(
            "generated_at is required: it is part of the output's identity.", field="generated_at"
        )
    study = lookups.find_study(payload.accession_number, payload.study_instance_uid)
    mv = model_version_get_or_create(
        name=payload.model_name, version=payload.model_version, actor=actor, context=context
    )
    digest = payload_hash(payload)

    def fetch() -> AIOutput | None:
        return AIOutput.objects.filter(
            study=study, kind=payload.kind, model_version=mv, generated_at=payload.generated_at
        ).first()

    key = ("ai_output", study.pk, payload.kind, mv.pk, payload.generated_at)
    existing = remembered(key, lambda: None if lookups.created_here(study) else fetch())
    if existing is None:
        existing, created = _insert_or_fetch(
            lambda: _saved(ai_output_row(payload, study, mv, digest, origin)),
            fetch,
        )
        if created:
            remember(key, existing)
            audit.record(
                "ai_output.create",
                actor=actor,
                context=context,
                object_type="ai_output",
                object_id=existing.pk,
                patient_id=study.patient_id,
                study_id=study.pk,
                details={
                    "kind": payload.kind,
                    "model": f"{mv.name} {mv.version}",
                    "text_sha256": existing.text_sha256,
                    "origin": origin,
                },
            )
            if payload.kind == AIOutputKind.REPORT_DRAFT and origin == AIOutputOrigin.CLINICAL:
                enqueue_comparison(study.pk)
            return Ingested(existing, True)
    if existing.payload_sha256 != digest:
        raise RecordConflict(
            f"An AI output of this kind from {mv.name} {mv.version} generated at this time is already "
            "stored with different content; stored outputs are immutable.",
            field="text",
        )
    return Ingested(existing, False)


# --- Signed reports --------------------------------------------------------------------------------


def compose_text(sections: dict[str, str]) -> str:
    """Rebuild a report's text from its sections, in clinical order, with upper-case headers."""
    parts = [
        f"{name.upper()}:\n{sections[name].strip()}"
        for name in SECTION_ORDER
        if sections.get(name, "").strip()
    ]
    return "\n\n".join(parts)


@ingest_unit()
def signed_report_ingest(
    *, payload: SignedReportPayload, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> Ingested:
    """Store a signed report, addendum or correction (idempotent, immutable, one original per study)."""
    if payload.status not in ReportStatus.values:
        raise InvalidRecord(f"Unknown report status {payload.status!r}.", field="status")
    study = lookups.find_study(payload.accession_number, payload.study_instance_uid)
    clinician, radiologist = signer_resolve(payload=payload, actor=actor, context=context)
    sections, text = report_content(payload)
    digest = payload_hash(payload)

    def fetch() -> SignedReport | None:
        return SignedReport.objects.filter(
            study=study, status=payload.status, signed_at=payload.signed_at
        ).first()

    if payload.status == ReportStatus.FINAL:
        # The study's final reports (one at most) answer both questions in one query: is this one
        # stored already, and is another one?
        if lookups.created_here(study):  # its only finals are the ones this unit stored
            finals = [r for r in [cached(("final", study.pk))] if r is not None]
        else:
            finals = list(SignedReport.objects.filter(study=study, status=ReportStatus.FINAL))
        existing = next((r for r in finals if r.signed_at == payload.signed_at), None)
    else:
        finals, existing = [], fetch()
    if existing is not None:
        if existing.payload_sha256 != digest:
            raise RecordConflict(
                "A report with this status and signing time is already stored with different "
                "content; send an addendum or correction instead.",
                field="text",
            )
        return Ingested(existing, False)

    amends = _amends(study, payload, has_final=bool(finals))
    report, created = _insert_or_fetch(
        lambda: _saved(
            signed_report_row(
                payload, study, (clinician, radiologist), (sections, text), digest=digest, amends=amends
            )
        ),
        fetch,
    )
    if not created:
        if report.payload_sha256 != digest:
            raise RecordConflict(
                "A different report was stored concurrently under the same key.", field="text"
            )
        return Ingested(report, False)
    if payload.status == ReportStatus.FINAL:
        remember(("final", study.pk), report)
    audit.record(
        f"signed_report.{payload.status}",
        actor=actor,
        context=context,
        object_type="signed_report",
        object_id=report.pk,
        patient_id=study.patient_id,
        study_id=study.pk,
        details={
            "radiologist_id": radiologist.pk if radiologist else None,
            "clinician_id": clinician.pk,
            "text_sha256": report.text_sha256,
            "amends": amends.pk if amends else None,
        },
    )
    enqueue_comparison(study.pk)
    return Ingested(report, True)


def report_content(payload: SignedReportPayload) -> tuple[dict[str, str], str]:
    """The report's sections and text: each derived from the other when only one was sent (refused
    without either)."""
    sections = {k: v for k, v in (payload.sections or {}).items() if v and v.strip()}
    text = payload.text.strip() if payload.text else ""
    if not text and not sections:
        raise InvalidRecord("A signed report needs text or sections.", field="text")
    if not sections:
        sections = split_sections(text)
    if not text:
        text = compose_text(sections)
    return sections, text


def _amends(study: Study, payload: SignedReportPayload, *, has_final: bool) -> SignedReport | None:
    """The report an addendum or correction amends; a final amends none and must be the study's only one
    (``has_final``: the study has a final report already)."""
    if payload.status != ReportStatus.FINAL:
        amends = _amended_report(study, payload.amends_report_id)
        if payload.signed_at < amends.signed_at:
            raise InvalidRecord(
                "An amendment cannot be signed before the report it amends.", field="signed_at"
            )
        return amends
    if payload.amends_report_id:
        raise InvalidRecord(
            "A final report does not amend another; use status addendum or correction.", field="amends"
        )
    if has_final:
        raise RecordConflict(
            "This study already has a final signed report; changes are sent as an addendum or a correction.",
            field="status",
        )
    return None


def _amended_report(study: Study, amends_report_id: str | None) -> SignedReport:
    """The report an amendment points at: the one named, or else the latest in the study's chain."""
    reports = SignedReport.objects.filter(study=study)
    if amends_report_id:
        try:
            report_id = int(amends_report_id)
        except (TypeError, ValueError) as exc:
            raise InvalidRecord("amends must be the id of a signed report.", field="amends") from exc
        report = reports.filter(pk=report_id).first()
        if report is None:
            raise RecordNotFound("The amended report does not exist for this study.", field="amends")
        return report
    report = reports.order_by("-signed_at", "-pk").first()
    if report is None:
        raise RecordNotFound("There is no signed report to amend for this study.", field="amends")
    return report
