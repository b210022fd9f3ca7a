"""One mapping from domain errors to HTTP answers for the whole API."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from portal.core.access import record_denial
from portal.core.errors import RecordError

FHIR_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    413: "too-long",
    415: "not-supported",
    429: "throttled",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map :class:`RecordError` to its status with ``{"error", "detail", "field"}``; else DRF's default.

    Under /api/v1/fhir/ every error is an OperationOutcome, as FHIR clients expect.
    """
    if isinstance(exc, RecordError):
        response = Response({"error": exc.code, "detail": exc.message, "field": exc.field}, status=exc.status)
    elif isinstance(exc, RequestDataTooBig):
        response = Response(
            {"error": "too_large", "detail": "Request body too large."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    elif isinstance(exc, RecursionError):
        # JSON nested deeper than the interpreter's stack: DRF's parser maps only ValueError.
        response = Response(
            {"error": "malformed", "detail": "JSON parse error - nested too deeply."},
            status=status.HTTP_400_BAD_REQUEST,
        )
    elif isinstance(exc, OperationalError | InterfaceError):
        # The database went away (restart, failover, killed connection): the transaction was rolled
        # back, so nothing is half-written and the sender should simply retry.
        response = Response(
            {"error": "unavailable", "detail": "The database is unavailable; retry shortly."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    else:
        response = drf_exception_handler(exc, context)
    request = context.get("request")
    if request is not None and isinstance(exc, exceptions.PermissionDenied | exceptions.NotAuthenticated):
        record_denial(request, reason=type(exc).__name__)
    if response is not None and request is not None and request.path.startswith("/api/v1/fhir"):
        detail = (
            response.data.get("detail", "Request refused.") if isinstance(response.data, dict) else "Refused."
        )
        response.data = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": FHIR_ISSUE_CODES.get(response.status_code, "processing"),
                    "diagnostics": str(detail),
                }
            ],
        }
        response.content_type = "application/fhir+json"
    return response
