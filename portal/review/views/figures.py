"""The figures pages: the department dashboard, the radiologist's own feedback and trend, and the
chair's OPPE/FPPE performance summary with its CSV and PDF.

Every figure comes from the daily rollup (:mod:`portal.review.rollup`, refreshed for a case's day as
soon as a review commits) and says when it was computed ("as of"). The committee's verdicts split the
errors: those of the signed report feed RADPEER, feedback and OPPE/FPPE; those of the AI draft feed
the model version's figures only.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from audit import log as audit
from portal.accounts import roles
from portal.core.charts import bar_chart, line_chart
from portal.records.models import ModelVersion
from portal.review import selectors, services
from portal.review.errors import CaseNotFound
from portal.review.exports import HEADER, NOTE, cells, performance_csv_rows, performance_pdf
from portal.review.models import DiscrepancyCategory, StatDimension
from portal.review.pseudonyms import pseudonym
from portal.review.views.common import PERIODS, User, deny, is_htmx, percent, period_of, rate


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


def _breakdowns(start: dt.date, end: dt.date, *, reveal: bool, models: dict[str, str]) -> list[dict]:
    """The dashboard's tables and bar charts by model version, specialty, modality and radiologist."""
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
                "discrepancy_rate": percent(rate(r["with_discrepancy"], r["compared"])),
                "significant_rate": percent(rate(r["significant"], r["compared"])),
                "significant_value": rate(r["significant"], r["compared"]) or 0.0,
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
    return breakdowns


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """Department figures over time and by model, specialty, modality and (pseudonymised) radiologist."""
    if not roles.can_view_review_dashboard(request.user):
        deny(request, reason="review_dashboard")
    period, start, end = period_of(request)
    reveal = roles.sees_radiologist_names(request.user)
    weekly = selectors.stats_series(StatDimension.ALL, "", start, end)
    labels = [w["week"].isoformat() for w in weekly]
    trend = line_chart(
        "Discrepancy rate and significant-discrepancy rate per week",
        labels,
        [
            ("any discrepancy", [rate(w["with_discrepancy"], w["compared"]) for w in weekly]),
            ("significant", [rate(w["significant"], w["compared"]) for w in weekly]),
        ],
        chart_id="chart-trend",
    )
    totals = {name: sum(w[name] for w in weekly) for name in selectors.COUNT_FIELDS}
    models = {str(m.pk): str(m) for m in ModelVersion.objects.only("pk", "name", "version")}
    breakdowns = _breakdowns(start, end, reveal=reveal, models=models)
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
        "discrepancy_rate": percent(rate(totals["with_discrepancy"], totals["compared"])),
        "significant_rate": percent(rate(totals["significant"], totals["compared"])),
        "trend_chart": trend,
        "weekly": [
            {
                **w,
                "discrepancy_rate": percent(rate(w["with_discrepancy"], w["compared"])),
                "significant_rate": percent(rate(w["significant"], w["compared"])),
            }
            for w in weekly
        ],
        "breakdowns": breakdowns,
        "radpeer_chart": radpeer_chart,
        "committee_chart": committee_chart,
        "suggested": suggested,
        "committee": committee,
        "refreshed_at": selectors.stats_refreshed_at(),
        **_attribution_figures(start, end, models),
    }
    return render(request, "review/dashboard.html", context)


def _attribution_figures(start: dt.date, end: dt.date, models: dict[str, str]) -> dict:
    """Who erred in the committee's reviews: the radiologist's errors, and the model's by version,
    category and specialty (AI errors never count against the radiologist).
    """
    ai = selectors.model_errors(start, end)
    by_model = selectors.stats_breakdown(StatDimension.MODEL, start, end)
    return {
        "model_rows": [
            {
                "label": models.get(r["key"], "unknown model"),
                "reviewed": r["reviewed"] or 0,
                "ai_errors": r["ai_errors"] or 0,
                "carried": r["carried"] or 0,
                "ai_error_rate": percent(rate(r["ai_errors"] or 0, r["reviewed"] or 0)),
            }
            for r in by_model
            if r["reviewed"]
        ],
        "model_error_rows": [
            {
                "model": models.get(str(r.model_version_id), "unknown model"),
                "category": dict(DiscrepancyCategory.choices).get(r.category, r.category),
                "specialty": r.specialty or "not recorded",
                "errors": r.errors,
                "carried": r.carried,
            }
            for r in ai[:50]
        ],
    }


# --- Feedback -----------------------------------------------------------------------------------------


@login_required
@require_GET
def my_feedback(request: HttpRequest) -> HttpResponse:
    """A radiologist's own cases with the committee's comments, and own trends against the department."""
    if not roles.can_receive_feedback(request.user):
        deny(request, reason="review_feedback")
    period, start, end = period_of(request)
    items = selectors.feedback_for(request.user)
    own = selectors.stats_series(StatDimension.RADIOLOGIST, str(request.user.pk), start, end)
    department = selectors.stats_series(StatDimension.ALL, "", start, end)
    weeks = sorted({w["week"] for w in department} | {w["week"] for w in own})
    by_week_own = {w["week"]: w for w in own}
    by_week_dept = {w["week"]: w for w in department}

    def week_rate(table: dict, week: dt.date) -> float | None:
        row = table.get(week)
        return rate(row["significant"], row["compared"]) if row else None

    chart = line_chart(
        "Your significant-discrepancy rate per week against the department",
        [w.isoformat() for w in weeks],
        [
            ("you", [week_rate(by_week_own, w) for w in weeks]),
            ("department", [week_rate(by_week_dept, w) for w in weeks]),
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
        "own_rate": percent(rate(own_totals["significant"], own_totals["compared"])),
        "dept_rate": percent(rate(dept_totals["significant"], dept_totals["compared"])),
        "own_totals": own_totals,
        "own_radpeer": selectors.committee_radpeer(start, end, radiologist_id=request.user.pk),
        "own_attribution": {
            name: sum(w[name] for w in own)
            for name in ("reviewed", "radiologist_errors", "ai_errors", "carried")
        },
        "reader": pseudonym(request.user.pk),
        "refreshed_at": selectors.stats_refreshed_at(),
    }
    return render(request, "review/feedback.html", context)


@login_required
@require_POST
def feedback_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    """The radiologist acknowledges one feedback (HTMX swaps the item; without JS, back to the list)."""
    if not roles.can_receive_feedback(request.user):
        deny(request, reason="review_feedback_acknowledge")
    try:
        feedback = services.feedback_acknowledge(
            feedback_id=pk, user=request.user, context=audit.AuditContext.from_request(request)
        )
    except CaseNotFound:
        deny(request, reason="review_feedback_acknowledge", not_found=True)
    if is_htmx(request):
        feedback = selectors.feedback_for(request.user)
        item = next((f for f in feedback if f.pk == pk), None)
        response = render(request, "review/_feedback_item.html", {"item": item})
        patch_vary_headers(response, ["HX-Request"])
        return response
    messages.success(request, "Feedback acknowledged.")
    response = redirect("review-feedback")
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- Performance summaries (OPPE / FPPE) --------------------------------------------------------------


def _performance(request: HttpRequest) -> tuple[str, dt.date, dt.date, list[selectors.PerformanceRow]]:
    if not roles.can_view_performance_summaries(request.user):
        deny(request, reason="review_performance")
    period, start, end = period_of(request)
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
            "header": HEADER,
            "rows": [(row, cells(row)) for row in rows],
            "period": period,
            "periods": list(PERIODS),
            "start": start,
            "end": end,
            "refreshed_at": selectors.stats_refreshed_at(),
            "note": NOTE,
        },
    )


@login_required
@require_GET
def performance_csv(request: HttpRequest) -> HttpResponse:
    """The summary as CSV (cells that a spreadsheet would run as formulas are neutralised)."""
    period, start, end, rows = _performance(request)
    _audit_export(request, "csv", rows)
    buffer = io.StringIO()
    csv.writer(buffer).writerows(performance_csv_rows(rows))
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="performance-{start}-{end}.csv"'
    return response


@login_required
@require_GET
def performance_pdf_view(request: HttpRequest) -> HttpResponse:
    """The summary as a PDF for the credentials file."""
    period, start, end, rows = _performance(request)
    _audit_export(request, "pdf", rows)
    response = HttpResponse(
        performance_pdf(rows, start, end, as_of=selectors.stats_refreshed_at()),
        content_type="application/pdf",
    )
    response["Content-Disposition"] = f'attachment; filename="performance-{start}-{end}.pdf"'
    return response
