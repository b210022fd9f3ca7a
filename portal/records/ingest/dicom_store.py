"""The DICOM channel processor: one Part 10 file in; its study (and the report an SR carries) stored.

The answer is JSON: the study (``id``, ``accession_number``, ``study_instance_uid``, ``created``) and,
for a Structured Report, the stored ``report`` (``{"type", "id", "created"}``) or why it was not
stored (``ignored``). An SR correction whose predecessor never reached us is stored as the study's
final report (there is nothing to amend). Refusals are ``{"error", "detail", "field"}`` with 400,
404, 409 or 413.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from audit import log as audit
from portal.core.errors import RecordError, RecordNotFound
from portal.records import services
from portal.records.ingest.dicom_sr import DicomResult, read_dicom
from portal.records.ingest.inbound import Answer
from portal.records.ingest.payloads import TOO_LARGE, AdapterError, SignedReportPayload
from portal.records.ingest.store import record_ref, retrying, store_report
from portal.records.models import InboundOutcome, SignedReport, Study
from portal.records.units import ingest_unit

JSON = "application/json"


def _refusal(code: str, message: str, field: str, status: int, message_id: str = "") -> Answer:
    body = json.dumps({"error": code, "detail": message, "field": field}).encode("utf-8")
    return Answer(status, body, JSON, InboundOutcome.REJECTED, f"{code}: {message}", field, (), message_id)


@ingest_unit()
def _store(result: DicomResult, actor: AbstractBaseUser | None, context: audit.AuditContext) -> tuple:
    if result.study is not None:
        study_ingested = services.study_ingest(payload=result.study, actor=actor, context=context)
        study, created = study_ingested.record, study_ingested.created
    else:
        study, created = Study.objects.filter(study_instance_uid=result.study_instance_uid).first(), False
        if study is None:
            raise RecordNotFound(
                "The Structured Report names no patient and its study is unknown; send the study first.",
                field="(0010,0020) PatientID",
            )
    report = None
    if result.report is not None:
        report = store_report(_first_or_amendment(result.report, study), actor=actor, context=context)
    return study, created, report


def _first_or_amendment(payload: Any, study: Study) -> Any:
    """An SR that names a predecessor we never received is the first report we hold: a final one."""
    if not isinstance(payload, SignedReportPayload) or payload.status == "final":
        return payload
    # The same SR sent again must find the report it became the first time (idempotency).
    same = SignedReport.objects.filter(study=study, signed_at=payload.signed_at).first()
    if same is not None:
        return dataclasses.replace(payload, status=same.status)
    if not SignedReport.objects.filter(study=study).exists():
        return dataclasses.replace(payload, status="final")
    return payload


def dicom_answer(
    body: bytes, *, content_type: str = "", actor: AbstractBaseUser | None, context: audit.AuditContext
) -> Answer:
    """Read and store one DICOM file; see the module docstring for the answer."""
    try:
        result = read_dicom(body, max_bytes=settings.CONCORDANCE_MAX_UPLOAD_BYTES)
    except AdapterError as exc:
        return _refusal(exc.code, exc.message, exc.location, 413 if exc.code == TOO_LARGE else 400)
    try:
        study, created, report = retrying(lambda: _store(result, actor, context))
    except RecordError as exc:
        return _refusal(exc.code, exc.message, exc.field, exc.status, result.sop_instance_uid)
    data: dict = {
        "id": study.pk,
        "accession_number": study.accession_number,
        "study_instance_uid": study.study_instance_uid,
        "created": created,
    }
    records = [("study", study.pk)]
    if report is not None:
        kind, pk = record_ref(report.record)
        data["report"] = {"type": kind, "id": pk, "created": report.created}
        records.append((kind, pk))
    elif result.ignored:
        data["ignored"] = result.ignored
    stored = created or (report is not None and report.created)
    outcome = InboundOutcome.STORED if stored else InboundOutcome.DUPLICATE
    if result.ignored and not created:
        outcome = InboundOutcome.IGNORED
    return Answer(
        201 if stored else 200,
        json.dumps(data).encode("utf-8"),
        JSON,
        outcome,
        result.ignored,
        records=tuple(records),
        message_id=result.sop_instance_uid,
    )
