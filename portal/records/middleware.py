"""Request size limits, enforced before a body is read."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

UPLOAD_PATHS = ("/api/v1/dicom",)


class RequestSizeLimitMiddleware:
    """Refuse bodies over the configured cap with 413 (larger cap for DICOM uploads).

    A declared Content-Length over the cap is refused without reading the body; a body sent without a
    length (chunked) is bounded by Django's DATA_UPLOAD_MAX_MEMORY_SIZE when it is read.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = (
            settings.CONCORDANCE_MAX_UPLOAD_BYTES
            if request.path.startswith(UPLOAD_PATHS)
            else settings.CONCORDANCE_MAX_JSON_BYTES
        )
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            return JsonResponse(
                {"error": "bad_request", "detail": "Content-Length is not a number."}, status=400
            )
        if length > limit:
            body = {"error": "too_large", "detail": f"Request body exceeds the limit of {limit} bytes."}
            if request.path.startswith("/api/v1/fhir"):
                body = {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "too-long", "diagnostics": body["detail"]}],
                }
            return JsonResponse(body, status=413)
        return self.get_response(request)
