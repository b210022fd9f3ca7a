"""The QA queue (filters, totals, keyset pages, the chair's assignment), "my assigned cases" and the
chair's sampling campaigns.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit import log as audit
from portal.accounts import roles
from portal.records.models import ModelVersion
from portal.review import selectors, services
from portal.review.errors import InvalidReview, ReviewForbidden
from portal.review.forms import AssignForm, CampaignForm, QueueFilterForm
from portal.review.models import ReviewStatus, SamplingCampaign
from portal.review.views.common import User, deny, queue_state, radiologist_label, render_page_or_partial


def _model_versions() -> list[ModelVersion]:
    return list(ModelVersion.objects.order_by("name", "version").only("pk", "name", "version"))


def _queue_context(request: HttpRequest, form: QueueFilterForm, reveal: bool) -> dict[str, Any]:
    """One page of the queue for valid filters: rows, totals, the next page's link; audited."""
    page = selectors.queue_page(
        form.filters(), sort=form.sort_order(), cursor=form.cleaned_data["cursor"], with_names=reveal
    )
    total, more = selectors.queue_total(form.filters())
    state = queue_state(request.GET).urlencode()
    context: dict[str, Any] = {
        "page": page,
        "state": state,
        "total": total,
        "total_capped": more,
        "rows": [
            {
                "case": c,
                "radiologist": radiologist_label(c, reveal),
                "assigned": page.assigned.get(c.pk, []),
                "url": f"{reverse('review-case', args=[c.pk])}?{state}",
            }
            for c in page.rows
        ],
    }
    if page.next_cursor:
        following = queue_state(request.GET)
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
    return context


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    """The QA queue: filter, sort, page (keyset) and, for the chair, assign."""
    if not roles.can_view_review_queue(request.user):
        deny(request, reason="review_queue")
    modalities = selectors.modality_choices(request.GET.get("modality", ""))
    form = QueueFilterForm(request.GET, modalities=modalities)
    reveal = roles.sees_radiologist_names(request.user)
    context: dict[str, Any] = {
        "form": form,
        "modalities": modalities,
        "can_assign": roles.can_assign(request.user),
        "model_versions": _model_versions(),
        "reviewers": selectors.adjudicators(),
        "rows": [],
        "page": None,
        "mine": request.GET.get("reviewer") == str(request.user.pk),
        "mine_url": _mine_url(request.user.pk),
        "can_be_assigned": roles.can_adjudicate(request.user),
    }
    status = 200
    if form.is_valid():
        try:
            context.update(_queue_context(request, form, reveal))
        except InvalidReview as exc:
            form.add_error(None, exc.message)
            status = 400
    else:
        status = 400
    return render_page_or_partial(
        request, "review/queue.html", "review/_queue_results.html", context, status=status
    )


def _mine_url(user_id: int) -> str:
    state = QueryDict(mutable=True)
    state.update({"reviewer": str(user_id), "status": ReviewStatus.ASSIGNED.value, "sort": "date"})
    return f"{reverse('review-queue')}?{state.urlencode()}"


@login_required
@require_GET
def my_assigned(request: HttpRequest) -> HttpResponse:
    """A reviewer's own open cases: the queue filtered to their assignments, oldest study first."""
    if not roles.can_adjudicate(request.user):
        deny(request, reason="review_my_assigned")
    return redirect(_mine_url(request.user.pk))


@login_required
@require_POST
def assign(request: HttpRequest) -> HttpResponse:
    """The chair gives the ticked cases to a reviewer, then returns to the same queue view."""
    if not roles.can_assign(request.user):
        deny(request, reason="review_assign")
    form = AssignForm(request.POST)
    back = QueryDict(request.POST.get("back", "")[:2048])
    target = f"{reverse('review-queue')}?{queue_state(back).urlencode()}"
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
        deny(request, reason="review_campaigns")
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
        "model_versions": _model_versions(),
        "campaigns": list(
            SamplingCampaign.objects.select_related("reviewer", "created_by").order_by("-created_at")[:50]
        ),
    }
    return render(request, "review/campaigns.html", context, status=status)
