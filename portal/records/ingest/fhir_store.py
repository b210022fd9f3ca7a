"""FHIR R4 channel processors: DiagnosticReport, Patient, Practitioner and transaction/batch Bundles.

Each processor takes the raw body and answers with an :class:`~.inbound.Answer` whose body is FHIR
JSON: an OperationOutcome for a single resource or a refusal, a ``transaction-response`` /
``batch-response`` Bundle for a Bundle. A transaction is all or nothing (the first refused entry
rolls every entry back and is named in the OperationOutcome); a batch stores each entry on its own.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError

from audit import log as audit
from portal.core.errors import RecordError
from portal.records import clinicians, fhir_ids, lookups, services
from portal.records.ingest import fhir, fhir_bundle, fhir_people, fhir_sets
from portal.records.ingest.fhir_bundle import BundleEntry
from portal.records.ingest.fhir_outcome import operation_outcome
from portal.records.ingest.fhir_people import Resolver
from portal.records.ingest.inbound import Answer
from portal.records.ingest.payloads import TOO_LARGE, AdapterError, ClinicianPayload, PatientPayload
from portal.records.ingest.store import logged_accepted, record_ref, retrying, study_and_report
from portal.records.models import Clinician, FhirPatientId, InboundOutcome
from portal.records.units import ingest_unit

FHIR_JSON = "application/fhir+json"
# How often a transaction Bundle is run set by set again after a concurrent Bundle won a new key;
# after that it goes entry by entry, whose savepoints take the other's rows.
CONCURRENT_ATTEMPTS = 3
Actor = AbstractBaseUser | None


class EntryRefused(Exception):
    """A transaction entry was refused: carries the entry's index, status and error, rolls back."""

    def __init__(self, entry: BundleEntry, status: int, error: AdapterError) -> None:
        super().__init__(error.message)
        self.entry, self.status, self.error = entry, status, error


def _max_bytes() -> int:
    return settings.CONCORDANCE_MAX_JSON_BYTES


def db_resolver(resource_type: str, reference: str) -> PatientPayload | ClinicianPayload | None:
    """Resolve ``"Patient/<id>"`` / ``"Practitioner/<id>"`` against resources posted earlier."""
    literal = fhir_people.literal_reference(reference)
    if literal is None or literal[0] != resource_type:
        return None
    if resource_type == "Patient":
        row = FhirPatientId.objects.select_related("patient").filter(logical_id=literal[1]).first()
        if row is None:
            return None
        p = row.patient
        return PatientPayload(p.mrn, p.family_name, p.given_name, p.birth_date, p.sex)
    clinician = Clinician.objects.filter(fhir_id=literal[1]).first()
    if clinician is None:
        return None
    return ClinicianPayload(authority=clinician.authority, identifier=clinician.identifier)


def _status_of(error: AdapterError | RecordError) -> int:
    if isinstance(error, RecordError):
        return error.status
    # An unresolvable reference is a fault of the request, not a missing endpoint: 400, as HAPI does.
    return 413 if error.code == TOO_LARGE else 400


def _as_adapter_error(error: AdapterError | RecordError) -> AdapterError:
    return error if isinstance(error, AdapterError) else AdapterError(error.code, error.message, error.field)


def _json(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


def refusal(error: AdapterError | RecordError, status: int | None = None) -> Answer:
    """An OperationOutcome answer for a refused resource or Bundle."""
    adapter_error = _as_adapter_error(error)
    return Answer(
        status or _status_of(error),
        _json(operation_outcome(adapter_error)),
        FHIR_JSON,
        InboundOutcome.REJECTED,
        f"{adapter_error.code}: {adapter_error.message}",
        adapter_error.location,
    )


def _informational(text: str) -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": text}],
    }


def _stored(created: bool, record: Any, *, location: str = "", message_id: str = "") -> Answer:
    kind, pk = record_ref(record)
    label = f"{'Created' if created else 'Already stored'}: {type(record).__name__} {pk}"
    return Answer(
        201 if created else 200,
        _json(_informational(label)),
        FHIR_JSON,
        InboundOutcome.STORED if created else InboundOutcome.DUPLICATE,
        location=location,
        records=((kind, pk),),
        message_id=message_id,
    )


# --- one resource -----------------------------------------------------------------------------------
def _report(raw: Any, resolve: Resolver, actor: Actor, context: audit.AuditContext) -> tuple[bool, Any, str]:
    parsed = fhir.parse_diagnostic_report(raw, max_bytes=_max_bytes(), resolve=resolve)
    ingested = study_and_report(parsed.study, parsed.payload, actor=actor, context=context)
    return ingested.created, ingested.record, parsed.report_id or ""


def _patient(
    payload: PatientPayload, logical_id: str, actor: Actor, context: audit.AuditContext
) -> tuple[bool, Any, str]:
    existed = lookups.patient_by_mrn(payload.mrn) is not None
    patient = services.patient_get_or_create(payload=payload, actor=actor, context=context)
    assigned, new_id = fhir_ids.patient_fhir_id_assign(
        patient=patient, logical_id=logical_id, actor=actor, context=context
    )
    return (not existed) or new_id, patient, f"Patient/{assigned}"


def _practitioner(
    payload: ClinicianPayload, logical_id: str, actor: Actor, context: audit.AuditContext
) -> tuple[bool, Any, str]:
    existed = clinicians.clinician_by_key(payload.authority, payload.identifier) is not None
    clinician = clinicians.clinician_resolve(payload=payload, actor=actor, context=context)
    assigned, new_id = fhir_ids.clinician_fhir_id_assign(
        clinician=clinician, logical_id=logical_id, actor=actor, context=context
    )
    return (not existed) or new_id, clinician, f"Practitioner/{assigned}"


def report_answer(body: bytes, *, content_type: str, actor: Actor, context: audit.AuditContext) -> Answer:
    """``POST /fhir/DiagnosticReport``: one report, its subject by any of the four forms."""

    def work() -> Answer:
        with ingest_unit():
            created, record, report_id = _report(body, db_resolver, actor, context)
            return logged_accepted(_stored(created, record, message_id=report_id))

    try:
        return retrying(work)
    except (AdapterError, RecordError) as exc:
        return refusal(exc)


def _person_answer(parse: Any, store: Any, body: bytes, actor: Actor, context: audit.AuditContext) -> Answer:
    """Parse a Patient or Practitioner, store it (or find it) and give it a logical id, in one go."""

    def work() -> Answer:
        with ingest_unit():
            created, record, location = store(payload, "", actor, context)
            return logged_accepted(_stored(created, record, location=location))

    try:
        payload = parse(body, max_bytes=_max_bytes())
        return retrying(work)
    except (AdapterError, RecordError) as exc:
        return refusal(exc)


def patient_answer(body: bytes, *, content_type: str, actor: Actor, context: audit.AuditContext) -> Answer:
    """``POST /fhir/Patient``: the patient is stored (or found by MRN) and given a logical id."""
    return _person_answer(fhir_people.parse_patient, _patient, body, actor, context)


def practitioner_answer(
    body: bytes, *, content_type: str, actor: Actor, context: audit.AuditContext
) -> Answer:
    """``POST /fhir/Practitioner``: the clinician is stored (or found by key) and given a logical id."""
    return _person_answer(fhir_people.parse_practitioner, _practitioner, body, actor, context)


# --- Bundles ------------------------------------------------------------------------------------------
def _entry(
    entry: BundleEntry, resolve: Resolver, actor: Actor, context: audit.AuditContext
) -> tuple[bool, Any, str]:
    if entry.resource_type == "DiagnosticReport":
        return _report(entry.resource, resolve, actor, context)
    if entry.resource_type in ("Patient", "Practitioner"):
        payload = fhir_bundle.entry_payload(entry)
        store = _patient if entry.resource_type == "Patient" else _practitioner
        return store(payload, entry.client_id, actor, context)  # type: ignore[arg-type]
    raise AdapterError("unsupported", "only Patient, Practitioner and DiagnosticReport entries are accepted")


def _located(error: AdapterError | RecordError, entry: BundleEntry) -> AdapterError:
    """The error with its location inside the Bundle (``Bundle.entry[3].resource.status``)."""
    adapter_error = _as_adapter_error(error)
    inner = adapter_error.location
    if inner.startswith("Bundle."):
        return adapter_error
    where = f"{entry.location}.resource" + (f".{inner.split('.', 1)[1]}" if "." in inner else "")
    return AdapterError(adapter_error.code, adapter_error.message, where)


def _transaction(
    entries: list[BundleEntry],
    resolve: Resolver,
    parsed: fhir_bundle.Parsed,
    actor: Actor,
    context: audit.AuditContext,
) -> Answer:
    """Every entry, all or nothing: set by set when the Bundle is plain (:mod:`.fhir_sets`), else
    (or when that path refuses anything) entry by entry, which then decides and names the entry."""

    def at_once() -> Answer:
        with ingest_unit():
            results = fhir_sets.store_transaction(
                entries,
                resolve,
                lambda entry: _entry(entry, resolve, actor, context),
                parsed=parsed,
                max_bytes=_max_bytes(),
                actor=actor,
                context=context,
            )
            return logged_accepted(_transaction_answer(results))

    for _attempt in range(CONCURRENT_ATTEMPTS):
        try:
            return retrying(at_once)
        except IntegrityError:
            continue  # a concurrent Bundle inserted one of the same new keys first: now it is found
        except (fhir_sets.NotPlain, AdapterError, RecordError):
            break  # not an error yet: the entry-by-entry path decides, and names the entry
    return retrying(lambda: _transaction_by_entry(entries, resolve, actor, context))


def _transaction_by_entry(
    entries: list[BundleEntry], resolve: Resolver, actor: Actor, context: audit.AuditContext
) -> Answer:
    """Every entry in turn; the accepted Bundle's inbound row is written in the same transaction."""
    results: list[tuple[BundleEntry, bool, Any, str]] = []
    with ingest_unit():
        for entry in entries:
            try:
                results.append((entry, *_entry(entry, resolve, actor, context)))
            except (AdapterError, RecordError) as exc:
                raise EntryRefused(entry, _status_of(exc), _located(exc, entry)) from None
        return logged_accepted(_transaction_answer(results))


def _transaction_answer(results: list[tuple[BundleEntry, bool, Any, str]]) -> Answer:
    responses = {e.index: _response(created, record, loc) for e, created, record, loc in results}
    records = tuple(record_ref(record) for _, _, record, _ in results)
    return _bundle_answer("transaction", responses, records, InboundOutcome.STORED, "")


def bundle_answer(body: bytes, *, content_type: str, actor: Actor, context: audit.AuditContext) -> Answer:
    """``POST /fhir`` with a transaction or batch Bundle; the answer is its ``*-response`` Bundle."""
    try:
        bundle_type, entries = fhir_bundle.parse_bundle(body, max_bytes=_max_bytes())
    except AdapterError as exc:
        return refusal(exc)
    parsed: fhir_bundle.Parsed = {}
    resolve = fhir_bundle.bundle_resolver(entries, db_resolver, parsed)
    if bundle_type == "transaction":
        try:
            return _transaction(entries, resolve, parsed, actor, context)
        except EntryRefused as refused:
            return refusal(refused.error, refused.status)
    return _batch(entries, resolve, actor, context)


def _response(created: bool, record: Any, location: str) -> dict:
    kind, pk = record_ref(record)
    return fhir_bundle.response_entry(201 if created else 200, location=location or f"{kind}/{pk}")


def _atomic_entry(
    entry: BundleEntry, resolve: Resolver, actor: Actor, context: audit.AuditContext
) -> tuple[bool, Any, str]:
    with ingest_unit():
        return _entry(entry, resolve, actor, context)


def _batch(
    entries: list[BundleEntry], resolve: Resolver, actor: Actor, context: audit.AuditContext
) -> Answer:
    responses: dict[int, dict] = {}
    records: list[tuple[str, int]] = []
    refused: list[str] = []
    for entry in entries:
        try:
            created, record, location = retrying(lambda e=entry: _atomic_entry(e, resolve, actor, context))
        except (AdapterError, RecordError) as exc:
            error = _located(exc, entry)
            responses[entry.index] = fhir_bundle.response_entry(
                _status_of(exc), outcome=operation_outcome(error)
            )
            refused.append(f"{error.location}: {error.code}")
            continue
        responses[entry.index] = _response(created, record, location)
        records.append(record_ref(record))
    outcome = InboundOutcome.REJECTED if refused and not records else InboundOutcome.STORED
    return _bundle_answer("batch", responses, tuple(records), outcome, "; ".join(refused))


def _bundle_answer(
    bundle_type: str, responses: dict[int, dict], records: tuple, outcome: str, reason: str
) -> Answer:
    ordered = [responses[index] for index in sorted(responses)]
    return Answer(
        200,
        _json(fhir_bundle.response_bundle(bundle_type, ordered)),
        FHIR_JSON,
        outcome,
        reason,
        records=records,
    )
