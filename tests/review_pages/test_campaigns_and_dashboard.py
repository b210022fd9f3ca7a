"""Sampling campaigns (reproducible draws) and the dashboard (rollup, charts, pseudonyms, query bound)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from audit.log import SYSTEM
from audit.models import AuditEvent
from portal.review import services
from portal.review.models import Assignment, DailyStat, SamplingCampaign
from portal.review.pseudonyms import pseudonym
from portal.review.selectors import QueueFilters

pytestmark = pytest.mark.django_db


@pytest.fixture
def cohort(make_case, personas, now):
    """Twelve chest cases by alice and three neuro cases by bob."""
    chest = [make_case(personas["alice"], when=now + dt.timedelta(hours=i)) for i in range(12)]
    neuro = [
        make_case(personas["bob"], specialty="neuro", when=now + dt.timedelta(hours=i)) for i in range(3)
    ]
    return chest, neuro


def test_the_draw_is_a_pure_function_of_the_cohort_and_seed():
    ids = list(range(100, 200))
    a = services.campaign_select(ids, method="random", percentage=Decimal("10"), every_nth=None, seed=7)

    assert a == services.campaign_select(
        ids, method="random", percentage=Decimal("10"), every_nth=None, seed=7
    )
    assert len(a) == 10 and a != services.campaign_select(
        ids, method="random", percentage=Decimal("10"), every_nth=None, seed=8
    )
    assert services.campaign_select(ids, method="every_nth", percentage=None, every_nth=30, seed=0) == [
        100,
        130,
        160,
        190,
    ]


def test_the_chair_draws_a_random_campaign_from_a_filtered_cohort(page_for, cohort, personas):
    response = page_for("dana").post(
        "/review/campaigns/",
        {
            "name": "25% of chest",
            "method": "random",
            "percentage": "25",
            "seed": "42",
            "assign_to": personas["carol"].pk,
            "specialty": "chest",
        },
    )

    assert response.status_code == 302
    campaign = SamplingCampaign.objects.get()
    assert (campaign.cohort_size, campaign.selected_count, campaign.seed) == (12, 3, 42)
    picked = set(Assignment.objects.values_list("comparison_id", flat=True))
    assert picked <= {c.pk for c in cohort[0]} and len(picked) == 3
    assert AuditEvent.objects.filter(action="sampling_campaign.create").count() == 1
    assert AuditEvent.objects.filter(action="assignment.create").count() == 3


def test_the_same_seed_over_the_same_cohort_picks_the_same_cases(cohort, personas):
    kwargs = {
        "method": "random",
        "percentage": Decimal("50"),
        "seed": 99,
        "filters": QueueFilters(specialty="chest"),
        "actor": personas["dana"],
        "context": SYSTEM,
    }
    services.campaign_create(name="first", reviewer=personas["carol"], **kwargs)
    from tests.conftest import make_user

    services.campaign_create(name="again", reviewer=make_user("rita", "qa_reviewer"), **kwargs)

    first, again = (
        sorted(Assignment.objects.filter(campaign__name=n).values_list("comparison_id", flat=True))
        for n in ("first", "again")
    )
    assert first == again and len(first) == 6


def test_every_nth_study(cohort, personas):
    campaign = services.campaign_create(
        name="every 5th",
        method="every_nth",
        every_nth=5,
        seed=0,
        filters=QueueFilters(specialty="chest"),
        reviewer=personas["carol"],
        actor=personas["dana"],
        context=SYSTEM,
    )

    chest = sorted(cohort[0], key=lambda c: (c.study_date, c.pk))
    picked = sorted(Assignment.objects.filter(campaign=campaign).values_list("comparison_id", flat=True))
    assert picked == sorted(c.pk for c in chest[::5])


@pytest.mark.parametrize(
    "change",
    [
        {"name": ""},
        {"method": "astrology"},
        {"percentage": ""},
        {"percentage": "0"},
        {"percentage": "101"},
        {"percentage": "abc"},
        {"method": "every_nth", "every_nth": "0"},
        {"method": "every_nth", "every_nth": ""},
        {"assign_to": "999999"},
        {"seed": "-1"},
        {"seed": str(2**53)},
        {"specialty": "<img src=x onerror=alert(1)>"},
        {"date_from": "2026-13-45"},
    ],
)
def test_bad_campaigns_are_refused_and_nothing_is_written(page_for, cohort, personas, change):
    data = {"name": "c", "method": "random", "percentage": "10", "assign_to": personas["carol"].pk, **change}

    response = page_for("dana").post("/review/campaigns/", data)

    assert response.status_code == 400
    assert 'data-testid="campaign-errors"' in response.content.decode()
    assert not SamplingCampaign.objects.exists() and not Assignment.objects.exists()


def test_a_campaign_for_an_account_without_a_review_role_is_refused(page_for, cohort, personas):
    response = page_for("dana").post(
        "/review/campaigns/", {"name": "c", "method": "targeted", "assign_to": personas["eve"].pk}
    )

    assert response.status_code == 400 and not SamplingCampaign.objects.exists()


def test_the_rollup_counts_cases_by_day_and_breakdown(cohort, now):
    services.daily_stats_refresh()

    department = DailyStat.objects.get(dimension="all", key="", day=now.date())
    assert (department.studies, department.ai_outputs, department.compared) == (15, 15, 15)
    assert DailyStat.objects.get(dimension="specialty", key="neuro", day=now.date()).compared == 3
    assert services.daily_stats_refresh() == DailyStat.objects.count()  # idempotent replace


def test_the_dashboard_shows_rates_charts_and_pseudonymised_readers(page_for, cohort, personas):
    services.daily_stats_refresh()

    html = page_for("carol").get("/review/dashboard/?period=730").content.decode()

    assert 'data-testid="total-compared">15<' in html
    for chart in (
        "chart-trend",
        "chart-model",
        "chart-specialty",
        "chart-modality",
        "chart-radiologist",
        "chart-radpeer-suggested",
        "chart-radpeer-committee",
    ):
        assert f'id="{chart}"' in html
    assert pseudonym(personas["alice"].pk) in html and "<td>alice</td>" not in html
    assert "<td>alice</td>" in page_for("dana").get("/review/dashboard/?period=730").content.decode()


def test_the_dashboard_runs_a_bounded_number_of_queries(page_for, cohort, django_assert_max_num_queries):
    services.daily_stats_refresh()
    client = page_for("carol")
    client.get("/review/dashboard/")
    # Includes the model's errors by version, category and specialty, and the inbox badge.
    with django_assert_max_num_queries(17):
        assert client.get("/review/dashboard/?period=365").status_code == 200


def test_the_refresh_command(cohort, capsys):
    from django.core.management import call_command

    call_command("refresh_review_stats")

    assert "daily figure rows written" in capsys.readouterr().out


def test_the_committee_distribution_counts_only_current_scores(page_for, cohort, personas):
    case = cohort[0][0]
    ai_erred = {
        d.pk: services.VerdictInput("agree", correct_side="signed_report") for d in case.discrepancies.all()
    }
    verdicts = {
        d.pk: services.VerdictInput("agree", correct_side="ai_draft") for d in case.discrepancies.all()
    }
    first = services.review_submit(
        comparison=case,
        reviewer=personas["carol"],
        radpeer="1",
        comment="",
        verdicts=ai_erred,
        context=SYSTEM,
    )
    services.review_submit(
        comparison=case,
        reviewer=personas["carol"],
        radpeer="3b",
        comment="",
        verdicts=verdicts,
        supersedes=first,
        context=SYSTEM,
    )
    services.daily_stats_refresh()

    html = page_for("otto").get("/review/dashboard/?period=730").content.decode()

    committee_row = html.split("<th>Committee</th>")[1].split("</tr>")[0]
    assert committee_row == "<td>0</td><td>0</td><td>0</td><td>0</td><td>1</td>"


def test_a_campaign_without_a_seed_draws_one_and_records_it(page_for, cohort, personas):
    response = page_for("dana").post(
        "/review/campaigns/",
        {"name": "every 4th", "method": "every_nth", "every_nth": "4", "assign_to": personas["carol"].pk},
    )

    assert response.status_code == 302
    campaign = SamplingCampaign.objects.get()
    assert 0 <= campaign.seed < 2**31 and campaign.selected_count in (3, 4)
    event = AuditEvent.objects.get(action="sampling_campaign.create")
    assert event.details["seed"] == str(campaign.seed)
