"""The queue's totals, "my assigned cases", the modality list from the data, and HTMX answers that a
cache or the Back button cannot confuse with the page (``Vary: HX-Request``)."""

from __future__ import annotations

import datetime as dt

import pytest

from portal.review import services
from portal.review.models import Assignment
from portal.review.selectors import modality_choices

pytestmark = pytest.mark.django_db


@pytest.fixture
def cases(make_case, personas):
    day = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    made = [make_case(personas["alice"], modality=m, when=day + dt.timedelta(hours=i)) for i, m in
            enumerate(["CR", "CR", "DX", "CT"])]  # fmt: skip
    services.daily_stats_refresh()
    return made


def test_the_queue_shows_its_total(page_for, cases):
    html = page_for("carol").get("/review/queue/?modality=CR").content.decode()

    assert 'data-testid="queue-total"><strong>2</strong> cases match these filters' in html


def test_modality_is_a_list_of_the_codes_in_the_data(page_for, cases):
    html = page_for("carol").get("/review/queue/").content.decode()
    select = html.split('data-testid="filter-modality"')[1].split("</select>")[0]

    assert modality_choices() == ["CR", "CT", "DX"]
    assert [code in select for code in ("CR", "CT", "DX")] == [True, True, True]
    assert page_for("carol").get("/review/queue/?modality=XR").status_code == 400  # not in the data


def test_a_code_stored_since_the_last_refresh_still_filters(page_for, cases, make_case, personas):
    make_case(personas["alice"], modality="MR")

    assert page_for("carol").get("/review/queue/?modality=MR").status_code == 200


@pytest.mark.parametrize("htmx", [True, False])
def test_queue_answers_vary_on_hx_request(page_for, cases, htmx):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}

    response = page_for("carol").get("/review/queue/?modality=CR", **headers)

    assert "HX-Request" in response["Vary"]
    assert response.content.decode().lstrip().startswith("<section" if htmx else "<!doctype html>")


def test_a_history_restore_gets_the_whole_page(page_for, cases):
    response = page_for("carol").get(
        "/review/queue/?modality=CR", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )

    assert response.content.decode().lstrip().startswith("<!doctype html>")


def test_my_assigned_cases(page_for, cases, personas):
    Assignment.objects.create(comparison=cases[1], reviewer=personas["carol"], assigned_by=personas["dana"])
    cases[1].review_status = "assigned"
    cases[1].save(update_fields=["review_status"])

    mine = page_for("carol").get("/review/queue/mine/", follow=True)

    html = mine.content.decode()
    assert mine.status_code == 200 and "<h1>My assigned cases</h1>" in html
    assert f'data-case-id="{cases[1].pk}"' in html and f'data-case-id="{cases[0].pk}"' not in html
    assert 'data-testid="queue-total"><strong>1</strong> case matches' in html


@pytest.mark.parametrize(("persona", "status"), [("alice", 403), ("lena", 403), ("otto", 403), ("dana", 302)])
def test_only_reviewers_have_assigned_cases(page_for, persona, status):
    assert page_for(persona).get("/review/queue/mine/").status_code == status
