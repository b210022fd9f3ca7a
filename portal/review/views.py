"""The review pages: QA queue, case and adjudication, sampling campaigns, dashboard, feedback, summaries.

Thin: each view asks :mod:`portal.accounts.roles` first (refusals are audited), validates with a form,
reads through :mod:`portal.review.selectors` and writes through :mod:`portal.review.services`.
HTMX requests (``HX-Request``) get the partial the page swaps in; plain requests get the whole page,
so every page also works without JavaScript.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit import log as audit
from portal.accounts import roles
from portal.core.charts import bar_chart, line_chart
from portal.records.models import ModelVersion
from portal.review import selectors, services
from portal.review.errors import CaseNotFound, InvalidReview, ReviewForbidden
from portal.review.exports import performance_csv_rows, performance_pdf
from portal.review.forms import AdjudicationForm, AssignForm, CampaignForm, QueueFilterForm
from portal.review.models import Comparison, RadpeerScore, SamplingCampaign, StatDimension
from portal.review.presentation import Mark, highlight
from portal.review.pseudonyms import display_name, pseudonym

User = get_user_model()


def _deny(request: HttpRequest, *, reason: str, not_found: bool = False) -> None:
    """Audit a refusal, then refuse: 403, or 404 where even the existence of the thing is private."""
    with transaction.atomic():
        audit.record(
            "access.denied",
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            details={"reason": reason},
        )
    if not_found:
        raise Http404
    raise PermissionDenied


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _radiologist_label(comparison: Comparison, reveal: bool) -> str:
    if reveal and comparison.radiologist_id is not None:
        user = comparison.radiologist
        return display_name(
            user.pk, full_name=user.get_full_name(), username=user.get_username(), reveal=True
        )
    return pseudonym(comparison.radiologist_id)


def _queue_state(params: QueryDict) -> QueryDict:
    """The queue's filters and sort from a query string, without the page cursor (for case links)."""
    state = QueryDict(mutable=True)
    for name in QueueFilterForm.base_fields:
        if name != "cursor" and params.get(name):
            state[name] = params[name][:256]
    return state


# --- Queue --------------------------------------------------------------------------------------------


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    """The QA queue: filter, sort, page (keyset) and, for the chair, assign."""
    if not roles.can_view_review_queue(request.user):
        _deny(request, reason="review_queue")
    form = QueueFilterForm(request.GET)
    can_assign = roles.can_assign(request.user)
    reveal = roles.sees_radiologist_names(request.user)
    context: dict[str, Any] = {
        "form": form,
        "can_assign": can_assign,
        "model_versions": list(
            ModelVersion.objects.order_by("name", "version").only("pk", "name", "version")
        ),
        "reviewers": selectors.adjudicators(),
        "rows": [],
        "page": None,
    }
    status = 200
    if form.is_valid():
        try:
            page = selectors.queue_page(
                form.filters(), sort=form.sort_order(), cursor=form.cleaned_data["cursor"], with_names=reveal
            )
        except InvalidReview as exc:
            form.add_error(None, exc.message)
            status = 400
        else:
            state = _queue_state(request.GET).urlencode()
            context["page"] = page
            context["state"] = state
            context["rows"] = [
                {
                    "case": c,
                    "radiologist": _radiologist_label(c, reveal),
                    "assigned": page.assigned.get(c.pk, []),
                    "url": f"{reverse('review-case', args=[c.pk])}?{state}",
                }
                for c in page.rows
            ]
            if page.next_cursor:
                following = _queue_state(request.GET)
                following["cursor"] = page.next_cursor
                context["next_url"] = f"{reverse('review-queue')}?{following.urlencode()}"
            with transaction.atomic():
                audit.record(
                    "review_queue.view",
                    actor=request.user,
                    context=audit.AuditContext.from_request(request),
                    object_type="comparison",
                    details={"ids": [c.pk for c in page.rows]},
                )
    else:
        status = 400
    template = "review/_queue_results.html" if _is_htmx(request) else "review/queue.html"
    return render(request, template, context, status=status)


@login_required
@require_POST
def assign(request: HttpRequest) -> HttpResponse:
    """The chair gives the ticked cases to a reviewer, then returns to the same queue view."""
    if not roles.can_assign(request.user):
        _deny(request, reason="review_assign")
    form = AssignForm(request.POST)
    back = QueryDict(request.POST.get("back", "")[:2048])
    target = f"{reverse('review-queue')}?{_queue_state(back).urlencode()}"
    if not form.is_valid():
        messages.error(request, " ".join(form.non_field_errors()) or "Choose a reviewer and tick cases.")
        return redirect(target)
    reviewer = User.objects.filter(pk=form.cleaned_data["reviewer"], is_active=True).first()
    if reviewer is None:
        messages.error(request, "No such reviewer.")
        return redirect(target)
    try:
        assigned, skipped = services.assignments_create(
            comparison_ids=form.cleaned_data["cases"],
            reviewer=reviewer,
            actor=request.user,
            context=audit.AuditContext.from_request(request),
        )
    except (InvalidReview, ReviewForbidden) as exc:
        messages.error(request, exc.message)
        return redirect(target)
    note = f" ({skipped} skipped: already assigned, or the reviewer's own report)" if skipped else ""
    messages.success(request, f"{assigned} case{'s' if assigned != 1 else ''} assigned to {reviewer}{note}.")
    return redirect(target)


@login_required
@require_http_methods(["GET", "POST"])
def campaigns(request: HttpRequest) -> HttpResponse:
    """Sampling campaigns: the chair draws random, every-Nth or targeted samples of a cohort."""
    if not roles.can_assign(request.user):
        _deny(request, reason="review_campaigns")
    form = CampaignForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            reviewer = User.objects.filter(pk=form.cleaned_data["assign_to"], is_active=True).first()
            if reviewer is None:
                form.add_error("assign_to", "No such reviewer.")
            else:
                try:
                    campaign = services.campaign_create(
                        name=form.cleaned_data["name"],
                        method=form.cleaned_data["method"],
                        filters=form.filters(),
                        reviewer=reviewer,
                        actor=request.user,
                        context=audit.AuditContext.from_request(request),
                        percentage=form.cleaned_data.get("percentage"),
                        every_nth=form.cleaned_data.get("every_nth"),
                        seed=form.cleaned_data.get("seed"),
                    )
                except (InvalidReview, ReviewForbidden) as exc:
                    form.add_error(None, exc.message)
                else:
                    messages.success(
                        request,
                        f"Campaign '{campaign.name}': {campaign.selected_count} of {campaign.cohort_size} "
                        f"cases assigned (seed {campaign.seed}).",
                    )
                    return redirect("review-campaigns")
        status = 400
    context = {
        "form": form,
        "reviewers": selectors.adjudicators(),
        "model_versions": list(
            ModelVersion.objects.order_by("name", "version").only("pk", "name", "version")
        ),
        "campaigns": list(
            SamplingCampaign.objects.select_related("reviewer", "created_by").order_by("-created_at")[:50]
        ),
    }
    return render(request, "review/campaigns.html", context, status=status)


# --- Case ---------------------------------------------------------------------------------------------


def _case_or_deny(request: HttpRequest, pk: int) -> Comparison:
    comparison = selectors.case_get(pk)
    if comparison is None:
        raise Http404
    if not roles.can_view_case(request.user, radiologist_id=comparison.radiologist_id):
        # A radiologist must not learn that someone else's case exists: 404 for them, 403 for the rest.
        _deny(
            request,
            reason="review_case",
            not_found=roles.has_any_role(request.user, {roles.Role.RADIOLOGIST}),
        )
    return comparison


def _marks(discrepancies: list, side: str) -> list[Mark]:
    out = []
    for d in discrepancies:
        start, end = getattr(d, f"{side}_start"), getattr(d, f"{side}_end")
        if start is not None and end is not None:
            label = f"{d.get_category_display()} ({d.get_significance_display().lower()}): {d.finding}"
            out.append(Mark(start, end, d.pk, d.significance, label))
    return out


def _render_case(
    request: HttpRequest, comparison: Comparison, form: AdjudicationForm | None, status: int = 200
):
    user = request.user
    reveal = roles.sees_radiologist_names(user)
    committee = roles.can_view_review_queue(user)
    detail = selectors.case_detail(comparison, with_timeline=committee)
    can_adjudicate = roles.can_adjudicate(user, radiologist_id=comparison.radiologist_id)
    own_latest = next(
        (r for r in detail.reviews if r.reviewer_id == user.pk and not _is_superseded(r, detail.reviews)),
        None,
    )
    if can_adjudicate and form is None:
        initial = {
            "supersedes": own_latest.pk if own_latest else None,
            "back": _queue_state(request.GET).urlencode(),
        }
        form = AdjudicationForm(discrepancies=detail.discrepancies, initial=initial)
    state = _queue_state(request.GET if request.method == "GET" else QueryDict(request.POST.get("back", "")))
    previous_id = next_id = None
    if committee:
        queue_form = QueueFilterForm(state)
        if queue_form.is_valid():
            previous_id, next_id = selectors.queue_neighbours(
                comparison, queue_form.filters(), queue_form.sort_order()
            )
    suffix = f"?{state.urlencode()}" if state else ""
    fields = []
    if form is not None:
        for d in detail.discrepancies:
            fields.append((d, form[f"verdict_{d.pk}"]))
    candidate = comparison.candidate
    model = candidate.model_version
    context = {
        "case": comparison,
        "study": comparison.study,
        "candidate": candidate,
        "reference": comparison.reference,
        "model": model,
        "radiologist": _radiologist_label(comparison, reveal),
        "candidate_html": highlight(
            candidate.text, _marks(detail.discrepancies, "candidate"), side="candidate"
        ),
        "reference_html": highlight(
            comparison.reference.text, _marks(detail.discrepancies, "reference"), side="reference"
        ),
        "detail": detail,
        "reviews": [(r, _is_superseded(r, detail.reviews)) for r in detail.reviews],
        "committee": committee,
        "reveal": reveal,
        "timeline": [(e, _actor_label(e, reveal, comparison.radiologist_id)) for e in detail.timeline],
        "inputs_json": json.dumps(candidate.inputs, indent=2, sort_keys=True, ensure_ascii=False),
        "settings_json": json.dumps(
            candidate.generation_settings, indent=2, sort_keys=True, ensure_ascii=False
        ),
        "form": form,
        "verdict_fields": fields,
        "can_adjudicate": can_adjudicate,
        "own_latest": own_latest,
        "previous_url": f"{reverse('review-case', args=[previous_id])}{suffix}" if previous_id else "",
        "next_url": f"{reverse('review-case', args=[next_id])}{suffix}" if next_id else "",
        "queue_url": f"{reverse('review-queue')}{suffix}",
        "adjudicate_url": f"{reverse('review-adjudicate', args=[comparison.pk])}",
        "signed_own_report": comparison.radiologist_id == user.pk,
    }
    return render(request, "review/case.html", context, status=status)


def _is_superseded(review, reviews) -> bool:  # noqa: ANN001
    return any(other.supersedes_id == review.pk for other in reviews)


def _actor_label(event, reveal: bool, radiologist_id: int | None) -> str:  # noqa: ANN001
    """Who acted, as this viewer may see it: the case's radiologist appears as their pseudonym to everyone
    but the chair (committee members and systems appear by account name, as on the rest of the page).
    """
    if event.actor_id is not None and event.actor_id == radiologist_id and not reveal:
        return pseudonym(event.actor_id)
    return event.actor_username or event.actor_kind


@login_required
@require_GET
def case(request: HttpRequest, pk: int) -> HttpResponse:
    """One case: the AI draft beside the signed report, discrepancies highlighted, and the adjudication."""
    comparison = _case_or_deny(request, pk)
    with transaction.atomic():
        audit.record(
            "case.view",
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            object_type="comparison",
            object_id=comparison.pk,
            patient_id=comparison.study.patient_id,
            study_id=comparison.study_id,
        )
    return _render_case(request, comparison, None)


@login_required
@require_POST
def adjudicate(request: HttpRequest, pk: int) -> HttpResponse:
    """Store the reviewer's RADPEER score, verdicts, comment and optional feedback for a case."""
    comparison = _case_or_deny(request, pk)
    if not roles.can_adjudicate(request.user, radiologist_id=comparison.radiologist_id):
        _deny(request, reason="review_adjudicate")
    discrepancies = list(comparison.discrepancies.order_by("pk"))
    form = AdjudicationForm(request.POST, discrepancies=discrepancies)
    if not form.is_valid():
        return _render_case(request, comparison, form, status=400)
    supersedes = None
    if form.cleaned_data.get("supersedes"):
        supersedes = comparison.reviews.filter(
            pk=form.cleaned_data["supersedes"], reviewer=request.user
        ).first()
        if supersedes is None:
            form.add_error("supersedes", "That is not one of your reviews of this case.")
            return _render_case(request, comparison, form, status=400)
    try:
        services.review_submit(
            comparison=comparison,
            reviewer=request.user,
            radpeer=form.cleaned_data["radpeer"],
            comment=form.cleaned_data.get("comment") or "",
            verdicts=form.verdicts(),
            feedback_message=(form.cleaned_data.get("feedback_message") or "")
            if form.cleaned_data.get("send_feedback")
            else "",
            supersedes=supersedes,
            context=audit.AuditContext.from_request(request),
        )
    except (InvalidReview, ReviewForbidden) as exc:
        form.add_error(None, exc.message)
        return _render_case(request, comparison, form, status=400)
    messages.success(request, f"Case {comparison.pk} scored RADPEER {form.cleaned_data['radpeer']}.")
    state = _queue_state(QueryDict(form.cleaned_data.get("back") or "")).urlencode()
    return redirect(f"{reverse('review-case', args=[comparison.pk])}{'?' + state if state else ''}")


# --- Dashboard ----------------------------------------------------------------------------------------

PERIODS = {"30": 30, "90": 90, "180": 180, "365": 365, "730": 730}


def _period(request: HttpRequest) -> tuple[str, dt.date, dt.date]:
    key = request.GET.get("period", "180")
    if key not in PERIODS:
        key = "180"
    end = timezone.localdate()
    return key, end - dt.timedelta(days=PERIODS[key] - 1), end


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _breakdown_labels(
    dimension: str, keys: list[str], *, reveal: bool, models: dict[str, str]
) -> dict[str, str]:
    """Readable labels of a breakdown's keys: radiologists pseudonymised unless the viewer may see names."""
    if dimension == StatDimension.MODEL:
        return {key: models.get(key, "unknown model") for key in keys}
    if dimension != StatDimension.RADIOLOGIST:
        return {key: key or "not recorded" for key in keys}
    ids = [int(key) for key in keys if key.isdigit()]
    names = {}
    if reveal:
        names = {u.pk: u.get_full_name() or u.get_username() for u in User.objects.filter(pk__in=ids)}
    return {
        key: names.get(int(key)) or pseudonym(int(key)) if key.isdigit() else pseudonym(None) for key in keys
    }


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """Department figures over time and by model, specialty, modality and (pseudonymised) radiologist."""
    if not roles.can_view_review_dashboard(request.user):
        _deny(request, reason="review_dashboard")
    period, start, end = _period(request)
    reveal = roles.sees_radiologist_names(request.user)
    weekly = selectors.stats_series(StatDimension.ALL, "", start, end)
    labels = [w["week"].isoformat() for w in weekly]
    trend = line_chart(
        "Discrepancy rate and significant-discrepancy rate per week",
        labels,
        [
            ("any discrepancy", [_rate(w["with_discrepancy"], w["compared"]) for w in weekly]),
            ("significant", [_rate(w["significant"], w["compared"]) for w in weekly]),
        ],
        chart_id="chart-trend",
    )
    totals = {name: sum(w[name] for w in weekly) for name in selectors.COUNT_FIELDS}
    models = {str(m.pk): str(m) for m in ModelVersion.objects.only("pk", "name", "version")}
    breakdowns = []
    for dimension, title in (
        (StatDimension.MODEL, "By model version"),
        (StatDimension.SPECIALTY, "By specialty"),
        (StatDimension.MODALITY, "By modality"),
        (StatDimension.RADIOLOGIST, "By radiologist"),
    ):
        rows = selectors.stats_breakdown(dimension, start, end)[:25]
        labels_of = _breakdown_labels(dimension, [r["key"] for r in rows], reveal=reveal, models=models)
        table = [
            {
                "label": labels_of[r["key"]],
                "compared": r["compared"],
                "discrepancy_rate": _percent(_rate(r["with_discrepancy"], r["compared"])),
                "significant_rate": _percent(_rate(r["significant"], r["compared"])),
                "significant_value": _rate(r["significant"], r["compared"]) or 0.0,
            }
            for r in rows
            if r["compared"]
        ]
        chart = bar_chart(
            f"Significant-discrepancy rate {title.lower()}",
            [(t["label"], t["significant_value"], t["significant_rate"]) for t in table[:12]],
            chart_id=f"chart-{dimension}",
        )
        breakdowns.append({"dimension": dimension, "title": title, "rows": table, "chart": chart})
    suggested = [(score, totals[f"radpeer_{score}"]) for score in selectors.RADPEER_VALUES]
    committee = selectors.committee_radpeer(start, end)
    radpeer_chart = bar_chart(
        "RADPEER: engine suggestions",
        [(f"RADPEER {s}", n, f"{n}") for s, n in suggested],
        chart_id="chart-radpeer-suggested",
    )
    committee_chart = bar_chart(
        "RADPEER: committee scores",
        [(f"RADPEER {s}", n, f"{n}") for s, n in committee.items()],
        chart_id="chart-radpeer-committee",
    )
    context = {
        "period": period,
        "periods": list(PERIODS),
        "start": start,
        "end": end,
        "totals": totals,
        "discrepancy_rate": _percent(_rate(totals["with_discrepancy"], totals["compared"])),
        "significant_rate": _percent(_rate(totals["significant"], totals["compared"])),
        "trend_chart": trend,
        "weekly": [
            {
                **w,
                "discrepancy_rate": _percent(_rate(w["with_discrepancy"], w["compared"])),
                "significant_rate": _percent(_rate(w["significant"], w["compared"])),
            }
            for w in weekly
        ],
        "breakdowns": breakdowns,
        "radpeer_chart": radpeer_chart,
        "committee_chart": committee_chart,
        "suggested": suggested,
        "committee": committee,
        "refreshed_at": selectors.stats_refreshed_at(),
    }
    return render(request, "review/dashboard.html", context)


# --- Feedback -----------------------------------------------------------------------------------------


@login_required
@require_GET
def my_feedback(request: HttpRequest) -> HttpResponse:
    """A radiologist's own cases with the committee's comments, and own trends against the department."""
    if not roles.can_receive_feedback(request.user):
        _deny(request, reason="review_feedback")
    period, start, end = _period(request)
    items = selectors.feedback_for(request.user)
    own = selectors.stats_series(StatDimension.RADIOLOGIST, str(request.user.pk), start, end)
    department = selectors.stats_series(StatDimension.ALL, "", start, end)
    weeks = sorted({w["week"] for w in department} | {w["week"] for w in own})
    by_week_own = {w["week"]: w for w in own}
    by_week_dept = {w["week"]: w for w in department}

    def rate(table: dict, week: dt.date) -> float | None:
        row = table.get(week)
        return _rate(row["significant"], row["compared"]) if row else None

    chart = line_chart(
        "Your significant-discrepancy rate per week against the department",
        [w.isoformat() for w in weeks],
        [
            ("you", [rate(by_week_own, w) for w in weeks]),
            ("department", [rate(by_week_dept, w) for w in weeks]),
        ],
        chart_id="chart-own-trend",
    )
    own_totals = {name: sum(w[name] for w in own) for name in ("compared", "significant", "with_discrepancy")}
    dept_totals = {
        name: sum(w[name] for w in department) for name in ("compared", "significant", "with_discrepancy")
    }
    with transaction.atomic():
        audit.record(
            "feedback.list",
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            object_type="feedback",
            details={"ids": [f.pk for f in items]},
        )
    context = {
        "items": items,
        "chart": chart,
        "period": period,
        "periods": list(PERIODS),
        "own_rate": _percent(_rate(own_totals["significant"], own_totals["compared"])),
        "dept_rate": _percent(_rate(dept_totals["significant"], dept_totals["compared"])),
        "own_totals": own_totals,
        "own_radpeer": selectors.committee_radpeer(start, end, radiologist_id=request.user.pk),
        "reader": pseudonym(request.user.pk),
    }
    return render(request, "review/feedback.html", context)


@login_required
@require_POST
def feedback_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    """The radiologist acknowledges one feedback (HTMX swaps the item; without JS, back to the list)."""
    if not roles.can_receive_feedback(request.user):
        _deny(request, reason="review_feedback_acknowledge")
    try:
        feedback = services.feedback_acknowledge(
            feedback_id=pk, user=request.user, context=audit.AuditContext.from_request(request)
        )
    except CaseNotFound:
        _deny(request, reason="review_feedback_acknowledge", not_found=True)
    if _is_htmx(request):
        feedback = selectors.feedback_for(request.user)
        item = next((f for f in feedback if f.pk == pk), None)
        return render(request, "review/_feedback_item.html", {"item": item})
    messages.success(request, "Feedback acknowledged.")
    return redirect("review-feedback")


# --- Performance summaries (OPPE / FPPE) --------------------------------------------------------------


def _performance(request: HttpRequest) -> tuple[str, dt.date, dt.date, list[selectors.PerformanceRow]]:
    if not roles.can_view_performance_summaries(request.user):
        _deny(request, reason="review_performance")
    period, start, end = _period(request)
    return period, start, end, selectors.performance_summary(start, end)


def _audit_export(request: HttpRequest, fmt: str, rows: list) -> None:
    with transaction.atomic():
        audit.record(
            "performance_summary.export",
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            object_type="performance_summary",
            details={"format": fmt, "radiologists": [r.radiologist_id for r in rows]},
        )


@login_required
@require_GET
def performance(request: HttpRequest) -> HttpResponse:
    """The chair's OPPE/FPPE-style summary per radiologist, with CSV and PDF exports."""
    period, start, end, rows = _performance(request)
    return render(
        request,
        "review/performance.html",
        {
            "rows": rows,
            "period": period,
            "periods": list(PERIODS),
            "start": start,
            "end": end,
            "scores": [s.value for s in RadpeerScore],
        },  # fmt: skip
    )


@login_required
@require_GET
def performance_csv(request: HttpRequest) -> HttpResponse:
    """The summary as CSV (cells that a spreadsheet would run as formulas are neutralised)."""
    period, start, end, rows = _performance(request)
    _audit_export(request, "csv", rows)
    buffer = io.StringIO()
    csv.writer(buffer).writerows(performance_csv_rows(rows, start, end))
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="performance-{start}-{end}.csv"'
    return response


@login_required
@require_GET
def performance_pdf_view(request: HttpRequest) -> HttpResponse:
    """The summary as a PDF for the credentials file."""
    period, start, end, rows = _performance(request)
    _audit_export(request, "pdf", rows)
    response = HttpResponse(performance_pdf(rows, start, end), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="performance-{start}-{end}.pdf"'
    return response
