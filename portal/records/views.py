"""Pages of the record for the integration admin: the interface monitor and the clinician directory.

Each view translates one request into one selector or service call; access is decided by
:mod:`portal.accounts.roles` and every refusal is audited before the 403.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from audit import log as audit
from portal.accounts import roles
from portal.records import clinicians, selectors
from portal.records.errors import RecordError, RecordNotFound
from portal.records.ingest import channels
from portal.records.models import InboundChannel, InboundOutcome


def _require(request: HttpRequest, allowed: Callable[[object], bool]) -> None:
    """403 (audited as access.denied) unless ``allowed(request.user)``."""
    if allowed(request.user):
        return
    with transaction.atomic():
        audit.record(
            "access.denied",
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            details={"reason": "PermissionDenied"},
        )
    raise PermissionDenied


class MonitorFilter(forms.Form):
    """The monitor's filters: one channel (or all), and the keyset cursor of the refusal list."""

    channel = forms.ChoiceField(choices=[("", "All channels"), *InboundChannel.choices], required=False)
    before = forms.IntegerField(min_value=1, required=False)


class LinkForm(forms.Form):
    """Link a clinician to a radiologist account; no account unlinks."""

    account = forms.IntegerField(min_value=1, required=False)


class DirectoryFilter(forms.Form):
    """The directory's search: part of a name or identifier, and whether to show only unlinked ones."""

    q = forms.CharField(max_length=64, required=False, strip=True)
    unlinked = forms.BooleanField(required=False)


@login_required
@require_GET
def interfaces(request: HttpRequest) -> HttpResponse:
    """The interface monitor: per-channel counts and latency, and every refused message with its reason."""
    _require(request, roles.can_manage_interfaces)
    query = MonitorFilter(request.GET)
    filters = query.cleaned_data if query.is_valid() else {}
    refused = selectors.refused_messages(
        channel=filters.get("channel") or "", before_id=filters.get("before")
    )
    return render(
        request,
        "records/interfaces.html",
        {
            "filter": query,
            "today": selectors.interface_figures(since=timezone.now() - dt.timedelta(hours=24)),
            "ever": selectors.interface_figures(),
            "refused": refused,
            "next_before": refused[-1].pk if len(refused) == selectors.MONITOR_PAGE else None,
            "outcomes": InboundOutcome.choices,
        },
    )


@login_required
@require_POST
def interface_replay(request: HttpRequest, pk: int) -> HttpResponse:
    """Send a logged message through its channel again (after its cause was fixed); idempotent."""
    _require(request, roles.can_manage_interfaces)
    try:
        answer = channels.replay(
            message_id=pk, actor=request.user, context=audit.AuditContext.from_request(request)
        )
    except RecordNotFound as exc:
        raise Http404(exc.message) from exc
    except RecordError as exc:
        messages.error(request, exc.message)
        return redirect("records-interfaces")
    label = InboundOutcome(answer.outcome).label
    reason = f": {answer.reason}" if answer.reason else ""
    report = messages.success if answer.status < 400 else messages.error
    report(request, f"Message {pk} replayed — {label}{reason}")
    return redirect("records-interfaces")


@login_required
@require_GET
def clinician_directory(request: HttpRequest) -> HttpResponse:
    """Clinicians the feeds have named, and the radiologist account each is linked to."""
    _require(request, roles.can_manage_interfaces)
    query = DirectoryFilter(request.GET)
    filters = query.cleaned_data if query.is_valid() else {}
    return render(
        request,
        "records/clinicians.html",
        {
            "filter": query,
            "clinicians": selectors.clinician_directory(
                query=filters.get("q") or "", unlinked_only=bool(filters.get("unlinked"))
            ),
            "accounts": selectors.radiologist_accounts(),
        },
    )


@login_required
@require_POST
def clinician_link(request: HttpRequest, pk: int) -> HttpResponse:
    """Link (or unlink) one clinician to a radiologist account; audited by the service."""
    _require(request, roles.can_manage_interfaces)
    form = LinkForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a radiologist account.")
        return redirect("records-clinicians")
    try:
        clinician = clinicians.clinician_link(
            clinician_id=pk,
            account_id=form.cleaned_data["account"],
            actor=request.user,
            context=audit.AuditContext.from_request(request),
        )
    except RecordNotFound as exc:
        raise Http404(exc.message) from exc
    except RecordError as exc:
        messages.error(request, exc.message)
        return redirect("records-clinicians")
    linked = clinician.account.get_username() if clinician.account else "no account"
    messages.success(request, f"{clinician.display_name} is now linked to {linked}.")
    return redirect("records-clinicians")
