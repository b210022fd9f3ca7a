"""My feedback (acknowledge, own trends), and the chair's performance summaries with CSV and PDF."""

from __future__ import annotations

import csv
import io

import pytest

from audit.log import SYSTEM
from audit.models import AuditEvent
from portal.review import services
from portal.review.exports import csv_safe
from portal.review.models import Feedback
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def _review(case, message: str = "Please check the apices.", radpeer: str = "2b", reviewer=None):
    # A discrepant score says the signed report erred; "1" that the AI draft did.
    side = "signed_report" if radpeer in ("", "1") else "ai_draft"
    verdicts = {d.pk: services.VerdictInput("agree", correct_side=side) for d in case.discrepancies.all()}
    return services.review_submit(
        comparison=case,
        reviewer=reviewer or make_user(f"rev{case.pk}", "qa_reviewer"),
        radpeer=radpeer,
        comment="",
        verdicts=verdicts,
        feedback_message=message,
        context=SYSTEM,
    )


def test_the_radiologist_sees_her_feedback_and_not_the_reviewers_name(page_for, case):
    _review(case)

    html = page_for("alice").get("/review/feedback/").content.decode()

    assert 'data-testid="feedback-item"' in html and "Please check the apices." in html
    assert f"rev{case.pk}" not in html


def test_another_radiologists_feedback_is_not_listed(page_for, case):
    _review(case)

    html = page_for("bob").get("/review/feedback/").content.decode()

    assert 'data-testid="feedback-empty"' in html and "apices" not in html


def test_acknowledging_with_htmx_swaps_the_item(page_for, case):
    _review(case)
    feedback = Feedback.objects.get()

    response = page_for("alice").post(f"/review/feedback/{feedback.pk}/acknowledge/", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert 'data-testid="feedback-acknowledged"' in response.content.decode()
    assert "<html" not in response.content.decode()
    feedback.refresh_from_db()
    assert feedback.acknowledged_at is not None
    assert AuditEvent.objects.filter(action="feedback.acknowledge", actor_username="alice").count() == 1


def test_acknowledging_twice_changes_nothing(page_for, case):
    _review(case)
    feedback = Feedback.objects.get()
    client = page_for("alice")
    client.post(f"/review/feedback/{feedback.pk}/acknowledge/")
    first = Feedback.objects.get().acknowledged_at

    assert client.post(f"/review/feedback/{feedback.pk}/acknowledge/").status_code == 302
    assert Feedback.objects.get().acknowledged_at == first
    assert AuditEvent.objects.filter(action="feedback.acknowledge").count() == 1


@pytest.mark.parametrize(
    "path", ["/review/feedback/999999/acknowledge/", "/review/feedback/abc/acknowledge/"]
)
def test_unknown_feedback_is_not_found(page_for, case, path):
    assert page_for("alice").post(path).status_code == 404


def test_another_radiologists_feedback_cannot_be_acknowledged(page_for, case):
    _review(case)
    feedback = Feedback.objects.get()

    assert page_for("bob").post(f"/review/feedback/{feedback.pk}/acknowledge/").status_code == 404
    assert Feedback.objects.get().acknowledged_at is None
    assert AuditEvent.objects.filter(action="access.denied", actor_username="bob").exists()


def test_own_trend_against_the_department(page_for, make_case, personas, now):
    _review(make_case(personas["alice"], when=now))
    make_case(personas["bob"], when=now, draft="FINDINGS:\nNormal.", signed="FINDINGS:\nNormal.")
    services.daily_stats_refresh()

    html = page_for("alice").get("/review/feedback/?period=730").content.decode()

    assert 'data-testid="own-rate">100.0%' in html
    assert 'data-testid="department-rate">50.0%' in html
    assert 'id="chart-own-trend"' in html


def test_the_feedback_page_runs_a_bounded_number_of_queries(
    page_for, make_case, personas, django_assert_max_num_queries
):
    for _ in range(3):
        _review(make_case(personas["alice"]))
    client = page_for("alice")
    client.get("/review/feedback/")
    with django_assert_max_num_queries(20):
        assert client.get("/review/feedback/").status_code == 200


def test_csv_cells_that_would_be_formulas_are_neutralised():
    assert [csv_safe(v) for v in ("=1+1", "+A1", "-2", "@SUM(A1)", "plain", 3)] == [
        "'=1+1",
        "'+A1",
        "'-2",
        "'@SUM(A1)",
        "plain",
        "3",
    ]


def test_the_chair_exports_the_summary_as_csv_with_formula_names_neutralised(
    page_for, make_case, personas, now
):
    personas["alice"].first_name = "=HYPERLINK(evil)"
    personas["alice"].save()
    _review(make_case(personas["alice"], when=now), radpeer="3b")
    services.daily_stats_refresh()

    response = page_for("dana").get("/review/performance.csv?period=730")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    alice = next(r for r in rows if "HYPERLINK" in r[0])
    assert alice[0].startswith("'=")
    header = rows[0]  # a plain table: the header comes first
    assert header[0] == "radiologist"
    assert alice[header.index("RADPEER 3b")] == "1"
    assert AuditEvent.objects.filter(action="performance_summary.export").exists()


def test_the_chair_exports_the_summary_as_pdf(page_for, make_case, personas, now):
    personas["alice"].first_name = "Zoë Œuvre ✓"  # outside Latin-1: printed, not crashed
    personas["alice"].save()
    _review(make_case(personas["alice"], when=now))
    services.daily_stats_refresh()

    response = page_for("dana").get("/review/performance.pdf?period=730")

    assert response.status_code == 200 and response.content.startswith(b"%PDF")


def test_the_summary_page_shows_names_to_the_chair(page_for, make_case, personas, now):
    _review(make_case(personas["alice"], when=now))
    services.daily_stats_refresh()

    html = page_for("dana").get("/review/performance/?period=730").content.decode()

    assert 'data-testid="performance-row"' in html and "<td>alice</td>" in html


def test_a_bad_period_falls_back_to_the_default(page_for):
    assert page_for("dana").get("/review/performance/?period=<script>").status_code == 200
