"""The auditor's pages: the log's integrity status with "Verify now" followed live, the proof viewer,
and the organisation's public key.

Who may open them is decided above this app (``audit`` imports no domain app): :mod:`audit.urls`
takes the access check as an argument and the project's URL configuration passes it. The public key
page needs only a signed-in account: the key is public by design, and staff should be able to pin it.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods

from audit import checkpoints, integrator, verification_jobs
from audit.models import (
    AuditEvent,
    AuditLogHead,
    Checkpoint,
    VerificationJob,
    VerificationJobState,
    VerificationRun,
)
from audit.signing import key_fingerprint, public_key_pem
from audit.tasks import verify_log

View = Callable[..., HttpResponse]
#: How often the page asks how a running verification is doing.
POLL_EVERY = "1s"


def is_htmx(request: HttpRequest) -> bool:
    """Asked by htmx for a fragment (the answer then varies on the header: see :func:`fragment`)."""
    return request.headers.get("HX-Request") == "true"


def fragment(response: HttpResponse) -> HttpResponse:
    """Mark an answer that differs between htmx and full-page requests, so no cache (nor the
    browser's Back button) serves one for the other."""
    patch_vary_headers(response, ["HX-Request"])
    return response


def audit_status_view(guard: Callable[[View], View]) -> View:
    """The page's view: sign-in required, GET or POST, then ``guard`` (who may), then the page."""
    return login_required(require_http_methods(["GET", "POST"])(guard(_audit_status)))


def verification_job_view(guard: Callable[[View], View]) -> View:
    """The progress fragment of one "Verify now" job, polled by the status page."""
    return login_required(require_GET(guard(_verification_job)))


def _enqueue(job_id: int) -> None:
    verify_log.delay(full=True, job_id=job_id)


def _audit_status(request: HttpRequest) -> HttpResponse:
    """The status page; POST asks a worker to verify the whole log now (minutes on a large log; beat
    verifies incrementally in between) and, from htmx, answers with the job's live progress."""
    if request.method == "POST":
        job = verification_jobs.request_verification(
            requested_by=request.user.get_username(), enqueue=_enqueue
        )
        if is_htmx(request):
            return fragment(_job_fragment(request, job))
        messages.info(
            request, "Verification requested; the result appears here when the worker has finished."
        )
        return redirect("audit-status")
    head = AuditLogHead.objects.filter(pk=1).first()
    size = head.size if head else 0
    job = VerificationJob.objects.select_related("run").first()
    context = {
        "size": size,
        # Counted from the primary key past the tree's size: only the not yet integrated rows.
        "pending": AuditEvent.objects.filter(seq__gte=size).count(),
        "integrated_at": head.integrated_at if head else None,
        "expected_delay": integrator.expected_delay_s(head),
        "checkpoint": Checkpoint.objects.order_by("-tree_size").first(),
        "checkpoint_count": Checkpoint.objects.count(),
        "runs": VerificationRun.objects.order_by("-finished_at")[:10],
        "job": job if job is not None and not job.finished else None,
    }
    if context["job"] is not None:
        context.update(_job_context(job))
    return fragment(render(request, "audit/status.html", context))


def _verification_job(request: HttpRequest, job_id: int) -> HttpResponse:
    job = VerificationJob.objects.select_related("run").filter(pk=job_id).first()
    if job is None:
        raise Http404("No such verification.")
    return fragment(_job_fragment(request, job))


def _job_context(job: VerificationJob) -> dict[str, object]:
    return {"job": job, "stalled": verification_jobs.is_stalled(job), "poll_every": POLL_EVERY}


def _job_fragment(request: HttpRequest, job: VerificationJob) -> HttpResponse:
    """The job's progress; once done, also the "Last verification" card and the runs table, swapped
    out of band so that the whole page agrees with the result without a reload."""
    context = _job_context(job)
    if job.state == VerificationJobState.DONE:
        context["runs"] = VerificationRun.objects.order_by("-finished_at")[:10]
    response = render(request, "audit/_verification_job.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def public_key_page(request: HttpRequest) -> HttpResponse:
    """The organisation's checkpoint-signing public key and its fingerprint, for anyone signed in."""
    key, problem = _public_key()
    fingerprints = (
        Checkpoint.objects.values_list("key_fingerprint", flat=True).order_by("key_fingerprint").distinct()
    )
    context = {
        "pem": public_key_pem(key) if key else "",
        "fingerprint": key_fingerprint(key) if key else "",
        "problem": problem,
        "other_fingerprints": [f for f in fingerprints if key is None or f != key_fingerprint(key)],
    }
    return render(request, "audit/public_key.html", context, status=503 if problem else 200)


@login_required
@require_GET
def public_key_download(request: HttpRequest) -> HttpResponse:
    """The public key as a PEM file (``--public-key`` of verify_package.py)."""
    key, problem = _public_key()
    if key is None:
        return HttpResponse(problem, status=503, content_type="text/plain; charset=utf-8")
    response = HttpResponse(public_key_pem(key), content_type="application/x-pem-file")
    response["Content-Disposition"] = 'attachment; filename="concordance-audit-public-key.pem"'
    return response


def _public_key() -> tuple[Ed25519PublicKey | None, str]:
    """The key, or None and why not (the key file is missing or unreadable)."""
    try:
        return checkpoints.signing_key().public_key(), ""
    except (FileNotFoundError, PermissionError, ValueError):
        return None, "The signing key is not available on this server; ask the administrator."
