"""The legal page: search studies, place and release holds, request and download export packages.

Counsel (and admins) only: :func:`portal.accounts.roles.can_use_legal_page`, and each action still asks
its own rule (holds, exports). Searches are POSTed so that no MRN or accession number ever appears in a
URL, a proxy log or the browser history; each search that shows patient data is an audited access.
Writes go through :mod:`portal.legal.services` and :mod:`portal.legal.export_jobs`, which audit them.
The export list polls itself (as a background request, so it does not keep an idle session alive)
while a package is being built.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from audit import log as audit
from portal.accounts import roles
from portal.core.access import deny
from portal.core.errors import InvalidRecord, RecordConflict
from portal.legal import export_jobs, selectors, services
from portal.legal.export.errors import ExportForbidden
from portal.legal.export.scope import MAX_ACCESSIONS
from portal.legal.models import ExportPackage, HoldScope, LegalHold
from portal.records.models import ModelVersion

POLL_EVERY = "2s"
_SPLIT = re.compile(r"[\s,;]+")


def _require_page(request: HttpRequest) -> None:
    if not roles.can_use_legal_page(request.user):
        deny(request, reason="legal.page")


# --- Forms ----------------------------------------------------------------------------------------------


class AccessionsField(forms.CharField):
    """Accession numbers typed or pasted one per line (or separated by commas); a list once clean."""

    widget = forms.Textarea(attrs={"rows": 2})

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value)
        return [a for a in _SPLIT.split(text) if a]

    def validate(self, value: list[str]) -> None:  # type: ignore[override]
        if self.required and not value:
            raise forms.ValidationError("List at least one accession number.")
        if len(value) > MAX_ACCESSIONS:
            raise forms.ValidationError(f"At most {MAX_ACCESSIONS} accession numbers.")
        if any(len(a) > 64 for a in value):
            raise forms.ValidationError("An accession number has at most 64 characters.")

    def run_validators(self, value: list[str]) -> None:  # type: ignore[override]
        return None  # the length rules above apply per number, not to the list


class PageForm(forms.Form):
    """A form of the legal page: its fields' HTML ids start with ``id_prefix`` (three forms, one page)."""

    id_prefix = "form"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}-%s")
        super().__init__(*args, **kwargs)


class ScopeFieldsMixin(PageForm):
    """The criteria shared by search and export: patient, accession numbers, study date range."""

    patient_mrn = forms.CharField(max_length=64, required=False, strip=True, label="Patient MRN")
    accession_numbers = AccessionsField(
        required=False, max_length=MAX_ACCESSIONS * 66, label="Accession numbers"
    )
    date_from = forms.DateField(
        required=False, label="Studies from", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="Studies to", widget=forms.DateInput(attrs={"type": "date"})
    )

    def scope_values(self) -> dict[str, Any]:
        """The service keywords of the criteria given (absent ones left out)."""
        data = self.cleaned_data
        values: dict[str, Any] = {}
        if data.get("patient_mrn"):
            values["patient_mrn"] = data["patient_mrn"]
        if data.get("accession_numbers"):
            values["accession_numbers"] = data["accession_numbers"]
        for name in ("date_from", "date_to"):
            if data.get(name) is not None:
                values[name] = data[name]
        return values


class SearchForm(ScopeFieldsMixin):
    """Find studies: by patient, accession numbers, and/or acquisition dates (see export/scope.py)."""

    id_prefix = "search"


class HoldForm(PageForm):
    """Place a hold: matter, reason, and exactly one scope (the chosen scope's fields are used)."""

    id_prefix = "hold"

    matter_reference = forms.CharField(max_length=128, strip=False, label="Matter reference")
    reason = forms.CharField(max_length=10_000, strip=False, widget=forms.Textarea(attrs={"rows": 2}))
    scope = forms.ChoiceField(choices=HoldScope.choices, widget=forms.RadioSelect, initial=HoldScope.STUDIES)
    patient_mrn = forms.CharField(max_length=64, required=False, label="Patient MRN")
    accession_numbers = AccessionsField(
        required=False, max_length=MAX_ACCESSIONS * 66, label="Accession numbers"
    )
    date_from = forms.DateField(
        required=False, label="Studies from", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="Studies to", widget=forms.DateInput(attrs={"type": "date"})
    )

    def scope_values(self) -> dict[str, Any]:
        """The service keywords of the chosen scope only."""
        data = self.cleaned_data
        if data["scope"] == HoldScope.PATIENT:
            return {"patient_mrn": data.get("patient_mrn") or ""}
        if data["scope"] == HoldScope.STUDIES:
            return {"accession_numbers": data.get("accession_numbers") or []}
        return {"date_from": data.get("date_from"), "date_to": data.get("date_to")}


class ReleaseForm(forms.Form):
    """Why counsel lifts a hold."""

    reason = forms.CharField(max_length=10_000, strip=False)


class ExportForm(ScopeFieldsMixin):
    """Request a package: matter, reason, the scope criteria, a model version, de-identification."""

    id_prefix = "export"

    matter_reference = forms.CharField(max_length=128, strip=False, label="Matter reference")
    reason = forms.CharField(max_length=10_000, strip=False, widget=forms.Textarea(attrs={"rows": 2}))
    model = forms.ChoiceField(required=False, label="Every study a model version touched")
    deidentify = forms.BooleanField(required=False, label="De-identify (DICOM PS3.15 basic profile)")

    field_order = ["matter_reference", "reason", "patient_mrn", "accession_numbers", "date_from", "date_to"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = ModelVersion.objects.order_by("name", "version").values_list("name", "version")
        self.fields["model"].choices = [("", "—"), *((f"{n}:{v}", f"{n} {v}") for n, v in names)]

    def scope_values(self) -> dict[str, Any]:
        """The criteria plus the model, for :func:`portal.legal.export_jobs.export_request`."""
        values = super().scope_values()
        if self.cleaned_data.get("model"):
            values["model"] = self.cleaned_data["model"]
        return values


def _add_error(form: forms.Form, exc: InvalidRecord | RecordConflict | ExportForbidden) -> None:
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, str(exc))


# --- Reads ----------------------------------------------------------------------------------------------


def _exports_context() -> dict[str, Any]:
    exports = selectors.recent_exports()
    return {
        "exports": exports,
        "exports_active": any(not p.is_finished for p in exports),
        "poll_every": POLL_EVERY,
    }


def _page(
    request: HttpRequest,
    *,
    search_form: SearchForm | None = None,
    hold_form: HoldForm | None = None,
    export_form: ExportForm | None = None,
    found: selectors.SearchResult | None = None,
    status: int = 200,
) -> HttpResponse:
    """The whole legal page, with whichever forms were just submitted (and their errors)."""
    holds = selectors.holds_listed(actor=request.user, context=audit.AuditContext.from_request(request))
    context = {
        "search_form": search_form or SearchForm(),
        "hold_form": hold_form or HoldForm(),
        "export_form": export_form or ExportForm(),
        "results": found.studies if found else None,
        "result_count": found.count if found else None,
        "search_limit": selectors.SEARCH_LIMIT,
        "holds": holds,
        "can_manage_holds": roles.can_manage_holds(request.user),
        "can_export": roles.can_export_packages(request.user),
        **_exports_context(),
    }
    return render(request, "legal/legal.html", context, status=status)


@login_required
@require_GET
def legal(request: HttpRequest) -> HttpResponse:
    """The legal page: search form, holds and exports."""
    _require_page(request)
    return _page(request)


@login_required
@require_POST
def search(request: HttpRequest) -> HttpResponse:
    """Search studies by patient MRN, accession numbers and/or study dates (POST: no PHI in URLs)."""
    _require_page(request)
    form = SearchForm(request.POST)
    if not form.is_valid():
        return _page(request, search_form=form, status=400)
    try:
        found = selectors.legal_search(
            criteria=form.scope_values(), actor=request.user, context=audit.AuditContext.from_request(request)
        )
    except InvalidRecord as exc:
        _add_error(form, exc)
        return _page(request, search_form=form, status=400)
    return _page(request, search_form=form, found=found)


@login_required
@require_POST
def hold_place(request: HttpRequest) -> HttpResponse:
    """Place a legal hold (counsel, admin)."""
    _require_page(request)
    if not roles.can_manage_holds(request.user):
        deny(request, reason="legal_hold.place")
    form = HoldForm(request.POST)
    if form.is_valid():
        try:
            hold = services.legal_hold_place(
                actor=request.user,
                context=audit.AuditContext.from_request(request),
                matter_reference=form.cleaned_data["matter_reference"],
                reason=form.cleaned_data["reason"],
                **form.scope_values(),
            )
        except InvalidRecord as exc:
            _add_error(form, exc)
        else:
            messages.success(request, f"Hold {hold.pk} placed for matter {hold.matter_reference}.")
            return redirect("legal")
    return _page(request, hold_form=form, status=400)


@login_required
@require_POST
def hold_release(request: HttpRequest, pk: int) -> HttpResponse:
    """Release an active hold with a reason (counsel, admin)."""
    _require_page(request)
    if not roles.can_manage_holds(request.user):
        deny(request, reason="legal_hold.release")
    hold = LegalHold.objects.filter(pk=pk).first()
    if hold is None:
        raise Http404
    form = ReleaseForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Hold {hold.pk} was not released: give a reason.")
        return _page(request, status=400)
    try:
        services.legal_hold_release(
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            hold=hold,
            reason=form.cleaned_data["reason"],
        )
    except (InvalidRecord, RecordConflict) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Hold {hold.pk} released.")
    return redirect("legal")


@login_required
@require_POST
def export_request(request: HttpRequest) -> HttpResponse:
    """Request a legal export package; a worker builds it and the list shows its progress."""
    _require_page(request)
    if not roles.can_export_packages(request.user):
        deny(request, reason="export.request")
    form = ExportForm(request.POST)
    if form.is_valid():
        try:
            package = export_jobs.export_request(
                actor=request.user,
                context=audit.AuditContext.from_request(request),
                matter_reference=form.cleaned_data["matter_reference"],
                reason=form.cleaned_data["reason"],
                deidentify=form.cleaned_data["deidentify"],
                **form.scope_values(),
            )
        except (InvalidRecord, ExportForbidden) as exc:
            _add_error(form, exc)
        else:
            messages.success(
                request, f"Export requested for matter {package.matter_reference}; it is being built."
            )
            return redirect("legal")
    return _page(request, export_form=form, status=400)


@login_required
@require_GET
def exports(request: HttpRequest) -> HttpResponse:
    """The export list partial (polled while a package is queued or building)."""
    _require_page(request)
    if not roles.can_export_packages(request.user):
        deny(request, reason="export.list")
    return render(request, "legal/_exports.html", {**_exports_context(), "can_export": True})


@login_required
@require_POST
def export_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a queued or building export (no partial package is ever left visible)."""
    _require_page(request)
    if not roles.can_export_packages(request.user):
        deny(request, reason="export.cancel")
    package = ExportPackage.objects.filter(pk=pk).first()
    if package is None:
        raise Http404
    try:
        export_jobs.export_cancel(
            actor=request.user, context=audit.AuditContext.from_request(request), package=package
        )
    except RecordConflict as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Export cancelled.")
    return redirect("legal")
