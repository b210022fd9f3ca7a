"""The auditor's page: the latest signed checkpoint and the last verifications of the log.

Who may open it is decided above this app (``audit`` imports no domain app): :mod:`audit.urls`
takes the access check as an argument and the project's URL configuration passes it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from audit.models import AuditLogHead, Checkpoint, VerificationRun
from audit.tasks import verify_log

View = Callable[..., HttpResponse]


def audit_status_view(guard: Callable[[View], View]) -> View:
    """The page's view: sign-in required, GET or POST, then ``guard`` (who may), then the page."""
    return login_required(require_http_methods(["GET", "POST"])(guard(_audit_status)))


def _audit_status(request: HttpRequest) -> HttpResponse:
    """The status page; POST asks a worker to verify the whole log now (minutes on a large log)."""
    if request.method == "POST":
        verify_log.delay()
        messages.info(
            request, "Verification requested; the result appears here when the worker has finished."
        )
        return redirect("audit-status")
    head = AuditLogHead.objects.filter(pk=1).first()
    return render(
        request,
        "audit/status.html",
        {
            "size": head.size if head else 0,
            "checkpoint": Checkpoint.objects.order_by("-tree_size").first(),
            "checkpoint_count": Checkpoint.objects.count(),
            "runs": VerificationRun.objects.order_by("-finished_at")[:10],
        },
    )
