"""Every inbound channel in one table: receive a message, process it, log it, answer it; replay it.

``receive`` is what the HTTP views, the MLLP listener and the DICOM import all call: it runs the
channel's processor (raw bytes in, :class:`~.inbound.Answer` out), writes the raw message and its
outcome to the inbound log (an accepted message's row inside its ingestion transaction, see
:func:`~.inbound.log_accepted`; a refusal's in its own), and only then returns the answer for the
transport to send. ``replay``
sends a logged message through the same processor again once its cause is fixed (a clinician linked,
a Patient posted); the services are idempotent, so replaying twice stores nothing twice.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from audit import log as audit
from portal.core.errors import InvalidRecord, RecordNotFound
from portal.records.ingest import dicom_store, fhir_store, store
from portal.records.ingest.inbound import Answer, log_inbound, receiving
from portal.records.models import InboundChannel, InboundMessage, InboundOutcome

PROCESSORS = {
    (InboundChannel.HL7_HTTP, ""): store.hl7_answer,
    (InboundChannel.HL7_MLLP, ""): store.hl7_answer,
    (InboundChannel.FHIR, "DiagnosticReport"): fhir_store.report_answer,
    (InboundChannel.FHIR, "Patient"): fhir_store.patient_answer,
    (InboundChannel.FHIR, "Practitioner"): fhir_store.practitioner_answer,
    (InboundChannel.FHIR, ""): fhir_store.bundle_answer,
    (InboundChannel.DICOM, ""): dicom_store.dicom_answer,
}


def receive(
    *,
    channel: str,
    endpoint: str = "",
    body: bytes,
    content_type: str = "",
    actor: AbstractBaseUser | None,
    context: audit.AuditContext,
    replay_of: InboundMessage | None = None,
) -> Answer:
    """Process one inbound message with its channel's processor; log it before answering."""
    processor = PROCESSORS[(channel, endpoint)]
    fields = {
        "channel": channel,
        "endpoint": endpoint,
        "body": body,
        "content_type": content_type,
        "received_at": datetime.now(UTC),
        "started": time.perf_counter(),
        "actor": actor,
        "replay_of": replay_of,
    }
    with receiving(**fields) as reception:
        answer = processor(body, content_type=content_type, actor=actor, context=context)
    if reception.logged is not answer:
        # Refused, or a processor that does not log inside its transaction: a transaction of its own.
        log_inbound(answer=answer, **fields)
    return answer


# URL path -> (channel, FHIR endpoint) of the HTTP interfaces, for refusals made before any view runs.
_PATHS = {
    "/api/v1/hl7": (InboundChannel.HL7_HTTP, ""),
    "/api/v1/dicom": (InboundChannel.DICOM, ""),
    "/api/v1/fhir": (InboundChannel.FHIR, ""),
    "/api/v1/fhir/DiagnosticReport": (InboundChannel.FHIR, "DiagnosticReport"),
    "/api/v1/fhir/Patient": (InboundChannel.FHIR, "Patient"),
    "/api/v1/fhir/Practitioner": (InboundChannel.FHIR, "Practitioner"),
}


def log_refused_body(
    *, path: str, size: int, content_type: str, reason: str, actor: AbstractBaseUser | None
) -> None:
    """Log a body refused unread (over the size limit) on one of the interfaces; other paths: no-op."""
    found = _PATHS.get(path.rstrip("/"))
    if found is None:
        return
    channel, endpoint = found
    answer = Answer(413, b"", content_type, InboundOutcome.REJECTED, reason)
    log_inbound(
        channel=channel,
        endpoint=endpoint,
        body=b"",
        content_type=content_type,
        answer=answer,
        received_at=datetime.now(UTC),
        started=time.perf_counter(),
        actor=actor,
        replay_of=None,
        size=size,
    )


def replay(*, message_id: int, actor: AbstractBaseUser | None, context: audit.AuditContext) -> Answer:
    """Send a logged message through its processor again, as ``actor``; logged as a new row. Audited."""
    original = InboundMessage.objects.filter(pk=message_id).first()
    if original is None:
        raise RecordNotFound("No such inbound message.", field="message")
    if not original.is_replayable:
        raise InvalidRecord(
            "This body was refused unread (too large) and was not kept; the sender must resend it.",
            field="message",
        )
    with transaction.atomic():
        audit.record(
            "inbound.replay",
            actor=actor,
            context=context,
            object_type="inbound_message",
            object_id=original.pk,
            details={"channel": original.channel, "previous_outcome": original.outcome},
        )
    return receive(
        channel=original.channel,
        endpoint=original.endpoint,
        body=bytes(original.body),
        content_type=original.content_type,
        actor=actor,
        context=context,
        replay_of=original,
    )
