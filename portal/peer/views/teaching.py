"""Teaching sets: list and create, one set with its cases, add/edit/remove a case, export PDF or bundle."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit import log as audit
from portal.accounts import roles
from portal.core.access import deny
from portal.core.errors import RecordError
from portal.peer import exports, selectors, teaching
from portal.peer.forms import AddCaseForm, TeachingCaseForm, TeachingSetForm
from portal.peer.models import TeachingCase, TeachingSet


def _chair_or_deny(request: HttpRequest, reason: str) -> None:
    if not roles.can_assign(request.user):
        deny(request, reason=reason)


def _audit_view(request: HttpRequest, action: str, *, object_id: object, details: dict | None = None) -> None:
    """Record that the chair looked at teaching material (de-identified, but drawn from case records)."""
    with transaction.atomic():
        audit.record(
            action,
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            object_type="teaching_set" if action.startswith("teaching_set") else "teaching_case",
            object_id=object_id,
            details=details,
        )


def _set_or_404(request: HttpRequest, pk: int) -> TeachingSet:
    found = TeachingSet.objects.filter(pk=pk).first()
    if found is None:
        deny(request, reason="teaching_set_missing", not_found=True)
    return found


@login_required
@require_http_methods(["GET", "POST"])
def teaching_sets(request: HttpRequest) -> HttpResponse:
    """The chair's teaching sets, and the form that starts a new one."""
    _chair_or_deny(request, "teaching_sets")
    form = TeachingSetForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                created = teaching.teaching_set_create(
                    title=form.cleaned_data["title"],
                    conference_date=form.cleaned_data["conference_date"],
                    description=form.cleaned_data["description"],
                    actor=request.user,
                    context=audit.AuditContext.from_request(request),
                )
            except RecordError as exc:
                form.add_error(None, exc.message)
            else:
                return redirect("peer-teaching-set", pk=created.pk)
        status = 400
    sets = list(selectors.teaching_sets().select_related("created_by"))
    _audit_view(request, "teaching_sets.view", object_id="", details={"ids": [s.pk for s in sets]})
    context = {"form": form, "sets": sets, "section": "teaching"}
    return render(request, "peer/teaching_sets.html", context, status=status)


def _render_set(
    request: HttpRequest, teaching_set: TeachingSet, form: AddCaseForm, status: int = 200
) -> HttpResponse:
    cases = list(teaching_set.cases.order_by("position"))
    _audit_view(request, "teaching_set.view", object_id=teaching_set.pk)
    context = {
        "set": teaching_set,
        "cases": cases,
        "form": form,
        "candidates": selectors.teachable_cases(exclude_set=teaching_set),
        "section": "teaching",
    }
    return render(request, "peer/teaching_set.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def teaching_set(request: HttpRequest, pk: int) -> HttpResponse:
    """One set: its de-identified cases, and the form that adds an adjudicated case to it."""
    _chair_or_deny(request, "teaching_set")
    found = _set_or_404(request, pk)
    form = AddCaseForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            try:
                case = teaching.teaching_case_add(
                    teaching_set=found,
                    comparison_id=form.cleaned_data["case"],
                    actor=request.user,
                    context=audit.AuditContext.from_request(request),
                )
            except RecordError as exc:
                form.add_error("case", exc.message)
                return _render_set(request, found, form, status=exc.status)
            messages.success(
                request, f"Case added as number {case.position}; check its texts before the conference."
            )
            return redirect("peer-teaching-set", pk=found.pk)
        return _render_set(request, found, form, status=400)
    return _render_set(request, found, form)


def _case_or_404(request: HttpRequest, set_pk: int, case_pk: int) -> TeachingCase:
    case = TeachingCase.objects.filter(pk=case_pk, teaching_set_id=set_pk).first()
    if case is None:
        deny(request, reason="teaching_case_missing", not_found=True)
    return case


@login_required
@require_http_methods(["GET", "POST"])
def teaching_case_edit(request: HttpRequest, pk: int, case_pk: int) -> HttpResponse:
    """The chair corrects a copied case's texts (saved de-identified again)."""
    _chair_or_deny(request, "teaching_case_edit")
    case = _case_or_404(request, pk, case_pk)
    initial = {
        "ai_draft": case.ai_draft,
        "signed_report": case.signed_report,
        "committee_comment": case.committee_comment,
    }
    form = TeachingCaseForm(request.POST if request.method == "POST" else None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                teaching.teaching_case_edit(
                    case=case,
                    actor=request.user,
                    context=audit.AuditContext.from_request(request),
                    **form.cleaned_data,
                )
            except RecordError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Case {case.position} saved.")
                return redirect("peer-teaching-set", pk=pk)
        status = 400
    _audit_view(request, "teaching_case.view", object_id=case.pk, details={"teaching_set": pk})
    context = {"set": case.teaching_set, "case": case, "form": form, "section": "teaching"}
    return render(request, "peer/teaching_case_edit.html", context, status=status)


@login_required
@require_POST
def teaching_case_remove(request: HttpRequest, pk: int, case_pk: int) -> HttpResponse:
    """Take a case out of the set."""
    _chair_or_deny(request, "teaching_case_remove")
    case = _case_or_404(request, pk, case_pk)
    teaching.teaching_case_remove(
        case=case, actor=request.user, context=audit.AuditContext.from_request(request)
    )
    messages.success(request, "Case removed from the set.")
    return redirect("peer-teaching-set", pk=pk)


@login_required
@require_GET
def teaching_set_export(request: HttpRequest, pk: int, export_format: str) -> HttpResponse:
    """Download the set: ``pdf`` (slides) or ``zip`` (JSON + Markdown). Audited."""
    _chair_or_deny(request, "teaching_set_export")
    found = _set_or_404(request, pk)
    cases = list(found.cases.order_by("position"))
    teaching.teaching_export_record(
        teaching_set=found,
        export_format=export_format,
        actor=request.user,
        context=audit.AuditContext.from_request(request),
    )
    if export_format == "pdf":
        body, content_type = exports.set_pdf(found, cases), "application/pdf"
    else:
        body, content_type = exports.set_bundle(found, cases), "application/zip"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="teaching-set-{found.pk}.{export_format}"'
    response["Cache-Control"] = "no-store"
    return response
