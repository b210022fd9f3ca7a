"""Portal pages that belong to no single app: the landing page and the auditor's status page."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from audit import log as audit
from audit.models import AuditLogHead, Checkpoint, VerificationRun
from audit.tasks import verify_log
from portal.accounts import roles
from portal.records import selectors
from portal.review.selectors import comparison_counts


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The landing page: what the record holds, as far as this user may see it."""
    return render(
        request,
        "portal/home.html",
        {
            "counts": selectors.record_counts(request.user),
            "comparisons": comparison_counts(request.user),
            "roles": sorted(role.value for role in roles.roles_of(request.user)),
            "can_view_audit_status": roles.can_view_audit_status(request.user),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def audit_status(request: HttpRequest) -> HttpResponse:
    """The auditor's page: the latest signed checkpoint and the last verifications of the log.

    POST asks a worker to verify the whole log now (it can take minutes on a large log).
    """
    if not roles.can_view_audit_status(request.user):
        with transaction.atomic():
            audit.record(
                "access.denied",
                actor=request.user,
                context=audit.AuditContext.from_request(request),
                details={"reason": "PermissionDenied"},
            )
        raise PermissionDenied
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
