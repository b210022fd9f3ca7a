"""The QA queue: filters, sorting, keyset pagination, assignment, HTMX partials, bad input."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from audit.models import AuditEvent
from portal.records.models import ModelVersion
from portal.review import selectors
from portal.review.models import Assignment, ReviewStatus
from portal.review.pseudonyms import pseudonym
from tests.query_budget import audit_appends

pytestmark = pytest.mark.django_db

CLEAN = "FINDINGS:\nSmall left pleural effusion.\n\nIMPRESSION:\nSmall left pleural effusion."


def _ids(response) -> list[int]:
    return [
        int(i) for i in re.findall(r'data-testid="queue-row" data-case-id="(\d+)"', response.content.decode())
    ]


@pytest.fixture
def cases(make_case, personas):
    """Five cases: chest CR, chest CT, a neuro MR without discrepancy, two by bob on another model."""
    other = ModelVersion.objects.create(name="concordance-neuro", version="2.0.0")
    day = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    return {
        "chest_cr": make_case(personas["alice"], when=day),
        "chest_ct": make_case(personas["alice"], modality="CT", when=day + dt.timedelta(days=1)),
        "clean": make_case(
            personas["alice"],
            specialty="neuro",
            modality="MR",
            draft=CLEAN,
            signed=CLEAN,
            when=day + dt.timedelta(days=2),
        ),
        "bob1": make_case(personas["bob"], when=day + dt.timedelta(days=3), model=other),
        "bob2": make_case(personas["bob"], when=day + dt.timedelta(days=4), model=other),
    }


def test_newest_study_first_by_default(page_for, cases):
    response = page_for("carol").get("/review/queue/")

    assert response.status_code == 200
    assert _ids(response) == [cases[k].pk for k in ("bob2", "bob1", "clean", "chest_ct", "chest_cr")]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("specialty=neuro", ["clean"]),
        ("modality=ct", ["chest_ct"]),
        ("significance=none", ["clean"]),
        ("significance=significant", ["bob2", "bob1", "chest_ct", "chest_cr"]),
        ("date_from=2026-03-02&date_to=2026-03-03", ["clean", "chest_ct"]),
        ("category=false_finding", ["bob2", "bob1", "chest_ct", "chest_cr"]),
        ("status=unassigned&sort=date", ["chest_cr", "chest_ct", "clean", "bob1", "bob2"]),
        ("radpeer=1", ["clean"]),
    ],
)
def test_filters(page_for, cases, query, expected):
    assert _ids(page_for("carol").get(f"/review/queue/?{query}")) == [cases[k].pk for k in expected]


def test_filter_by_model_version_and_by_reviewer(page_for, cases, personas):
    model = cases["bob1"].model_version_id
    Assignment.objects.create(
        comparison=cases["clean"], reviewer=personas["carol"], assigned_by=personas["dana"]
    )
    client = page_for("dana")

    assert _ids(client.get(f"/review/queue/?model_version={model}")) == [cases["bob2"].pk, cases["bob1"].pk]
    assert _ids(client.get(f"/review/queue/?reviewer={personas['carol'].pk}")) == [cases["clean"].pk]


def test_keyset_pages_cover_every_case_once(page_for, cases, monkeypatch):
    monkeypatch.setattr(selectors, "PAGE_SIZE", 2)
    client = page_for("carol")
    seen, url = [], "/review/queue/?sort=-significant"
    while url:
        response = client.get(url)
        seen += _ids(response)
        match = re.search(r'href="([^"]+)" id="queue-next-page"', response.content.decode())
        url = match.group(1).replace("&amp;", "&") if match else ""

    assert sorted(seen) == sorted(c.pk for c in cases.values()) and len(seen) == len(set(seen))
    assert seen[-1] == cases["clean"].pk  # no discrepancy: last when sorted by significance


def test_htmx_requests_get_only_the_results(page_for, cases):
    response = page_for("carol").get("/review/queue/?specialty=neuro", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="queue-results"')
    assert "<html" not in html


def test_reviewers_see_pseudonyms_the_chair_sees_names(page_for, cases, personas):
    carol = page_for("carol").get("/review/queue/").content.decode()
    dana = page_for("dana").get("/review/queue/").content.decode()

    assert pseudonym(personas["bob"].pk) in carol and "<td>bob</td>" not in carol
    assert "<td>bob</td>" in dana


def test_viewing_the_queue_is_audited_with_the_cases_shown(page_for, cases):
    page_for("carol").get("/review/queue/?specialty=neuro")

    event = AuditEvent.objects.get(action="review_queue.view")
    assert event.details == {"ids": [cases["clean"].pk]}


@pytest.mark.parametrize(
    "query",
    [
        "date_from=yesterday",
        "date_from=2026-03-05&date_to=2026-03-01",
        "specialty=<script>alert(1)</script>",
        "modality=CT' OR 1=1 --",
        "modality=" + "C" * 17,
        "model_version=abc",
        "reviewer=-1",
        "status=whatever",
        "sort=id;DROP TABLE x",
        "cursor=forged",
    ],
)
def test_bad_filters_are_a_clear_400(page_for, cases, query):
    response = page_for("carol").get(f"/review/queue/?{query}")

    assert response.status_code == 400
    assert 'data-testid="queue-errors"' in response.content.decode()
    assert "<script>alert(1)</script>" not in response.content.decode()


def test_a_cursor_of_another_sort_is_refused(page_for, cases, monkeypatch):
    monkeypatch.setattr(selectors, "PAGE_SIZE", 2)
    html = page_for("carol").get("/review/queue/?sort=-date").content.decode()
    cursor = re.search(r"cursor=([^&\"]+)", html).group(1)

    assert page_for("carol").get(f"/review/queue/?sort=date&cursor={cursor}").status_code == 400


def test_the_chair_assigns_ticked_cases(page_for, cases, personas):
    ids = [cases["chest_cr"].pk, cases["clean"].pk]
    response = page_for("dana").post(
        "/review/queue/assign/", {"reviewer": personas["carol"].pk, "cases": ids, "back": "specialty=chest"}
    )

    assert response.status_code == 302 and response["Location"] == "/review/queue/?specialty=chest"
    assert sorted(Assignment.objects.values_list("comparison_id", flat=True)) == sorted(ids)
    cases["clean"].refresh_from_db()
    assert cases["clean"].review_status == ReviewStatus.ASSIGNED
    assert AuditEvent.objects.filter(action="assignment.create").count() == 2


def test_a_case_is_never_assigned_to_the_radiologist_who_signed_it(page_for, cases, personas):
    from django.contrib.auth.models import Group

    personas["alice"].groups.add(Group.objects.get_or_create(name="qa_reviewer")[0])
    page_for("dana").post(
        "/review/queue/assign/",
        {"reviewer": personas["alice"].pk, "cases": [cases["chest_cr"].pk, cases["bob1"].pk]},
    )

    assert list(Assignment.objects.values_list("comparison_id", flat=True)) == [cases["bob1"].pk]


@pytest.mark.parametrize(
    "data",
    [
        {"reviewer": "", "cases": ["1"]},
        {"reviewer": "abc", "cases": ["1"]},
        {"cases": ["1; DROP TABLE x"]},
        {"cases": []},
        {"cases": ["999999"]},
        {"cases": [str(i) for i in range(1, 300)]},
    ],
)
def test_bad_assignments_write_nothing(page_for, cases, personas, data):
    data = {"reviewer": personas["carol"].pk, **data}

    response = page_for("dana").post("/review/queue/assign/", data)

    assert response.status_code == 302
    assert not Assignment.objects.exists()


def test_assigning_to_an_account_without_a_review_role_is_refused(page_for, cases, personas):
    page_for("dana").post(
        "/review/queue/assign/", {"reviewer": personas["eve"].pk, "cases": [cases["bob1"].pk]}
    )

    assert not Assignment.objects.exists()


def test_the_queue_runs_a_bounded_number_of_queries(page_for, cases, personas, django_assert_max_num_queries):
    for case in cases.values():
        Assignment.objects.create(comparison=case, reviewer=personas["carol"], assigned_by=personas["dana"])
    client = page_for("dana")
    client.get("/review/queue/")
    # Constant whatever the page holds; includes the total and the modality list, and the inbox badge.
    with django_assert_max_num_queries(17 + audit_appends()):
        assert client.get("/review/queue/?significance=significant&category=location").status_code == 200
