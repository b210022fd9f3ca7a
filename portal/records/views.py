"""Pages of the record for the integration admin: the interface monitor and the clinician directory.

Each view translates one request into one selector or service call; access is decided by
:mod:`portal.accounts.roles` and every refusal is audited before the 403 (:mod:`portal.core.access`).
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from audit import log as audit
from portal.accounts import roles
from portal.core.access import require
from portal.core.errors import RecordError, RecordNotFound
from portal.records import clinicians, selectors
from portal.records.ingest import channels
from portal.records.models import InboundChannel, InboundOutcome

# Every page here is the integration admin's; a refusal is audited before the 403 (portal.core.access).
admin_only = require(roles.can_manage_interfaces, reason="PermissionDenied")


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
@admin_only
def interfaces(request: HttpRequest) -> HttpResponse:
    """The interface monitor: per-channel counts and latency, and every refused message with its reason."""
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
@admin_only
def interface_replay(request: HttpRequest, pk: int) -> HttpResponse:
    """Send a logged message through its channel again (after its cause was fixed); idempotent."""
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
@admin_only
def clinician_directory(request: HttpRequest) -> HttpResponse:
    """Clinicians the feeds have named, and the radiologist account each is linked to."""
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
@admin_only
def clinician_link(request: HttpRequest, pk: int) -> HttpResponse:
    """Link (or unlink) one clinician to a radiologist account; audited by the service."""
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
