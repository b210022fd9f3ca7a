"""Assignment by rules: subspecialty matched, quota respected, the signer excluded, idempotent, and two
runs at once never assign a case twice."""

from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from audit.log import SYSTEM
from audit.models import AuditEvent
from portal.peer import routing
from portal.peer.models import RoutedCase, RoutingRule, RoutingRun
from portal.peer.routing import CaseToRoute, Route, Rule, plan_routes
from portal.review import services
from portal.review.errors import InvalidReview, ReviewForbidden
from portal.review.models import Assignment, ReviewStatus
from tests.conftest import make_user


def rule(personas, name: str, specialty: str, max_open: int) -> RoutingRule:
    return routing.routing_rule_save(
        reviewer=personas[name],
        specialty=specialty,
        max_open=max_open,
        active=True,
        actor=personas["dana"],
        context=SYSTEM,
    )


# --- The rule itself (pure) ---------------------------------------------------------------------------


def test_the_plan_matches_subspecialty_and_balances_by_room_left():
    cases = [CaseToRoute(i, "chest" if i < 5 else "neuro", frozenset({99})) for i in range(1, 8)]
    rules = [Rule(1, 10, "chest", 3), Rule(2, 11, "chest", 3), Rule(3, 12, "neuro", 5)]

    plan = plan_routes(cases, rules, {})

    assert plan == [
        Route(1, 10, 1), Route(2, 11, 2), Route(3, 10, 1), Route(4, 11, 2), Route(5, 12, 3),
        Route(6, 12, 3), Route(7, 12, 3),
    ]  # fmt: skip


def test_the_plan_counts_open_cases_against_the_quota():
    cases = [CaseToRoute(i, "chest", frozenset()) for i in range(1, 6)]

    plan = plan_routes(cases, [Rule(1, 10, "chest", 3)], {(10, "chest"): 2})

    assert [r.comparison_id for r in plan] == [1]


def test_the_plan_never_gives_a_case_to_its_signer():
    cases = [CaseToRoute(1, "chest", frozenset({10})), CaseToRoute(2, "chest", frozenset({10, 11}))]

    plan = plan_routes(cases, [Rule(1, 10, "chest", 5), Rule(2, 11, "chest", 5)], {})

    assert plan == [Route(1, 11, 2)]  # case 2 was signed by both accounts' clinicians: nobody may take it


# --- Against the database -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_assigns_within_quota_by_subspecialty(personas, make_case):
    chest = [make_case(personas["alice"], specialty="chest") for _ in range(4)]
    neuro = [make_case(personas["alice"], specialty="neuro") for _ in range(2)]
    rule(personas, "carol", "chest", 3)

    outcome = routing.routing_run(actor=personas["dana"], context=SYSTEM)

    assigned = set(
        Assignment.objects.filter(reviewer=personas["carol"]).values_list("comparison_id", flat=True)
    )
    assert assigned == {c.pk for c in chest[:3]}  # oldest first, up to the quota
    assert not Assignment.objects.filter(comparison__in=neuro).exists()
    assert outcome.routed == 3 and outcome.considered == 4
    assert set(Assignment.objects.values_list("comparison__review_status", flat=True)) == {
        ReviewStatus.ASSIGNED
    }
    event = AuditEvent.objects.get(action="routing_run.create")
    assert event.details["routed"] == {str(personas["carol"].pk): 3}
    assert AuditEvent.objects.filter(action="assignment.create").count() == 3


@pytest.mark.django_db
def test_the_signing_radiologist_never_gets_their_own_case(personas, make_case):
    make_user("rita", "qa_reviewer")
    rita = type(personas["alice"]).objects.get(username="rita")
    rita.groups.add(*personas["alice"].groups.all())  # a radiologist who also reviews
    own = make_case(rita)
    linked = make_case(rita, linked_only=True)  # signed under a clinician key linked to rita's account
    routing.routing_rule_save(
        reviewer=rita, specialty="chest", max_open=10, active=True, actor=personas["dana"], context=SYSTEM
    )

    outcome = routing.routing_run(actor=personas["dana"], context=SYSTEM)

    assert outcome.routed == 0 and outcome.considered == 2
    assert not Assignment.objects.filter(comparison__in=[own, linked]).exists()


@pytest.mark.django_db
def test_running_again_assigns_nothing_twice_and_respects_the_quota(personas, make_case):
    for _ in range(5):
        make_case(personas["alice"])
    rule(personas, "carol", "chest", 2)

    first = routing.routing_run(actor=personas["dana"], context=SYSTEM)
    second = routing.routing_run(actor=personas["dana"], context=SYSTEM)

    assert first.routed == 2 and second.routed == 0
    assert Assignment.objects.count() == 2 and RoutedCase.objects.count() == 2


@pytest.mark.django_db
def test_completing_a_review_frees_room_for_the_next_run(personas, make_case, adjudicate):
    cases = [make_case(personas["alice"]) for _ in range(3)]
    rule(personas, "carol", "chest", 1)
    routing.routing_run(actor=personas["dana"], context=SYSTEM)
    adjudicate(cases[0], personas["carol"])

    assert routing.routing_run(actor=personas["dana"], context=SYSTEM).routed == 1
    assert Assignment.objects.filter(reviewer=personas["carol"], completed_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_cases_already_assigned_by_hand_are_left_alone(personas, make_case):
    case = make_case(personas["alice"])
    services.assignments_create(
        comparison_ids=[case.pk], reviewer=personas["dana"], actor=personas["dana"], context=SYSTEM
    )
    rule(personas, "carol", "chest", 5)

    assert routing.routing_run(actor=personas["dana"], context=SYSTEM).routed == 0


@pytest.mark.django_db
def test_switched_off_rules_and_deactivated_reviewers_route_nothing(personas, make_case):
    make_case(personas["alice"])
    off = rule(personas, "carol", "chest", 5)
    routing.routing_rule_toggle(rule_id=off.pk, active=False, actor=personas["dana"], context=SYSTEM)

    assert routing.routing_run(actor=personas["dana"], context=SYSTEM).routed == 0
    routing.routing_rule_toggle(rule_id=off.pk, active=True, actor=personas["dana"], context=SYSTEM)
    personas["carol"].is_active = False
    personas["carol"].save()
    assert routing.routing_run(actor=personas["dana"], context=SYSTEM).routed == 0


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["alice", "carol", "lena", "otto", "eve"])
def test_only_the_chair_runs_routing_or_manages_rules(personas, name):
    with pytest.raises(ReviewForbidden):
        routing.routing_run(actor=personas[name], context=SYSTEM)
    with pytest.raises(ReviewForbidden):
        routing.routing_rule_save(
            reviewer=personas["carol"],
            specialty="chest",
            max_open=1,
            active=True,
            actor=personas[name],
            context=SYSTEM,
        )
    assert not RoutingRun.objects.exists() and not RoutingRule.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("reviewer", "specialty", "max_open"),
    [
        ("alice", "chest", 5),
        ("eve", "chest", 5),
        ("carol", "cardiac", 5),
        ("carol", "chest", 0),
        ("carol", "chest", 1001),
    ],
)
def test_bad_rules_are_refused(personas, reviewer, specialty, max_open):
    with pytest.raises(InvalidReview):
        routing.routing_rule_save(
            reviewer=personas[reviewer],
            specialty=specialty,
            max_open=max_open,
            active=True,
            actor=personas["dana"],
            context=SYSTEM,
        )
    assert not RoutingRule.objects.exists()


@pytest.mark.django_db
def test_saving_a_rule_again_changes_it_instead_of_adding_one(personas):
    rule(personas, "carol", "chest", 3)
    rule(personas, "carol", "chest", 7)

    assert list(RoutingRule.objects.values_list("max_open", flat=True)) == [7]
    assert AuditEvent.objects.filter(action__startswith="routing_rule.").count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("limit", [0, -1, routing.MAX_PER_RUN + 1])
def test_a_bad_limit_is_refused(personas, limit):
    with pytest.raises(InvalidReview):
        routing.routing_run(actor=personas["dana"], context=SYSTEM, limit=limit)


@pytest.mark.django_db
def test_a_case_can_be_routed_only_once(personas, make_case):
    case = make_case(personas["alice"])
    carol_rule = rule(personas, "carol", "chest", 5)
    run = RoutingRun.objects.create(started_by=personas["dana"])
    RoutedCase.objects.create(comparison=case, reviewer=personas["carol"], rule=carol_rule, run=run)

    with pytest.raises(IntegrityError), transaction.atomic():
        RoutedCase.objects.create(comparison=case, reviewer=personas["dana"], rule=carol_rule, run=run)


@pytest.mark.django_db
def test_a_run_that_loses_a_race_plans_again_on_what_is_left(personas, make_case, monkeypatch):
    cases = [make_case(personas["alice"]) for _ in range(3)]
    carol_rule = rule(personas, "carol", "chest", 5)
    rival = RoutingRun.objects.create(started_by=personas["dana"])
    real_plan, calls = routing.plan_routes, []

    def plan_while_a_rival_commits(*args):
        calls.append(1)
        if len(calls) == 1:  # the rival routes case 0 after this run read the queue, before it writes
            with transaction.atomic():
                RoutedCase.objects.create(
                    comparison=cases[0], reviewer=personas["carol"], rule=carol_rule, run=rival
                )
            Assignment.objects.create(
                comparison=cases[0], reviewer=personas["carol"], assigned_by=personas["dana"]
            )
            return real_plan(*args)
        return real_plan(*args)

    monkeypatch.setattr(routing, "plan_routes", plan_while_a_rival_commits)
    outcome = routing.routing_run(actor=personas["dana"], context=SYSTEM)

    # In one test transaction the rival's rows roll back with the failed attempt; the retry still runs.
    assert len(calls) == 2
    assert outcome.routed == len({a.comparison_id for a in Assignment.objects.all()})
    assert Assignment.objects.values("comparison_id").distinct().count() == Assignment.objects.count()


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_do_not_double_assign(personas, make_case):
    for specialty in ("chest", "neuro"):
        for _ in range(6):
            make_case(personas["alice"], specialty=specialty)
    rule(personas, "carol", "chest", 4)
    rule(personas, "dana", "chest", 4)
    rule(personas, "carol", "neuro", 4)
    barrier, errors = threading.Barrier(3), []

    def run() -> None:
        try:
            barrier.wait()
            routing.routing_run(actor=personas["dana"], context=SYSTEM)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    per_case = Assignment.objects.values_list("comparison_id", flat=True)
    assert len(per_case) == len(set(per_case)) == 10  # 6 chest (quota 4 + 4), 4 neuro (quota 4)
    assert RoutedCase.objects.count() == 10
    for reviewer, specialty, quota in (("carol", "chest", 4), ("dana", "chest", 4), ("carol", "neuro", 4)):
        held = Assignment.objects.filter(reviewer=personas[reviewer], comparison__specialty=specialty).count()
        assert held <= quota


@pytest.mark.django_db
def test_the_management_command_routes_as_the_named_chair(personas, make_case, capsys):
    make_case(personas["alice"])
    rule(personas, "carol", "chest", 5)

    call_command("assign_by_rules", "--as", "dana")

    assert "1 of 1 waiting case(s) assigned" in capsys.readouterr().out
    assert AuditEvent.objects.get(action="routing_run.create").actor_username == "dana"
    with pytest.raises(CommandError, match="No active account"):
        call_command("assign_by_rules", "--as", "nobody")
    with pytest.raises(CommandError, match="may not assign"):
        call_command("assign_by_rules", "--as", "alice")
    with pytest.raises(CommandError, match="between 1 and"):
        call_command("assign_by_rules", "--as", "dana", "--limit", "0")
