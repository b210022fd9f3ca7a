"""Ingestion through the field's standards: FHIR R4 DiagnosticReport, HL7 v2 ORU^R01, DICOM uploads.

Each view is thin: the adapter (``portal.records.fhir`` / ``hl7`` / ``dicom``) turns the wire format
into neutral payloads, :mod:`portal.records.ingest` writes them in one transaction, and errors come
back in the standard's own shape (OperationOutcome, ACK with MSA/ERR, JSON 4xx).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from rest_framework import status
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import log as audit
from portal.accounts.permissions import CanIngest
from portal.core.errors import RecordError
from portal.records import dicom, fhir, ingest
from portal.records.api.openapi import dicom_upload_schema, fhir_diagnostic_report_schema, hl7_message_schema
from portal.records.api.serializers import StudyOutput
from portal.records.api.views import ingested_response
from portal.records.payloads import TOO_LARGE, AdapterError


class RawBodyParser(BaseParser):
    """Hands the view the raw body (bytes): the adapters do their own, stricter parsing."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        return stream.read() if stream is not None else b""


class FhirDiagnosticReportView(APIView):
    """``POST /api/v1/fhir/DiagnosticReport``.

    Preliminary with the model identified = AI output; final/amended/corrected/appended = signed report.
    """

    permission_classes = [CanIngest]
    parser_classes = [RawBodyParser]

    @fhir_diagnostic_report_schema
    def post(self, request: Request) -> Response:
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type not in ("application/fhir+json", "application/json"):
            return self._outcome(
                AdapterError("unsupported", "Content-Type must be application/fhir+json."),
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            )
        try:
            parsed = fhir.parse_diagnostic_report(request.data, max_bytes=settings.CONCORDANCE_MAX_JSON_BYTES)
            result = ingest.fhir_report(
                parsed, actor=request.user, context=audit.AuditContext.from_request(request)
            )
        except AdapterError as exc:
            return self._outcome(
                exc,
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
                if exc.code == TOO_LARGE
                else status.HTTP_400_BAD_REQUEST,
            )
        except RecordError as exc:
            return self._outcome(AdapterError(exc.code, exc.message, exc.field), exc.status)
        body = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": f"{'Created' if result.created else 'Already stored'}: "
                    f"{type(result.record).__name__} {result.record.pk}",
                }
            ],
        }
        return Response(
            body,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
            content_type="application/fhir+json",
        )

    def _outcome(self, error: AdapterError, http_status: int) -> Response:
        return Response(
            fhir.operation_outcome(error), status=http_status, content_type="application/fhir+json"
        )


class Hl7View(APIView):
    """``POST /api/v1/hl7``: an ORU^R01 message (ER7 text) in, an HL7 ACK out (AA, AE or AR)."""

    permission_classes = [CanIngest]
    parser_classes = [RawBodyParser]

    @hl7_message_schema
    def post(self, request: Request) -> HttpResponse:
        # DRF hands an empty body over as {} rather than b"": the adapter then refuses it with an AR.
        body = request.data if isinstance(request.data, bytes | str) else b""
        ack, http_status = ingest.hl7_message(
            body, actor=request.user, context=audit.AuditContext.from_request(request)
        )
        return HttpResponse(ack.encode("utf-8"), status=http_status, content_type="x-application/hl7-v2+er7")


class DicomUploadView(APIView):
    """``POST /api/v1/dicom``: multipart upload of one .dcm file; its header becomes a Study."""

    permission_classes = [CanIngest]
    parser_classes = [MultiPartParser]

    @dicom_upload_schema(StudyOutput)
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            return Response(
                {"error": "missing_field", "detail": "Send the DICOM file in the 'file' field."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if upload.size > settings.CONCORDANCE_MAX_UPLOAD_BYTES:
            return Response(
                {"error": "too_large", "detail": "File too large."},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        try:
            payload = dicom.read_study_header(upload, max_bytes=settings.CONCORDANCE_MAX_UPLOAD_BYTES)
        except AdapterError as exc:
            http_status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE if exc.code == TOO_LARGE else 400
            return Response(
                {"error": exc.code, "detail": exc.message, "field": exc.location}, status=http_status
            )
        result = ingest.dicom_study(
            payload, actor=request.user, context=audit.AuditContext.from_request(request)
        )
        return ingested_response(result, StudyOutput)
