"""A transaction Bundle stored set by set: a few reads for the whole Bundle, one INSERT per table.

Entry by entry, a Bundle of 100 reports cost about 840 SQL statements (a lookup, a savepoint and an
INSERT per row). Here the Bundle's patients, studies, clinicians, model versions and the reports of
studies already stored are read in a handful of queries, the new rows are inserted with one
``bulk_create`` per table, and the audit events go out in the unit's one batch. The rows and events are
those the services write (the same row factories in :mod:`portal.records.services`).

This path stores only what is plainly new or an exact re-post (the same patient named by several
Patient entries is fine: the first is answered 201, the others 200, as entry by entry). Anything else
(the same report twice in one Bundle, an amendment, a second final, a study kept without accession that
a report might join, a Patient id naming another patient, a conflict) raises :class:`NotPlain` or the
refusal itself, the caller rolls the transaction back and runs the Bundle entry by entry, which decides
as it always has (and names the refused entry). Concurrent Bundles naming the same new patients queue on
an advisory lock per MRN (PostgreSQL); any other concurrent insert of one of the Bundle's new keys makes
an INSERT here fail with an IntegrityError: the caller runs the whole Bundle again, and then finds that
row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, models

from audit import log as audit
from portal.records import clinicians, lookups, services
from portal.records.ingest import fhir, fhir_bundle
from portal.records.ingest.fhir import FhirReportResult
from portal.records.ingest.fhir_bundle import BundleEntry
from portal.records.ingest.fhir_people import Resolver
from portal.records.ingest.payloads import (
    AIOutputPayload,
    ClinicianPayload,
    PatientPayload,
    SignedReportPayload,
)
from portal.records.models import (
    AIOutput,
    AIOutputKind,
    AIOutputOrigin,
    Clinician,
    FhirPatientId,
    ModelVersion,
    Patient,
    ReportStatus,
    SignedReport,
    Study,
)
from portal.records.units import remember

__all__ = ["NotPlain", "Stored", "store_transaction"]

Actor = AbstractBaseUser | None
# The class (first key) of the advisory locks taken on patients' MRNs ("FHIR" in ASCII).
PATIENT_LOCKS = 0x46484952
# (created, record, location) for one entry, as the entry-by-entry path answers it.
Stored = tuple[bool, Any, str]
OneEntry = Callable[[BundleEntry], Stored]


class NotPlain(Exception):
    """The Bundle holds something other than new rows and exact re-posts: store it entry by entry."""


@dataclass
class _Unit:
    """What the Bundle's writes share: who sends it, and the per-entry answers so far."""

    actor: Actor
    context: audit.AuditContext
    stored: dict[int, Stored]

    def study_event(self, action: str, object_type: str, row: Any, details: dict) -> None:
        """The audit event of a row created on a study (an AI output, a signed report)."""
        study = row.study
        self.event(action, object_type, row, patient_id=study.patient_id, study_id=study.pk, details=details)

    def event(self, action: str, object_type: str, row: Any, **fields: Any) -> None:
        """Record one audit event about ``row`` (appended with the unit's batch)."""
        audit.record(
            action,
            actor=self.actor,
            context=self.context,
            object_type=object_type,
            object_id=row.pk,
            **fields,
        )


def store_transaction(
    entries: list[BundleEntry],
    resolve: Resolver,
    one_entry: OneEntry,
    *,
    parsed: fhir_bundle.Parsed,
    max_bytes: int,
    actor: Actor,
    context: audit.AuditContext,
) -> list[tuple[BundleEntry, bool, Any, str]]:
    """Store a transaction Bundle's entries (in processing order) inside the caller's ingest unit.

    ``one_entry`` stores one entry the usual way (used for Practitioner entries, which are few);
    ``parsed`` holds the Patient payloads ``resolve`` validated already (shared with it).
    Raises :class:`NotPlain`, an AdapterError or a RecordError: the caller then rolls back.
    """
    if any(e.resource_type not in fhir_bundle.ACCEPTED_TYPES for e in entries):
        raise NotPlain("an entry of another resource type")
    unit = _Unit(actor, context, {})
    people = {e.index: fhir_bundle.entry_payload(e, parsed) for e in entries if e.resource_type == "Patient"}
    reports = [
        (e, fhir.parse_diagnostic_report(e.resource, max_bytes=max_bytes, resolve=resolve))
        for e in entries
        if e.resource_type == "DiagnosticReport"
    ]
    patient_entries = [e for e in entries if e.resource_type == "Patient"]
    _patients(patient_entries, people, [r.study.patient for _, r in reports], unit)
    for entry in entries:
        if entry.resource_type == "Practitioner":
            unit.stored[entry.index] = one_entry(entry)
    _reports(reports, unit)
    return [(e, *unit.stored[e.index]) for e in entries]


# --- patients ---------------------------------------------------------------------------------------
def _patients(
    entries: list[BundleEntry],
    people: dict[int, Any],
    subjects: list[PatientPayload],
    unit: _Unit,
) -> None:
    """The Bundle's patients (of its Patient entries and its reports' subjects): found in one query,
    the new ones inserted together (each from the first payload that names it, as entry by entry),
    all kept in the unit's cache; each Patient entry answered with its logical id."""
    mrns = [people[e.index].mrn for e in entries]
    named = {*mrns, *(s.mrn for s in subjects)}
    _lock_patients(named)
    found = stored_patients(named)
    first_payload: dict[str, PatientPayload] = {}
    for payload in [people[e.index] for e in entries] + subjects:
        if payload.mrn not in found:
            first_payload.setdefault(payload.mrn, payload)
    new = [services.patient_row(first_payload[mrn]) for mrn in sorted(first_payload)]
    Patient.objects.bulk_create(new)
    for patient in new:
        unit.event("patient.create", "patient", patient, patient_id=patient.pk)
    patients = {**found, **{p.mrn: p for p in new}}
    for patient in patients.values():
        remember(("patient", patient.mrn), patient)
    for entry in entries:
        # Fills demographics still blank, as a second post of the patient does (no query here).
        services.patient_get_or_create(payload=people[entry.index], actor=unit.actor, context=unit.context)
    _fhir_ids(entries, [patients[m] for m in mrns], {p.mrn for p in new}, unit)


def _lock_patients(mrns: set[str]) -> None:
    """PostgreSQL: a transaction lock per MRN, taken in MRN order before the patients are read.

    Concurrent Bundles of one department name the same patients. Without it, two that both find a
    patient missing both insert it, and the later one fails and runs again; with it, the later one
    waits for the earlier to commit and then finds the patient. (The two-key advisory lock space,
    class :data:`PATIENT_LOCKS`, is the project's only use of advisory locks.) SQLite lets one writer
    in at a time anyway.
    """
    if connection.vendor != "postgresql" or not mrns:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%s, hashtext(mrn))) FROM unnest(%s::text[]) AS mrn",
            [PATIENT_LOCKS, sorted(mrns)],
        )


def stored_patients(mrns: set[str]) -> dict[str, Patient]:
    """The stored patients with these MRNs, by MRN (one query)."""
    return {p.mrn: p for p in Patient.objects.filter(mrn__in=mrns)}


def _fhir_ids(entries: list[BundleEntry], patients: list[Patient], new_mrns: set[str], unit: _Unit) -> None:
    """Each Patient entry's logical id: the client's (PUT), else the patient's first, else a new one.

    Entries are answered in order, as one by one: the first entry of a new patient is 201 Created,
    a later entry of the same patient 200 OK with the id the first one got.
    """
    chosen = {e.client_id for e in entries} - {""}
    by_id = {r.logical_id: r for r in FhirPatientId.objects.filter(logical_id__in=chosen)}
    first: dict[int, FhirPatientId] = {}
    stored = [p for p in {p.pk: p for p in patients}.values() if p.mrn not in new_mrns]
    for row in FhirPatientId.objects.filter(patient__in=stored).order_by("-pk"):
        first[row.patient_id] = row
    new: list[FhirPatientId] = []
    answered: set[int] = set()  # patients an earlier entry of this Bundle answered already
    for entry, patient in zip(entries, patients, strict=True):
        logical_id = entry.client_id
        row = by_id.get(logical_id) if logical_id else first.get(patient.pk)
        if row is not None and row.patient_id != patient.pk:
            raise NotPlain("a Patient id that names another patient")
        assigned = row is None
        if row is None:
            row = FhirPatientId(logical_id=logical_id or uuid4().hex, patient=patient)
            new.append(row)
            by_id[row.logical_id] = row
            first.setdefault(patient.pk, row)
        created = (patient.mrn in new_mrns and patient.pk not in answered) or assigned
        answered.add(patient.pk)
        unit.stored[entry.index] = (created, patient, f"Patient/{row.logical_id}")
    FhirPatientId.objects.bulk_create(new)
    for row in new:
        unit.event("patient.fhir_id", "patient", row.patient, patient_id=row.patient_id)


# --- studies and reports ------------------------------------------------------------------------------
def _reports(reports: list[tuple[BundleEntry, FhirReportResult]], unit: _Unit) -> None:
    """The reports' studies (found or inserted), then their AI outputs and signed reports, inserted."""
    studies, stored_before = _studies([r for _, r in reports], unit)
    outputs = _ai_outputs(reports, studies, stored_before, unit)
    finals = _finals(reports, studies, stored_before, unit)
    AIOutput.objects.bulk_create(outputs)
    SignedReport.objects.bulk_create(finals)
    for output in outputs:
        mv, sha = output.model_version, output.text_sha256
        details = {"kind": output.kind, "model": f"{mv.name} {mv.version}", "text_sha256": sha}
        unit.study_event("ai_output.create", "ai_output", output, {**details, "origin": output.origin})
    for report in finals:
        signer = {"radiologist_id": report.radiologist_id, "clinician_id": report.clinician_id}
        details = {**signer, "text_sha256": report.text_sha256, "amends": None}
        unit.study_event(f"signed_report.{report.status}", "signed_report", report, details)
    # One comparison per study however many of its reports came (the task reads the study as committed).
    compared = [o.study_id for o in outputs if o.kind == AIOutputKind.REPORT_DRAFT] + [
        r.study_id for r in finals
    ]
    services.enqueue_comparisons(compared)


def _studies(parsed: list[FhirReportResult], unit: _Unit) -> tuple[dict[str, Study], list[Study]]:
    """The reports' studies by accession number, and those of them stored before this Bundle:
    stored ones found in one query (and merged by the service, which fills blanks), new ones inserted
    together (their patients are in the unit's cache already)."""
    payloads: dict[str, Any] = {}
    for result in parsed:
        if not result.study.accession_number:
            raise NotPlain("a study without accession number")
        if payloads.setdefault(result.study.accession_number, result.study) != result.study:
            raise NotPlain("one study described two ways")
    uids = [p.study_instance_uid for p in payloads.values() if p.study_instance_uid]
    if len(set(uids)) != len(uids):
        raise NotPlain("one Study Instance UID under two accession numbers")
    found = Study.objects.select_related("patient").filter(
        models.Q(accession_number__in=payloads) | models.Q(study_instance_uid__in=uids)
    )
    by_accession, by_uid = {}, {}
    for study in found:
        lookups.remember_study(study)
        by_accession[study.accession_number] = by_uid[study.study_instance_uid] = study
    studies: dict[str, Study] = {}
    fresh = []
    for accession, payload in payloads.items():  # in the reports' order, as entry by entry
        # The study_by_keys rule: by accession number, else by Study Instance UID.
        if by_accession.get(accession) or by_uid.get(payload.study_instance_uid or "-"):
            ingested = services.study_ingest(payload=payload, actor=unit.actor, context=unit.context)
            studies[accession] = ingested.record  # found in the cache: no query unless it fills blanks
        else:
            fresh.append(payload)
    before = list(studies.values())
    _refuse_unscheduled_joins(fresh)
    new = []
    for payload in fresh:
        # Fills demographics still blank from the report's subject, as the service does for a new study.
        patient = services.patient_get_or_create(
            payload=payload.patient, actor=unit.actor, context=unit.context
        )
        new.append(services.study_row(payload, patient))
    new.sort(key=lambda study: study.accession_number)  # the same lock order in concurrent Bundles
    Study.objects.bulk_create(new)
    for study in new:
        studies[study.accession_number] = study
        unit.event("study.create", "study", study, patient_id=study.patient_id, study_id=study.pk)
    return studies, before


def _refuse_unscheduled_joins(fresh: list[Any]) -> None:
    """A new study might join one kept without accession (see ``lookups.unscheduled_match``): that
    decision is the entry-by-entry path's. One query tells whether any candidate exists."""
    keys = {(p.patient.mrn, p.modality) for p in fresh if not p.study_instance_uid and p.study_datetime}
    if not keys:
        return
    candidates = Study.objects.filter(accession_number__isnull=True, patient__mrn__in={m for m, _ in keys})
    if any(key in keys for key in candidates.values_list("patient__mrn", "modality")):
        raise NotPlain("a study kept without accession may be joined")


def _model_versions(keys: Iterable[tuple[str, str]], unit: _Unit) -> dict[tuple[str, str], ModelVersion]:
    keys = set(keys)
    if keys:
        query = models.Q()
        for name, version in keys:
            query |= models.Q(name=name, version=version)
        for mv in ModelVersion.objects.filter(query):
            remember(("model_version", mv.name, mv.version), mv)
    return {
        (n, v): services.model_version_get_or_create(
            name=n, version=v, actor=unit.actor, context=unit.context
        )
        for n, v in sorted(keys)
    }


def _ai_outputs(
    reports: list[tuple[BundleEntry, FhirReportResult]],
    studies: dict[str, Study],
    before: list[Study],
    unit: _Unit,
) -> list[AIOutput]:
    """The Bundle's new AI outputs (unsaved); a re-posted one answers 200 with the stored row."""
    drafts = [(e, r) for e, r in reports if r.fhir_status == "preliminary"]
    mvs = _model_versions(((r.payload.model_name, r.payload.model_version) for _, r in drafts), unit)
    rows = AIOutput.objects.filter(study__in=before) if before else []
    stored = {(o.study_id, o.kind, o.model_version_id, o.generated_at): o for o in rows}
    new: dict[tuple, AIOutput] = {}
    for entry, result in drafts:
        payload: AIOutputPayload = result.payload  # type: ignore[assignment]
        if payload.kind not in AIOutputKind.values or payload.generated_at is None:
            raise NotPlain("an AI output the service refuses")
        study, mv = studies[payload.accession_number], mvs[(payload.model_name, payload.model_version)]
        key = (study.pk, payload.kind, mv.pk, payload.generated_at)
        if key in new:
            raise NotPlain("the same AI output twice")
        digest = services.payload_hash(payload)
        existing = stored.get(key)
        if existing is not None:
            if existing.payload_sha256 != digest:
                raise NotPlain("an AI output stored with other content")
            unit.stored[entry.index] = (False, existing, result.report_id or "")
            continue
        new[key] = services.ai_output_row(payload, study, mv, digest, AIOutputOrigin.CLINICAL)
        unit.stored[entry.index] = (True, new[key], result.report_id or "")
    return list(new.values())


def _finals(
    reports: list[tuple[BundleEntry, FhirReportResult]],
    studies: dict[str, Study],
    before: list[Study],
    unit: _Unit,
) -> list[SignedReport]:
    """The Bundle's new final reports (unsaved); a re-posted one answers 200 with the stored row."""
    signed = [(e, r) for e, r in reports if r.fhir_status != "preliminary"]
    rows = SignedReport.objects.filter(study__in=before, status=ReportStatus.FINAL) if before else []
    stored = {r.study_id: r for r in rows}
    signers = _signers(r.payload.signer for _, r in signed if r.payload.signer is not None)
    new: dict[int, SignedReport] = {}
    for entry, result in signed:
        payload: SignedReportPayload = result.payload  # type: ignore[assignment]
        if payload.status != ReportStatus.FINAL or payload.signer is None:
            raise NotPlain("an amendment: the chain of reports is the service's to decide")
        study = studies[payload.accession_number]
        if study.pk in new:
            raise NotPlain("two final reports for one study")
        digest = services.payload_hash(payload)
        existing = stored.get(study.pk)
        if existing is not None:
            if existing.signed_at != payload.signed_at or existing.payload_sha256 != digest:
                raise NotPlain("the study has another final report")
            unit.stored[entry.index] = (False, existing, result.report_id or "")
            continue
        content = services.report_content(payload)
        clinician = signers(payload.signer, unit)
        new[study.pk] = services.signed_report_row(
            payload, study, (clinician, clinician.account), content, digest=digest, amends=None
        )
        unit.stored[entry.index] = (True, new[study.pk], result.report_id or "")
    return list(new.values())


def _signers(payloads: Iterable[ClinicianPayload]) -> Callable[[ClinicianPayload, _Unit], Clinician]:
    """Resolve each distinct signer once (the clinicians named by key read in one query first)."""
    keyed = {(p.authority, p.identifier) for p in payloads if not p.fhir_reference}
    if keyed:
        query = models.Q()
        for authority, identifier in keyed:
            query |= models.Q(authority=authority, identifier=identifier)
        for clinician in Clinician.objects.select_related("account").filter(query):
            remember(("clinician", clinician.authority, clinician.identifier), clinician)
    resolved: dict[ClinicianPayload, Clinician] = {}

    def signer(payload: ClinicianPayload, unit: _Unit) -> Clinician:
        if payload not in resolved:
            resolved[payload] = clinicians.clinician_resolve(
                payload=payload, actor=unit.actor, context=unit.context
            )
        return resolved[payload]

    return signer
