"""Glue between the standards adapters and the record services, one transaction per message.

A message that carries a study and a report (HL7 ORU, FHIR DiagnosticReport with its subject) is
written all or nothing: if the report is refused, the study it brought is not kept either. Each
``*_answer`` function is a channel processor: raw bytes in, an :class:`~.inbound.Answer` out.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, OperationalError, transaction

from audit import log as audit
from portal.core.errors import RecordError
from portal.records import services
from portal.records.ingest import hl7, hl7_ack
from portal.records.ingest.hl7_text import MAX_MESSAGE_BYTES
from portal.records.ingest.inbound import Answer, log_accepted
from portal.records.ingest.payloads import AdapterError, AIOutputPayload, StudyPayload
from portal.records.models import AIOutput, InboundOutcome
from portal.records.units import ingest_unit

logger = logging.getLogger(__name__)
T = TypeVar("T")

# HTTP statuses for HL7-over-HTTP answers: the body is always an ACK, the status tells plain HTTP
# clients (and load balancers) whether it was accepted.
HL7_STATUS_ACCEPTED = 200
HL7_STATUS_REJECTED = 400
HL7_STATUS_UNAVAILABLE = 503
HL7_CONTENT_TYPE = "x-application/hl7-v2+er7"


# Deadlock and serialization failures (PostgreSQL SQLSTATE 40P01, 40001): the transaction was rolled
# back whole and is safe to run again.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
RETRY_ATTEMPTS = 4


def _retryable(exc: OperationalError) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) in _RETRYABLE_SQLSTATES or "database is locked" in str(exc)


def retrying(work: Callable[[], T]) -> T:
    """Run a whole transaction, again (up to :data:`RETRY_ATTEMPTS` times) when the database chose it
    as a deadlock victim. Concurrent messages that create the same new patient or clinician while
    appending to the audit log can deadlock; the loser's transaction was rolled back whole.
    Must be called outside any transaction, or the retry would run inside the doomed one.
    """
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return work()
        except OperationalError as exc:
            if (
                attempt == RETRY_ATTEMPTS - 1
                or not _retryable(exc)
                or transaction.get_connection().in_atomic_block
            ):
                # The SQLSTATE says which failure it was (deadlock, timeout, lost connection): no PHI.
                logger.warning(
                    "ingest transaction failed (SQLSTATE %s) after %d attempt(s)",
                    getattr(exc.__cause__, "sqlstate", None),
                    attempt + 1,
                )
                raise
            time.sleep(0.02 * (attempt + 1) * (1 + random.random()))  # noqa: S311 - jitter, not security
    raise AssertionError("unreachable")


def logged_accepted(answer: Answer) -> Answer:
    """Write an accepted message's inbound row in the current ingestion transaction; the answer."""
    log_accepted(answer)
    return answer


def record_ref(record: Any) -> tuple[str, int]:
    """``("signed_report", 7)``: how the inbound log names a stored record."""
    return ("ai_output" if isinstance(record, AIOutput) else type(record).__name__.lower(), record.pk)


def store_report(
    report: Any, *, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> services.Ingested:
    """An AI output or a signed report payload, through its service."""
    if isinstance(report, AIOutputPayload):
        return services.ai_output_ingest(payload=report, actor=actor, context=context)
    return services.signed_report_ingest(payload=report, actor=actor, context=context)


@ingest_unit()
def study_and_report(
    study: StudyPayload | None, report: Any, *, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> services.Ingested:
    """Store a study (when the message describes one) and its report, all or nothing."""
    if study is not None:
        services.study_ingest(payload=study, actor=actor, context=context)
    return store_report(report, actor=actor, context=context)


def _hl7_refusal(
    source: Any, code: str, error: AdapterError, status: int, outcome: str, control_id: str
) -> Answer:
    ack = hl7_ack.build_ack(source, code=code, text=error.message, error=error)
    reason = f"{error.code}: {error.message}"
    return Answer(
        status, ack.encode("utf-8"), HL7_CONTENT_TYPE, outcome, reason, error.location, (), control_id
    )


def hl7_answer(
    raw: bytes, *, actor: AbstractBaseUser | None, context: audit.AuditContext, content_type: str = ""
) -> Answer:
    """AR (rejected) when the message cannot be parsed or validated, AE (application error) when it is
    valid but conflicts with the record, AA when stored, already stored, or deliberately not stored.
    """
    try:
        result = hl7.parse_oru(raw)
    except AdapterError as exc:
        peek = hl7_ack.peek_control_id(raw[:MAX_MESSAGE_BYTES])
        return _hl7_refusal(raw, "AR", exc, HL7_STATUS_REJECTED, InboundOutcome.REJECTED, peek)
    if result.report is None:
        ack = hl7_ack.build_ack(result, code="AA", text=result.ignored)
        return Answer(
            HL7_STATUS_ACCEPTED,
            ack.encode("utf-8"),
            HL7_CONTENT_TYPE,
            InboundOutcome.IGNORED,
            result.ignored,
            message_id=result.control_id,
        )

    def work() -> Answer:
        with ingest_unit():
            ingested = study_and_report(result.study, result.report, actor=actor, context=context)
            return logged_accepted(_hl7_accepted(result, ingested))

    try:
        return retrying(work)
    except RecordError as exc:
        error = AdapterError(exc.code, exc.message, exc.field)
        return _hl7_refusal(result, "AE", error, exc.status, InboundOutcome.REJECTED, result.control_id)
    except DatabaseError:
        # The record is untouched (the transaction rolled back); the sender should retry later.
        logger.exception("HL7 message could not be stored")
        error = AdapterError("unavailable", "The record store is unavailable; retry later.")
        return _hl7_refusal(
            result, "AE", error, HL7_STATUS_UNAVAILABLE, InboundOutcome.ERROR, result.control_id
        )


def _hl7_accepted(result: Any, ingested: services.Ingested) -> Answer:
    text = "stored" if ingested.created else "already stored"
    ack = hl7_ack.build_ack(result, code="AA", text=text)
    return Answer(
        HL7_STATUS_ACCEPTED,
        ack.encode("utf-8"),
        HL7_CONTENT_TYPE,
        InboundOutcome.STORED if ingested.created else InboundOutcome.DUPLICATE,
        records=(record_ref(ingested.record),),
        message_id=result.control_id,
    )
