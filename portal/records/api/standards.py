"""Ingestion through the field's standards: FHIR R4, HL7 v2 ORU^R01 over HTTP, DICOM uploads.

Each view only translates: it takes the raw body and hands it to
:func:`portal.records.ingest.channels.receive`, which runs the channel's processor, logs the message
as received with its outcome, and returns the answer in the standard's own shape (OperationOutcome
or a response Bundle, an ACK with MSA/ERR, JSON 4xx), which the view sends back as it is.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from rest_framework import status
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.views import APIView

from audit import log as audit
from portal.accounts.permissions import CanIngest
from portal.records.api.openapi import dicom_upload_schema, fhir_resource_schema, hl7_message_schema
from portal.records.ingest import channels, hl7_ack
from portal.records.ingest.fhir_outcome import operation_outcome
from portal.records.ingest.inbound import Answer
from portal.records.ingest.payloads import AdapterError
from portal.records.ingest.store import HL7_CONTENT_TYPE
from portal.records.models import InboundChannel

FHIR_TYPES = ("application/fhir+json", "application/json")


class RawBodyParser(BaseParser):
    """Hands the view the raw body (bytes): the adapters do their own, stricter parsing."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        return stream.read() if stream is not None else b""


def _send(answer: Answer) -> HttpResponse:
    return HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)


def _raw(request: Request) -> bytes:
    # DRF hands an empty body over as {} rather than b"": the adapters then refuse it themselves.
    body = request.data
    if isinstance(body, str):
        return body.encode("utf-8")
    return body if isinstance(body, bytes) else b""


class _FhirView(APIView):
    """A FHIR endpoint: ``application/fhir+json`` in, FHIR JSON out; ``endpoint`` names the resource."""

    permission_classes = [CanIngest]
    parser_classes = [RawBodyParser]
    endpoint = ""

    @fhir_resource_schema
    def post(self, request: Request) -> HttpResponse:
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type not in FHIR_TYPES:
            outcome = operation_outcome(
                AdapterError("unsupported", "Content-Type must be application/fhir+json.")
            )
            return HttpResponse(
                _json_bytes(outcome),
                status=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                content_type="application/fhir+json",
            )
        answer = channels.receive(
            channel=InboundChannel.FHIR,
            endpoint=self.endpoint,
            body=_raw(request),
            content_type=content_type,
            actor=request.user,
            context=audit.AuditContext.from_request(request),
        )
        return _send(answer)


def _json_bytes(data: dict) -> bytes:
    return json.dumps(data).encode("utf-8")


class FhirDiagnosticReportView(_FhirView):
    """``POST /api/v1/fhir/DiagnosticReport``: preliminary from an AI model = AI output; signed = report."""

    endpoint = "DiagnosticReport"


class FhirPatientView(_FhirView):
    """``POST /api/v1/fhir/Patient``: later reports may name it as ``"Patient/<id>"`` (see Location)."""

    endpoint = "Patient"


class FhirPractitionerView(_FhirView):
    """``POST /api/v1/fhir/Practitioner``: a clinician, referenced later as ``"Practitioner/<id>"``."""

    endpoint = "Practitioner"


class FhirBundleView(_FhirView):
    """``POST /api/v1/fhir``: a ``transaction`` (all or nothing) or ``batch`` (per entry) Bundle."""

    endpoint = ""


class Hl7View(APIView):
    """``POST /api/v1/hl7``: an ORU^R01 message (ER7 text) in, an HL7 ACK out (AA, AE or AR)."""

    permission_classes = [CanIngest]
    parser_classes = [RawBodyParser]

    @hl7_message_schema
    def post(self, request: Request) -> HttpResponse:
        answer = channels.receive(
            channel=InboundChannel.HL7_HTTP,
            body=_raw(request),
            content_type=(request.content_type or "")[:128],
            actor=request.user,
            context=audit.AuditContext.from_request(request),
        )
        return _send(answer)

    def handle_exception(self, exc: Exception) -> HttpResponse:
        """Refusals made before the message is read (authentication, permission, or the database going
        away while they were checked) still answer with an ACK: an HL7 sender reads MSA, not JSON."""
        response = super().handle_exception(exc)
        return _as_ack(self.request, response)


def _as_ack(request: Request, response: HttpResponse) -> HttpResponse:
    """The refusal ``response`` (status and headers kept) with an HL7 NAK as its body.

    5xx: ``AE`` (the sender should retry later); 4xx: ``AR`` (resending the same will not help).
    """
    data = getattr(response, "data", None)
    detail = str(data.get("detail", "Refused.")) if isinstance(data, dict) else "Refused."
    try:
        raw: bytes | None = request.body  # the MSH to answer (control id), when it can be read
    except Exception:  # noqa: BLE001 - already consumed or too large: answer with an empty MSA-2
        raw = None
    code = "AE" if response.status_code >= 500 else "AR"
    error = AdapterError("unavailable" if code == "AE" else "refused", detail)
    refusal = HttpResponse(
        hl7_ack.build_ack(raw, code=code, error=error).encode("utf-8"),
        status=response.status_code,
        content_type=HL7_CONTENT_TYPE,
    )
    for header in ("Retry-After", "WWW-Authenticate"):
        if header in response:
            refusal[header] = response[header]
    return refusal


class DicomUploadView(APIView):
    """``POST /api/v1/dicom``: multipart upload of one .dcm file: its study, and an SR's report."""

    permission_classes = [CanIngest]
    parser_classes = [MultiPartParser]

    @dicom_upload_schema
    def post(self, request: Request) -> HttpResponse:
        upload = request.FILES.get("file")
        if upload is None:
            return HttpResponse(
                _json_bytes({"error": "missing_field", "detail": "Send the DICOM file in the 'file' field."}),
                status=status.HTTP_400_BAD_REQUEST,
                content_type="application/json",
            )
        if upload.size > settings.CONCORDANCE_MAX_UPLOAD_BYTES:
            return HttpResponse(
                _json_bytes({"error": "too_large", "detail": "File too large."}),
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                content_type="application/json",
            )
        answer = channels.receive(
            channel=InboundChannel.DICOM,
            body=upload.read(),
            content_type="application/dicom",
            actor=request.user,
            context=audit.AuditContext.from_request(request),
        )
        return _send(answer)
