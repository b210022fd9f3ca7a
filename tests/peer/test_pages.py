"""The peer-learning pages: who may open them, what bad input gets, and that they escape what they show."""

from __future__ import annotations

import pytest

from audit.log import SYSTEM
from audit.models import AuditEvent
from portal.peer import routing, teaching
from portal.peer.models import Notification, RoutingRule, RoutingRun, TeachingCase, TeachingSet
from portal.review import services
from tests.query_budget import audit_appends

pytestmark = pytest.mark.django_db

CHAIR_PAGES = [
    ("get", "/peer/teaching/"),
    ("get", "/peer/rules/"),
    ("post", "/peer/rules/run/"),
    ("post", "/peer/teaching/"),
    ("post", "/peer/rules/"),
]


@pytest.fixture
def teaching_set(personas) -> TeachingSet:
    return teaching.teaching_set_create(
        title="Chest conference", conference_date=None, description="", actor=personas["dana"], context=SYSTEM
    )


@pytest.fixture
def taught(personas, teaching_set, make_case, adjudicate) -> TeachingCase:
    case = make_case(personas["alice"])
    adjudicate(case, personas["carol"], comment="<script>alert('comment')</script>")
    return teaching.teaching_case_add(
        teaching_set=teaching_set, comparison_id=case.pk, actor=personas["dana"], context=SYSTEM
    )


# --- Access ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alice", "carol", "lena", "otto", "eve"])
@pytest.mark.parametrize(("method", "path"), CHAIR_PAGES)
def test_only_the_chair_opens_the_chair_pages(page_for, name, method, path):
    response = getattr(page_for(name), method)(path, {"title": "x", "limit": 5})

    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="access.denied", actor_username=name).exists()
    assert not TeachingSet.objects.exists() and not RoutingRun.objects.exists()


@pytest.mark.parametrize("name", ["alice", "carol", "lena", "eve"])
def test_set_pages_and_exports_refuse_everyone_but_the_chair(page_for, name, teaching_set, taught):
    client = page_for(name)
    for path in (
        f"/peer/teaching/{teaching_set.pk}/",
        f"/peer/teaching/{teaching_set.pk}/export.pdf",
        f"/peer/teaching/{teaching_set.pk}/export.zip",
        f"/peer/teaching/{teaching_set.pk}/cases/{taught.pk}/",
    ):
        assert client.get(path).status_code == 403, path
    assert client.post(f"/peer/teaching/{teaching_set.pk}/cases/{taught.pk}/remove/").status_code == 403
    assert TeachingCase.objects.count() == 1


@pytest.mark.parametrize("path", ["/peer/inbox/", "/peer/teaching/", "/peer/rules/"])
def test_anonymous_visitors_are_sent_to_sign_in(page_for, path):
    response = page_for(None).get(path)

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_admin_opens_the_chair_pages(page_for, personas):
    from tests.conftest import make_user

    make_user("adam", "admin")
    client = page_for(None)
    client.force_login(type(personas["dana"]).objects.get(username="adam"))

    assert client.get("/peer/teaching/").status_code == 200
    assert client.get("/peer/rules/").status_code == 200


# --- Inbox --------------------------------------------------------------------------------------------


def test_the_radiologist_sees_her_own_notifications_only(page_for, personas, make_case, adjudicate):
    adjudicate(make_case(personas["alice"]), personas["carol"], feedback="Please check the apices.")

    alice = page_for("alice").get("/peer/inbox/").content.decode()
    bob = page_for("bob").get("/peer/inbox/").content.decode()

    assert alice.count('data-testid="inbox-item"') == 1 and 'data-kind="feedback"' in alice
    assert 'data-testid="nav-unread" aria-label="1 unread">1<' in alice
    assert 'data-testid="inbox-empty"' in bob and 'data-testid="nav-unread"' not in bob
    assert "apices" not in alice  # the inbox says that feedback arrived; the feedback page shows it
    assert AuditEvent.objects.filter(action="notification.inbox_view", actor_username="alice").exists()


def test_opening_a_notification_marks_it_read_and_goes_to_the_feedback(
    page_for, personas, make_case, adjudicate
):
    adjudicate(make_case(personas["alice"]), personas["carol"], feedback="Please check the apices.")
    notification = Notification.objects.get()

    response = page_for("alice").post(f"/peer/inbox/{notification.pk}/open/")

    assert response.status_code == 302
    assert response["Location"] == f"/review/feedback/#feedback-{notification.feedback_id}"
    notification.refresh_from_db()
    assert notification.read_at is not None
    assert AuditEvent.objects.filter(action="notification.read", actor_username="alice").count() == 1


def test_an_assignment_notification_leads_to_the_case(page_for, personas, make_case):
    case = make_case(personas["alice"])
    services.assignments_create(
        comparison_ids=[case.pk], reviewer=personas["carol"], actor=personas["dana"], context=SYSTEM
    )

    response = page_for("carol").post(f"/peer/inbox/{Notification.objects.get().pk}/open/")

    assert response["Location"] == f"/review/cases/{case.pk}/"


def test_someone_elses_notification_is_not_found(page_for, personas, make_case, adjudicate):
    adjudicate(make_case(personas["alice"]), personas["carol"], feedback="x")
    notification = Notification.objects.get()

    assert page_for("bob").post(f"/peer/inbox/{notification.pk}/open/").status_code == 404
    assert Notification.objects.get().read_at is None
    assert AuditEvent.objects.filter(action="access.denied", actor_username="bob").exists()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/peer/inbox/999999/open/", 404),
        ("post", "/peer/inbox/abc/open/", 404),
        ("post", "/peer/inbox/-1/open/", 404),
        ("get", "/peer/inbox/1/open/", 405),
        ("get", "/peer/inbox/read-all/", 405),
        ("post", "/peer/inbox/", 405),
    ],
)
def test_bad_inbox_requests_get_a_clear_answer(page_for, method, path, status):
    assert getattr(page_for("alice"), method)(path).status_code == status


def test_mark_all_read(page_for, personas, make_case, adjudicate):
    for _ in range(3):
        adjudicate(make_case(personas["alice"]), personas["carol"], feedback="x")

    response = page_for("alice").post("/peer/inbox/read-all/")

    assert response.status_code == 302
    assert not Notification.objects.filter(read_at__isnull=True).exists()
    assert AuditEvent.objects.get(action="notification.read_all").details == {"count": 3}


@pytest.mark.parametrize("page", ["", "0", "-3", "abc", "99999", "1" * 400])
def test_any_inbox_page_number_shows_a_page(page_for, page):
    assert page_for("alice").get("/peer/inbox/", {"page": page}).status_code == 200


def test_the_inbox_runs_a_bounded_number_of_queries(
    page_for, personas, make_case, adjudicate, django_assert_max_num_queries
):
    cases = [make_case(personas["alice"]) for _ in range(5)]
    for case in cases:
        adjudicate(case, personas["dana"], feedback="x")  # 5 feedback notifications for alice
    services.assignments_create(
        comparison_ids=[c.pk for c in cases],
        reviewer=personas["carol"],
        actor=personas["dana"],
        context=SYSTEM,
    )  # 5 assignment notifications for carol
    for name in ("alice", "carol"):
        client = page_for(name)
        client.get("/peer/inbox/")
        with django_assert_max_num_queries(14 + audit_appends()):
            assert client.get("/peer/inbox/").content.decode().count('data-testid="inbox-item"') == 5


def test_the_integration_account_has_no_inbox_link(page_for):
    assert 'data-testid="nav-inbox"' not in page_for("ris").get("/").content.decode()


# --- Teaching pages -----------------------------------------------------------------------------------


def test_the_chair_creates_a_set_and_adds_a_case_through_the_pages(page_for, personas, make_case, adjudicate):
    client = page_for("dana")
    response = client.post("/peer/teaching/", {"title": "March conference", "conference_date": "2026-03-20"})
    created = TeachingSet.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/peer/teaching/{created.pk}/"
    case = make_case(personas["alice"])
    adjudicate(case, personas["carol"], comment="Look at the costophrenic angle.")

    assert client.post(f"/peer/teaching/{created.pk}/", {"case": case.pk}).status_code == 302
    html = client.get(f"/peer/teaching/{created.pk}/").content.decode()
    assert html.count('data-testid="teaching-case"') == 1
    assert case.study.accession_number not in html and case.study.patient.mrn not in html
    assert "costophrenic angle" in html
    pdf = client.get(f"/peer/teaching/{created.pk}/export.pdf")
    assert (
        pdf.status_code == 200
        and pdf["Content-Type"] == "application/pdf"
        and pdf.content.startswith(b"%PDF")
    )
    bundle = client.get(f"/peer/teaching/{created.pk}/export.zip")
    assert bundle.status_code == 200 and bundle["Content-Type"] == "application/zip"
    assert bundle["Cache-Control"] == "no-store"
    formats = sorted(e.details["format"] for e in AuditEvent.objects.filter(action="teaching_set.export"))
    assert formats == ["pdf", "zip"]


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"title": ""},
        {"title": "x" * 201},
        {"title": "ok", "conference_date": "20-03-2026"},
        {"title": "ok", "conference_date": "2026-02-30"},
        {"title": "ok", "description": "d" * 5001},
    ],
)
def test_bad_sets_are_refused_by_the_page(page_for, data):
    response = page_for("dana").post("/peer/teaching/", data)

    assert response.status_code == 400 and 'data-testid="form-errors"' in response.content.decode()
    assert not TeachingSet.objects.exists()


@pytest.mark.parametrize(
    ("value", "status"), [("", 400), ("abc", 400), ("-4", 400), ("0", 400), ("9" * 30, 400), ("999999", 404)]
)
def test_bad_case_numbers_are_refused(page_for, teaching_set, value, status):
    response = page_for("dana").post(f"/peer/teaching/{teaching_set.pk}/", {"case": value})

    assert response.status_code == status
    assert not TeachingCase.objects.exists()


def test_an_unscored_or_repeated_case_is_refused_with_a_reason(
    page_for, personas, teaching_set, taught, make_case
):
    client = page_for("dana")
    unscored = client.post(f"/peer/teaching/{teaching_set.pk}/", {"case": make_case(personas["alice"]).pk})
    repeated = client.post(f"/peer/teaching/{teaching_set.pk}/", {"case": taught.comparison_id})

    assert unscored.status_code == 400 and "scored" in unscored.content.decode()
    assert repeated.status_code == 409 and "already in the set" in repeated.content.decode()
    assert TeachingCase.objects.count() == 1


def test_unknown_sets_and_cases_are_not_found(page_for, teaching_set, taught):
    client = page_for("dana")

    assert client.get("/peer/teaching/999999/").status_code == 404
    assert client.get("/peer/teaching/999999/export.pdf").status_code == 404
    assert client.get(f"/peer/teaching/{teaching_set.pk}/export.docx").status_code == 404
    other = TeachingSet.objects.create(title="Other", created_by=teaching_set.created_by)
    assert client.get(f"/peer/teaching/{other.pk}/cases/{taught.pk}/").status_code == 404


def test_hostile_text_is_escaped_on_the_set_page(page_for, teaching_set, taught):
    TeachingSet.objects.filter(pk=teaching_set.pk).update(title="<img src=x onerror=alert(1)>")

    html = page_for("dana").get(f"/peer/teaching/{teaching_set.pk}/").content.decode()

    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#x27;comment&#x27;)&lt;/script&gt;" in html


def test_editing_and_removing_a_case_through_the_pages(page_for, teaching_set, taught):
    client = page_for("dana")
    path = f"/peer/teaching/{teaching_set.pk}/cases/{taught.pk}/"
    assert client.get(path).status_code == 200

    too_long = client.post(path, {"ai_draft": "x" * 50_001, "signed_report": "y"})
    saved = client.post(
        path, {"ai_draft": "Edited, MRN 1234567.", "signed_report": "Signed.", "committee_comment": ""}
    )

    assert too_long.status_code == 400
    assert saved.status_code == 302
    assert TeachingCase.objects.get().ai_draft == "Edited, MRN [ID]"
    assert client.post(f"{path}remove/").status_code == 302
    assert not TeachingCase.objects.exists()
    assert AuditEvent.objects.filter(action="teaching_case.remove").count() == 1


# --- Rules pages --------------------------------------------------------------------------------------


def test_the_chair_adds_a_rule_and_assigns_by_rules(page_for, personas, make_case):
    for _ in range(3):
        make_case(personas["alice"])
    client = page_for("dana")

    added = client.post(
        "/peer/rules/",
        {"reviewer": personas["carol"].pk, "specialty": "chest", "max_open": 2, "active": "on"},
    )
    run = client.post("/peer/rules/run/", {"limit": 50}, follow=True)

    assert added.status_code == 302
    assert (
        run.status_code == 200 and "2 of 3 waiting case(s) assigned to 1 reviewer(s)." in run.content.decode()
    )
    assert 'data-testid="rule-load">2 / 2<' in run.content.decode()


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"reviewer": "abc", "specialty": "chest", "max_open": 3},
        {"reviewer": 999999, "specialty": "chest", "max_open": 3},
        {"reviewer": "ALICE", "specialty": "chest", "max_open": 3},
        {"reviewer": "CAROL", "specialty": "'; DROP TABLE peer_routingrule; --", "max_open": 3},
        {"reviewer": "CAROL", "specialty": "chest", "max_open": 0},
        {"reviewer": "CAROL", "specialty": "chest", "max_open": 1001},
        {"reviewer": "CAROL", "specialty": "chest", "max_open": "1e3"},
    ],
)
def test_bad_rules_are_refused_by_the_page(page_for, personas, data):
    data = {k: personas[v.lower()].pk if v in ("ALICE", "CAROL") else v for k, v in data.items()}

    response = page_for("dana").post("/peer/rules/", data)

    assert response.status_code == 400 and 'data-testid="form-errors"' in response.content.decode()
    assert not RoutingRule.objects.exists()


@pytest.mark.parametrize("limit", ["", "0", "501", "abc", "-5"])
def test_a_bad_run_limit_is_refused(page_for, limit):
    response = page_for("dana").post("/peer/rules/run/", {"limit": limit})

    assert response.status_code == 400 and not RoutingRun.objects.exists()


def test_switching_a_rule_off_and_on(page_for, personas):
    rule = routing.routing_rule_save(
        reviewer=personas["carol"],
        specialty="chest",
        max_open=2,
        active=True,
        actor=personas["dana"],
        context=SYSTEM,
    )
    client = page_for("dana")

    assert client.post(f"/peer/rules/{rule.pk}/toggle/").status_code == 302
    assert RoutingRule.objects.get().active is False
    assert client.post(f"/peer/rules/{rule.pk}/toggle/", {"active": "on"}).status_code == 302
    assert RoutingRule.objects.get().active is True
    assert client.post("/peer/rules/999999/toggle/").status_code == 404
    assert page_for("carol").post(f"/peer/rules/{rule.pk}/toggle/").status_code == 403


@pytest.mark.parametrize("name", ["lena", "otto", "eve"])
def test_accounts_that_get_no_notifications_have_no_inbox(page_for, name):
    client = page_for(name)

    assert client.get("/peer/inbox/").status_code == 403
    assert client.post("/peer/inbox/read-all/").status_code == 403
    assert 'data-testid="nav-inbox"' not in client.get("/").content.decode()


def test_every_chair_page_view_is_audited(page_for, teaching_set, taught):
    client = page_for("dana")
    for path in (
        "/peer/teaching/",
        f"/peer/teaching/{teaching_set.pk}/",
        f"/peer/teaching/{teaching_set.pk}/cases/{taught.pk}/",
        "/peer/rules/",
    ):
        assert client.get(path).status_code == 200

    actions = set(AuditEvent.objects.filter(actor_username="dana").values_list("action", flat=True))
    assert {"teaching_sets.view", "teaching_set.view", "teaching_case.view", "routing_rules.view"} <= actions
