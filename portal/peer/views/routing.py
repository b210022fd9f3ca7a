"""Assignment rules: the chair's rules (reviewer, subspecialty, quota) and the "Assign by rules" action."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from audit import log as audit
from portal.accounts import roles
from portal.core.access import deny
from portal.core.errors import RecordError
from portal.peer import routing, selectors
from portal.peer.forms import RoutingRuleForm, RoutingRunForm, RuleToggleForm
from portal.review.selectors import adjudicators

User = get_user_model()
RULE_INITIAL = {"active": True, "max_open": 10}


def _chair_or_deny(request: HttpRequest, reason: str) -> None:
    if not roles.can_assign(request.user):
        deny(request, reason=reason)


def _render(
    request: HttpRequest, form: RoutingRuleForm, run_form: RoutingRunForm, status: int = 200
) -> HttpResponse:
    rules = selectors.routing_rules()
    with transaction.atomic():
        audit.record(
            "routing_rules.view",
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            object_type="routing_rule",
            details={"ids": [row["rule"].pk for row in rules]},
        )
    context = {
        "form": form,
        "run_form": run_form,
        "rules": rules,
        "reviewers": adjudicators(),
        "waiting": selectors.waiting_by_specialty(),
        "runs": selectors.recent_runs(),
        "section": "rules",
    }
    return render(request, "peer/rules.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def rules(request: HttpRequest) -> HttpResponse:
    """The rules with each reviewer's open cases against the quota; POST adds or changes a rule."""
    _chair_or_deny(request, "routing_rules")
    form = RoutingRuleForm(request.POST if request.method == "POST" else None, initial=RULE_INITIAL)
    if request.method != "POST":
        return _render(request, form, RoutingRunForm())
    if form.is_valid():
        reviewer = User.objects.filter(pk=form.cleaned_data["reviewer"]).first()
        if reviewer is None:
            form.add_error("reviewer", "No such reviewer.")
        else:
            try:
                routing.routing_rule_save(
                    reviewer=reviewer,
                    specialty=form.cleaned_data["specialty"],
                    max_open=form.cleaned_data["max_open"],
                    active=form.cleaned_data["active"],
                    actor=request.user,
                    context=audit.AuditContext.from_request(request),
                )
            except RecordError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, "Rule saved.")
                return redirect("peer-rules")
    return _render(request, form, RoutingRunForm(), status=400)


@login_required
@require_POST
def rule_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    """Switch a rule on or off."""
    _chair_or_deny(request, "routing_rule_toggle")
    form = RuleToggleForm(request.POST)
    form.is_valid()  # a lone optional checkbox is always valid; absent means "off"
    try:
        routing.routing_rule_toggle(
            rule_id=pk,
            active=form.cleaned_data.get("active", False),
            actor=request.user,
            context=audit.AuditContext.from_request(request),
        )
    except RecordError:
        deny(request, reason="routing_rule_missing", not_found=True)
    return redirect("peer-rules")


@login_required
@require_POST
def run(request: HttpRequest) -> HttpResponse:
    """Assign by rules: route waiting cases now, then show the rules page with the outcome."""
    _chair_or_deny(request, "routing_run")
    run_form = RoutingRunForm(request.POST)
    if not run_form.is_valid():
        return _render(request, RoutingRuleForm(initial=RULE_INITIAL), run_form, status=400)
    try:
        outcome = routing.routing_run(
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            limit=run_form.cleaned_data["limit"],
        )
    except RecordError as exc:
        messages.error(request, exc.message)
        return redirect("peer-rules")
    messages.success(
        request,
        f"{outcome.routed} of {outcome.considered} waiting case(s) assigned "
        f"to {len(outcome.per_reviewer)} reviewer(s).",
    )
    return redirect("peer-rules")
