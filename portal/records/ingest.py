"""Glue between the standards adapters and the record services, one transaction per message.

A message that carries a study and a report (HL7 ORU, FHIR DiagnosticReport with its subject) is
written all or nothing: if the report is refused, the study it brought is not kept either.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, transaction

from audit import log as audit
from portal.core.errors import RecordError
from portal.records import hl7, services
from portal.records.payloads import AdapterError, AIOutputPayload, StudyPayload

logger = logging.getLogger(__name__)

# HTTP statuses for HL7-over-HTTP answers: the body is always an ACK, the status tells plain HTTP
# clients (and load balancers) whether it was accepted.
HL7_STATUS_ACCEPTED = 200
HL7_STATUS_REJECTED = 400
HL7_STATUS_UNAVAILABLE = 503


def _store_report(
    report: Any, *, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> services.Ingested:
    if isinstance(report, AIOutputPayload):
        return services.ai_output_ingest(payload=report, actor=actor, context=context)
    return services.signed_report_ingest(payload=report, actor=actor, context=context)


@transaction.atomic
def fhir_report(
    parsed: Any, *, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> services.Ingested:
    """Store a parsed FHIR DiagnosticReport; a study it names but we lack is created from its subject."""
    study_payload: StudyPayload | None = getattr(parsed, "study", None)
    if study_payload is not None:
        services.study_ingest(payload=study_payload, actor=actor, context=context)
    return _store_report(parsed.payload, actor=actor, context=context)


@transaction.atomic
def _hl7_store(
    result: Any, *, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> services.Ingested:
    services.study_ingest(payload=result.study, actor=actor, context=context)
    return _store_report(result.report, actor=actor, context=context)


def hl7_message(
    raw: bytes | str, *, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> tuple[str, int]:
    """Parse and store one ORU^R01; return the ACK text and the HTTP status to send it with.

    AR (rejected) when the message cannot be parsed or validated, AE (application error) when it is
    valid but conflicts with the record, AA when stored or already stored.
    """
    try:
        result = hl7.parse_oru(raw)
    except AdapterError as exc:
        return hl7.build_ack(raw, code="AR", text=exc.message, error=exc), HL7_STATUS_REJECTED
    try:
        ingested = _hl7_store(result, actor=actor, context=context)
    except RecordError as exc:
        error = AdapterError(exc.code, exc.message, exc.field)
        return hl7.build_ack(result, code="AE", text=exc.message, error=error), exc.status
    except DatabaseError:
        # The record is untouched (the transaction rolled back); the sender should retry later.
        logger.exception("HL7 message could not be stored")
        error = AdapterError("unavailable", "The record store is unavailable; retry later.")
        return hl7.build_ack(result, code="AE", text=error.message, error=error), HL7_STATUS_UNAVAILABLE
    text = "stored" if ingested.created else "already stored"
    return hl7.build_ack(result, code="AA", text=text), HL7_STATUS_ACCEPTED


def dicom_study(
    payload: StudyPayload, *, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> services.Ingested:
    """Store the study described by a DICOM header."""
    return services.study_ingest(payload=payload, actor=actor, context=context)
