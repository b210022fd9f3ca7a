"""The inbox: a user's notifications (feedback on their cases, cases assigned to them)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from audit import log as audit
from portal.accounts import roles
from portal.core.access import deny
from portal.core.errors import RecordNotFound
from portal.peer import notifications

PAGE_SIZE = 50


def _reader_or_deny(request: HttpRequest) -> None:
    """The inbox is for those who get notifications: radiologists (feedback) and reviewers (cases)."""
    if not roles.can_open_page(request.user, "inbox"):
        deny(request, reason="inbox")


@login_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    """The signed-in user's own notifications, newest first, 50 a page (nobody sees anyone else's)."""
    _reader_or_deny(request)
    paginator = Paginator(notifications.inbox_of(request.user), PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    items = list(page.object_list)
    with transaction.atomic():
        audit.record(
            "notification.inbox_view",
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            object_type="notification",
            details={"ids": [n.pk for n in items]},
        )
    request.peer_unread = notifications.unread_count(request.user)  # type: ignore[attr-defined]
    context = {
        "page": page,
        "items": items,
        "unread": request.peer_unread,  # type: ignore[attr-defined]
        "is_chair": roles.can_assign(request.user),
    }
    return render(request, "peer/inbox.html", context)


@login_required
@require_POST
def open_notification(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark one notification read and go where it points (someone else's: 404, audited)."""
    _reader_or_deny(request)
    try:
        notification = notifications.notification_mark_read(
            user=request.user, notification_id=pk, context=audit.AuditContext.from_request(request)
        )
    except RecordNotFound:
        deny(request, reason="notification", not_found=True)
    return redirect(notifications.target_url(notification))


@login_required
@require_POST
def mark_all_read(request: HttpRequest) -> HttpResponse:
    """Mark every notification of the user read."""
    _reader_or_deny(request)
    count = notifications.notifications_mark_all_read(
        user=request.user, context=audit.AuditContext.from_request(request)
    )
    messages.success(request, f"{count} notification{'s' if count != 1 else ''} marked read.")
    return redirect("peer-inbox")
