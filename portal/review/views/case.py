"""One case: the AI draft beside the signed report with the differing words marked, and the committee's
adjudication (verdicts with attribution, RADPEER where the radiologist's report is judged).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from audit import log as audit
from portal.accounts import roles
from portal.review import selectors, services
from portal.review.errors import InvalidReview, ReviewForbidden
from portal.review.forms import AdjudicationForm, QueueFilterForm
from portal.review.models import Comparison, Discrepancy, RadpeerScore
from portal.review.presentation import Mark, anchors, highlight, marks_of
from portal.review.pseudonyms import pseudonym
from portal.review.views.common import deny, queue_state, radiologist_label

SIDES = ("candidate", "reference")


def _case_or_deny(request: HttpRequest, pk: int) -> Comparison:
    comparison = selectors.case_get(pk)
    if comparison is None:
        raise Http404
    if not roles.can_view_case(request.user, radiologist_id=comparison.radiologist_id):
        # A radiologist must not learn that someone else's case exists: 404 for them, 403 for the rest.
        deny(
            request,
            reason="review_case",
            not_found=roles.has_any_role(request.user, {roles.Role.RADIOLOGIST}),
        )
    return comparison


def _label(d: Discrepancy) -> str:
    return f"{d.get_category_display()} ({d.get_significance_display().lower()}): {d.finding}"


def case_marks(discrepancies: list[Discrepancy]) -> dict[str, dict[int, list[Mark]]]:
    """Per side, the marks of each discrepancy (the engine's word marks, else its quoted span)."""
    return {side: {d.pk: marks_of(d, side, _label(d)) for d in discrepancies} for side in SIDES}


def _discrepancy_rows(
    discrepancies: list[Discrepancy], marks: dict, texts: dict[str, str]
) -> list[dict[str, Any]]:
    """Each discrepancy with the anchors its quote links point at: only marks :func:`highlight` puts
    on the page, so every link lands.
    """
    return [
        {
            "d": d,
            "links": {
                side: sorted(anchors(texts[side], marks[side][d.pk], side), key=lambda a: (len(a), a))
                for side in SIDES
            },
        }
        for d in discrepancies
    ]


def _initial(comparison: Comparison, own_latest: Any, request: HttpRequest) -> dict[str, Any]:
    """The form's starting values: the engine's suggested score (shown as a suggestion), the queue."""
    suggested = comparison.radpeer_suggested if comparison.radpeer_suggested in RadpeerScore.values else ""
    return {
        "supersedes": own_latest.pk if own_latest else None,
        "back": queue_state(request.GET).urlencode(),
        "radpeer": suggested,
    }


def _neighbours(request: HttpRequest, comparison: Comparison, committee: bool) -> tuple[str, str, str]:
    """The queue's address and the previous and next case of it, for the j/k keys."""
    params = request.GET if request.method == "GET" else QueryDict(request.POST.get("back", ""))
    state = queue_state(params)
    suffix = f"?{state.urlencode()}" if state else ""
    previous_id = next_id = None
    if committee:
        queue_form = QueueFilterForm(state)
        if queue_form.is_valid():
            previous_id, next_id = selectors.queue_neighbours(
                comparison, queue_form.filters(), queue_form.sort_order()
            )
    return (
        f"{reverse('review-queue')}{suffix}",
        f"{reverse('review-case', args=[previous_id])}{suffix}" if previous_id else "",
        f"{reverse('review-case', args=[next_id])}{suffix}" if next_id else "",
    )


def _render_case(
    request: HttpRequest, comparison: Comparison, form: AdjudicationForm | None, status: int = 200
) -> HttpResponse:
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
        form = AdjudicationForm(
            discrepancies=detail.discrepancies, initial=_initial(comparison, own_latest, request)
        )
    marks = case_marks(detail.discrepancies)
    queue_url, previous_url, next_url = _neighbours(request, comparison, committee)
    candidate, model = comparison.candidate, comparison.candidate.model_version
    context = {
        "case": comparison,
        "study": comparison.study,
        "candidate": candidate,
        "reference": comparison.reference,
        "model": model,
        "radiologist": radiologist_label(comparison, reveal),
        "candidate_html": highlight(
            candidate.text, [m for ms in marks["candidate"].values() for m in ms], side="candidate"
        ),
        "reference_html": highlight(
            comparison.reference.text, [m for ms in marks["reference"].values() for m in ms], side="reference"
        ),
        "discrepancy_rows": _discrepancy_rows(
            detail.discrepancies,
            marks,
            {"candidate": candidate.text, "reference": comparison.reference.text},
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
        "verdict_fields": [
            (d, form[f"verdict_{d.pk}"], form[f"side_{d.pk}"], form[f"carried_{d.pk}"])
            for d in detail.discrepancies
        ]
        if form is not None
        else [],
        "can_adjudicate": can_adjudicate,
        "own_latest": own_latest,
        "previous_url": previous_url,
        "next_url": next_url,
        "queue_url": queue_url,
        "adjudicate_url": reverse("review-adjudicate", args=[comparison.pk]),
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
    """Store the reviewer's verdicts with attribution, RADPEER score, comment and optional feedback."""
    comparison = _case_or_deny(request, pk)
    if not roles.can_adjudicate(request.user, radiologist_id=comparison.radiologist_id):
        deny(request, reason="review_adjudicate")
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
            radpeer=form.cleaned_data.get("radpeer") or "",
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
    score = form.cleaned_data.get("radpeer")
    messages.success(
        request, f"Case {comparison.pk} reviewed" + (f", RADPEER {score}." if score else " (not scored).")
    )
    state = queue_state(QueryDict(form.cleaned_data.get("back") or "")).urlencode()
    return redirect(f"{reverse('review-case', args=[comparison.pk])}{'?' + state if state else ''}")
