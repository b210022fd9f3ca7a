"""Request size limits, enforced before a body is read into memory.

A body over the limit is answered 413 with a readable reason (an OperationOutcome under the FHIR
base). Answering while the sender is still sending makes most servers close the socket under it, and
the sender then sees a connection reset instead of the 413: so a declared body of up to
:data:`DRAIN_LIMIT` bytes is read and thrown away first (in small chunks, never kept), and only a
larger one is cut off. A refused body sent by an authenticated ingesting account to one of the
interfaces is logged in the inbound-message log (its size and reason; the body itself was never
read into memory and is not kept).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.exceptions import AuthenticationFailed

from portal.accounts.roles import can_ingest
from portal.accounts.tokens import ApiTokenAuthentication
from portal.records.ingest.channels import log_refused_body

UPLOAD_PATHS = ("/api/v1/dicom",)
DRAIN_LIMIT = 64 * 1024 * 1024
_CHUNK = 64 * 1024


def _drain(request: HttpRequest, length: int) -> bool:
    """Read and discard a declared body so the sender can read our answer; False when too big to."""
    if length > DRAIN_LIMIT:
        return False
    stream = request.META.get("wsgi.input")
    remaining = length
    while stream is not None and remaining > 0:
        chunk = stream.read(min(_CHUNK, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
    return True


def _ingesting_account(request: HttpRequest) -> object | None:
    """The token's account when it may ingest (only those get their refusals logged), else None."""
    try:
        found = ApiTokenAuthentication().authenticate(request)  # type: ignore[arg-type]
    except AuthenticationFailed:
        return None
    user = found[0] if found else None
    return user if can_ingest(user) else None


class RequestSizeLimitMiddleware:
    """Refuse bodies over the configured cap with 413 (larger cap for DICOM uploads).

    A declared Content-Length over the cap is refused without keeping the body; a body sent without a
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
        if length <= limit:
            return self.get_response(request)
        detail = f"Request body exceeds the limit of {limit} bytes."
        body: dict = {"error": "too_large", "detail": detail}
        if request.path.startswith("/api/v1/fhir"):
            body = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "too-long", "diagnostics": detail}],
            }
        drained = _drain(request, length)
        account = _ingesting_account(request)
        if account is not None:
            log_refused_body(
                path=request.path,
                size=length,
                content_type=request.META.get("CONTENT_TYPE", ""),
                reason=f"too_large: {detail}",
                actor=account,  # type: ignore[arg-type]
            )
        response = JsonResponse(body, status=413)
        if not drained:
            response["Connection"] = "close"
        return response
