"""Assignment by rules: unassigned cases go to reviewers of their subspecialty, within each reviewer's
quota of open cases, never to the radiologist who signed the report.

:func:`plan_routes` is the rule itself, a pure function. :func:`routing_run` applies it to the queue and
creates the assignments through review's own service (so they are audited, counted and notified the
same way as the chair's hand assignments). Two runs at once cannot route a case twice: the active rules
are locked for the run, and each routed case is a unique row (a losing run's insert fails, it retries on
what is left).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef

from audit import log as audit
from portal.accounts import roles
from portal.core.errors import RecordConflict, RecordNotFound
from portal.peer.models import RoutedCase, RoutingRule, RoutingRun
from portal.records.models import Specialty
from portal.review import services as review_services
from portal.review.errors import InvalidReview, ReviewForbidden
from portal.review.models import Assignment, Comparison, ReviewStatus

#: Cases one run considers (oldest first); the next run continues with the rest.
MAX_PER_RUN = 500
ATTEMPTS = 3
#: The largest quota a rule may set (the model's CHECK constraint says the same).
MAX_OPEN = 1000


@dataclasses.dataclass(frozen=True)
class CaseToRoute:
    """What routing needs of a case: its specialty and who signed it (account ids, possibly several)."""

    comparison_id: int
    specialty: str
    signer_ids: frozenset[int]


@dataclasses.dataclass(frozen=True)
class Rule:
    """What routing needs of a rule: who, which subspecialty, how many open cases at most."""

    rule_id: int
    reviewer_id: int
    specialty: str
    max_open: int


@dataclasses.dataclass(frozen=True)
class Route:
    """One decision: this case goes to this reviewer under this rule."""

    comparison_id: int
    reviewer_id: int
    rule_id: int


def plan_routes(
    cases: Sequence[CaseToRoute], rules: Iterable[Rule], open_counts: dict[tuple[int, str], int]
) -> list[Route]:
    """Route each case, in the order given, to the eligible reviewer with the most room left.

    Eligible: a rule for the case's specialty, room under the quota (open cases of that reviewer and
    specialty, ``open_counts``, plus what this plan already gave), and not a signer of the report.
    Ties go to the lower rule id, so the same inputs always give the same plan. Cases nobody may take
    stay unrouted.
    """
    by_specialty: dict[str, list[Rule]] = defaultdict(list)
    for rule in sorted(rules, key=lambda r: r.rule_id):
        by_specialty[rule.specialty].append(rule)
    room = {
        r.rule_id: r.max_open - open_counts.get((r.reviewer_id, r.specialty), 0)
        for rules_ in by_specialty.values()
        for r in rules_
    }
    routes = []
    for case in cases:
        eligible = [
            r
            for r in by_specialty.get(case.specialty, [])
            if room[r.rule_id] > 0 and r.reviewer_id not in case.signer_ids
        ]
        if not eligible:
            continue
        chosen = max(eligible, key=lambda r: (room[r.rule_id], -r.rule_id))
        room[chosen.rule_id] -= 1
        routes.append(Route(case.comparison_id, chosen.reviewer_id, chosen.rule_id))
    return routes


@dataclasses.dataclass(frozen=True)
class RoutingOutcome:
    """What a run did: its row, how many cases it looked at, and how many went to each reviewer."""

    run: RoutingRun
    considered: int
    per_reviewer: dict[int, int]

    @property
    def routed(self) -> int:
        """Cases assigned by this run."""
        return sum(self.per_reviewer.values())


def _rules_locked() -> list[tuple[RoutingRule, Rule]]:
    """The active rules of reviewers who may still adjudicate, locked for this run (in id order)."""
    locked = list(
        RoutingRule.objects.select_for_update(of=("self",))
        .select_related("reviewer")
        .filter(active=True, reviewer__is_active=True)
        .order_by("pk")
    )
    return [
        (r, Rule(r.pk, r.reviewer_id, r.specialty, r.max_open))
        for r in locked
        if roles.can_adjudicate(r.reviewer)
    ]


def _open_counts(rules: list[Rule]) -> dict[tuple[int, str], int]:
    rows = (
        Assignment.objects.filter(completed_at__isnull=True, reviewer_id__in={r.reviewer_id for r in rules})
        .values("reviewer_id", "comparison__specialty")
        .annotate(n=Count("pk"))
    )
    return {(row["reviewer_id"], row["comparison__specialty"]): row["n"] for row in rows}


def _cases_waiting(specialties: set[str], limit: int) -> list[CaseToRoute]:
    """Unassigned, never routed cases of these specialties, oldest study first, with their signers.

    The signer is the case's radiologist account and, for readers known through the clinician
    directory, the account linked to the clinician who signed.
    """
    rows = list(
        Comparison.objects.filter(review_status=ReviewStatus.UNASSIGNED, specialty__in=specialties)
        .filter(routed__isnull=True)
        .exclude(Exists(Assignment.objects.filter(comparison=OuterRef("pk"))))
        .order_by("study_date", "pk")
        .values_list("pk", "specialty", "radiologist_id", "reference__clinician__account_id")[:limit]
    )
    return [
        CaseToRoute(pk, specialty, frozenset(i for i in (radiologist, account) if i is not None))
        for pk, specialty, radiologist, account in rows
    ]


def _route_once(actor: AbstractBaseUser, context: audit.AuditContext, limit: int) -> RoutingOutcome:
    locked = _rules_locked()
    rules = [rule for _row, rule in locked]
    cases = _cases_waiting({r.specialty for r in rules}, limit) if rules else []
    routes = plan_routes(cases, rules, _open_counts(rules))
    run = RoutingRun.objects.create(started_by=actor, considered=len(cases), routed=len(routes))
    RoutedCase.objects.bulk_create(
        [
            RoutedCase(comparison_id=r.comparison_id, reviewer_id=r.reviewer_id, rule_id=r.rule_id, run=run)
            for r in routes
        ]
    )
    reviewers = {row.reviewer_id: row.reviewer for row, _rule in locked}
    per_reviewer: dict[int, list[int]] = defaultdict(list)
    for route in routes:
        per_reviewer[route.reviewer_id].append(route.comparison_id)
    for reviewer_id, ids in sorted(per_reviewer.items()):
        assigned, skipped = review_services.assignments_create(
            comparison_ids=ids, reviewer=reviewers[reviewer_id], actor=actor, context=context
        )
        if skipped:  # the plan excluded everything review skips: a mismatch must not pass silently
            raise RecordConflict("The queue changed during routing; run it again.")
    audit.record(
        "routing_run.create",
        actor=actor,
        context=context,
        object_type="routing_run",
        object_id=run.pk,
        details={
            "considered": len(cases),
            "routed": {str(k): len(v) for k, v in sorted(per_reviewer.items())},
        },
    )
    return RoutingOutcome(
        run=run, considered=len(cases), per_reviewer={k: len(v) for k, v in per_reviewer.items()}
    )


def routing_run(
    *, actor: AbstractBaseUser, context: audit.AuditContext, limit: int = MAX_PER_RUN
) -> RoutingOutcome:
    """Route waiting cases by the active rules and assign them (idempotent: routed cases are not waiting).

    Raises ReviewForbidden for an account that may not assign, InvalidReview for a bad limit, and
    RecordConflict when concurrent runs kept winning every attempt.
    """
    if not roles.can_assign(actor):
        raise ReviewForbidden("This account may not assign cases.")
    if not 1 <= limit <= MAX_PER_RUN:
        raise InvalidReview(f"Route between 1 and {MAX_PER_RUN} cases per run.", field="limit")
    for _attempt in range(ATTEMPTS):
        try:
            with transaction.atomic():
                return _route_once(actor, context, limit)
        except IntegrityError:
            continue  # another run routed some of these cases first: plan again on what is left
    raise RecordConflict("Another routing run kept changing the queue; try again.")


def routing_rule_save(
    *,
    reviewer: AbstractBaseUser,
    specialty: str,
    max_open: int,
    active: bool,
    actor: AbstractBaseUser,
    context: audit.AuditContext,
) -> RoutingRule:
    """Create the rule for (reviewer, specialty), or change its quota and state (one rule per pair)."""
    if not roles.can_assign(actor):
        raise ReviewForbidden("This account may not manage assignment rules.")
    if not roles.can_adjudicate(reviewer) or not reviewer.is_active:
        raise InvalidReview("Rules can only route cases to active QA reviewers or chairs.", field="reviewer")
    if specialty not in Specialty.values:
        raise InvalidReview("Unknown subspecialty.", field="specialty")
    if not 1 <= max_open <= MAX_OPEN:
        raise InvalidReview(f"The quota must be between 1 and {MAX_OPEN} open cases.", field="max_open")
    with transaction.atomic():
        rule, created = RoutingRule.objects.select_for_update().get_or_create(
            reviewer=reviewer,
            specialty=specialty,
            defaults={"max_open": max_open, "active": active, "created_by": actor},
        )
        if not created:
            rule.max_open, rule.active = max_open, active
            rule.save(update_fields=["max_open", "active"])
        audit.record(
            "routing_rule.create" if created else "routing_rule.update",
            actor=actor,
            context=context,
            object_type="routing_rule",
            object_id=rule.pk,
            details={"reviewer": reviewer.pk, "specialty": specialty, "max_open": max_open, "active": active},
        )
    return rule


def routing_rule_toggle(
    *, rule_id: int, active: bool, actor: AbstractBaseUser, context: audit.AuditContext
) -> RoutingRule:
    """Switch a rule on or off (rules that routed cases are kept: the routed cases name them)."""
    if not roles.can_assign(actor):
        raise ReviewForbidden("This account may not manage assignment rules.")
    with transaction.atomic():
        rule = RoutingRule.objects.select_for_update().filter(pk=rule_id).first()
        if rule is None:
            raise RecordNotFound("No such rule.")
        if rule.active != active:
            rule.active = active
            rule.save(update_fields=["active"])
            audit.record(
                "routing_rule.update",
                actor=actor,
                context=context,
                object_type="routing_rule",
                object_id=rule.pk,
                details={"active": active},
            )
    return rule
