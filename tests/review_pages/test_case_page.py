"""The case page: side-by-side texts with discrepancies marked at their exact words; adjudication."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils.html import escape

from audit.models import AuditEvent
from portal.review.models import Assignment, Feedback, Review, ReviewStatus
from portal.review.pseudonyms import pseudonym

pytestmark = pytest.mark.django_db


def _url(case) -> str:
    return f"/review/cases/{case.pk}/"


def _verdicts(case, verdict: str = "agree", side: str = "ai_draft") -> dict[str, str]:
    """A verdict on every discrepancy; ``side`` says who was right (the signed report erred by default)."""
    out = {}
    for d in case.discrepancies.all():
        out[f"verdict_{d.pk}"] = verdict
        out[f"side_{d.pk}"] = side
    return out


def test_every_discrepancy_is_marked_at_its_exact_words(page_for, case):
    response = page_for("carol").get(_url(case))

    assert response.status_code == 200
    html = response.content.decode()
    for d in case.discrepancies.all():
        for side in ("candidate", "reference"):
            text = getattr(case, side).text
            marks = getattr(d, f"{side}_marks")
            for index, (start, end) in enumerate(sorted(map(tuple, marks))):
                anchor = f"{side}-mark-{d.pk}" + (f"-{index}" if index else "")
                assert f'id="{anchor}"' in html
                assert text[start:end] in html
            if marks or getattr(d, f"{side}_start") is not None:
                assert f'data-discrepancy="{d.pk}' in html or f' {d.pk}"' in html
        assert escape(d.explanation) in html


def test_viewing_a_case_is_an_audited_phi_access(page_for, case):
    page_for("carol").get(_url(case))

    event = AuditEvent.objects.get(action="case.view")
    assert (event.actor_username, event.study_id, event.object_id) == ("carol", case.study_id, str(case.pk))
    assert event.patient_id == case.study.patient_id


def test_reviewers_see_a_pseudonym_and_the_chair_sees_the_name(page_for, case, personas):
    reviewer_view = page_for("carol").get(_url(case)).content.decode()
    chair_view = page_for("dana").get(_url(case)).content.decode()

    assert pseudonym(personas["alice"].pk) in reviewer_view
    assert "alice" not in reviewer_view.split('data-testid="case-radiologist">')[1][:40]
    assert 'data-testid="case-radiologist">alice<' in chair_view


def test_the_pseudonym_is_stable_and_differs_between_readers(personas):
    assert pseudonym(personas["alice"].pk) == pseudonym(personas["alice"].pk)
    assert pseudonym(personas["alice"].pk) != pseudonym(personas["bob"].pk)
    assert pseudonym(personas["alice"].pk).startswith("Reader ")


def test_the_radiologist_opens_her_own_case_but_not_anothers(page_for, make_case, personas):
    own = make_case(personas["alice"])
    other = make_case(personas["bob"])
    client = page_for("alice")

    assert client.get(_url(own)).status_code == 200
    assert client.get(_url(other)).status_code == 404
    assert AuditEvent.objects.filter(action="access.denied", actor_username="alice").count() == 1
    assert 'id="adjudication"' not in client.get(_url(own)).content.decode()


def test_a_reviewer_adjudicates_and_feedback_reaches_the_radiologist(page_for, case, personas):
    response = page_for("carol").post(
        f"{_url(case)}adjudicate/",
        {
            "radpeer": "2b",
            "comment": "Missed pneumothorax.",
            "send_feedback": "on",
            "feedback_message": "Please check the apices.",
            **_verdicts(case),
        },
    )

    assert response.status_code == 302
    review = Review.objects.get()
    assert (review.radpeer, review.reviewer.username, review.verdicts.count()) == (
        "2b",
        "carol",
        case.discrepancies.count(),
    )
    feedback = Feedback.objects.get()
    assert (feedback.radiologist, feedback.message) == (personas["alice"], "Please check the apices.")
    case.refresh_from_db()
    assert case.review_status == ReviewStatus.REVIEWED
    assert set(AuditEvent.objects.values_list("action", flat=True)) >= {"review.submit", "feedback.create"}


def test_a_second_opinion_is_a_correction_and_the_first_review_stays(page_for, case):
    client = page_for("carol")
    client.post(f"{_url(case)}adjudicate/", {"radpeer": "1", **_verdicts(case, side="signed_report")})
    first = Review.objects.get()

    again = client.post(f"{_url(case)}adjudicate/", {"radpeer": "3b", **_verdicts(case)})
    assert again.status_code == 400  # must name the review it corrects
    corrected = client.post(
        f"{_url(case)}adjudicate/", {"radpeer": "3b", "supersedes": first.pk, **_verdicts(case)}
    )

    assert corrected.status_code == 302
    assert list(Review.objects.order_by("pk").values_list("radpeer", "supersedes")) == [
        ("1", None),
        ("3b", first.pk),
    ]


def test_reviews_cannot_be_edited_even_with_raw_sql(page_for, case):
    page_for("carol").post(
        f"{_url(case)}adjudicate/", {"radpeer": "1", **_verdicts(case, side="signed_report")}
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.update(radpeer="3b")
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.all().delete()


def test_recategorising_a_discrepancy_is_stored(page_for, case):
    d = case.discrepancies.order_by("pk").first()
    other = "severity" if d.category != "severity" else "location"
    data = {"radpeer": "2a", **_verdicts(case), f"verdict_{d.pk}": f"recategorise:{other}"}

    assert page_for("carol").post(f"{_url(case)}adjudicate/", data).status_code == 302
    verdict = Review.objects.get().verdicts.get(discrepancy=d)
    assert (verdict.verdict, verdict.category) == ("recategorise", other)


@pytest.mark.parametrize(
    "change",
    [
        {"radpeer": "4"},
        {"radpeer": ""},
        {"radpeer": "1' OR '1'='1"},
        {"verdict": "maybe"},
        {"verdict": "recategorise:not_a_category"},
        {"drop_verdicts": True},
        {"comment": "x" * 10_001},
        {"send_feedback": "on", "feedback_message": ""},
        {"supersedes": "abc"},
        {"supersedes": "999999"},
    ],
)
def test_bad_adjudications_are_refused_and_nothing_is_written(page_for, case, change):
    data = {"radpeer": "2a", **_verdicts(case)}
    if change.pop("drop_verdicts", False):
        data = {"radpeer": "2a"}
    if "verdict" in change:
        data.update(_verdicts(case, change.pop("verdict")))
    data.update(change)

    response = page_for("carol").post(f"{_url(case)}adjudicate/", data)

    assert response.status_code == 400
    assert not Review.objects.exists() and not Feedback.objects.exists()


def test_hostile_comment_text_is_stored_verbatim_and_shown_escaped(page_for, case):
    hostile = "<script>alert(1)</script>'; DROP TABLE review_review; --"
    page_for("carol").post(
        f"{_url(case)}adjudicate/",
        {"radpeer": "1", "comment": hostile, **_verdicts(case, side="signed_report")},
    )

    assert Review.objects.get().comment == hostile
    html = page_for("dana").get(_url(case)).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("persona", ["lena", "otto"])
def test_legal_and_auditors_read_cases_but_cannot_adjudicate(page_for, case, persona):
    client = page_for(persona)

    page = client.get(_url(case))
    assert page.status_code == 200 and 'id="adjudication"' not in page.content.decode()
    assert (
        client.post(
            f"{_url(case)}adjudicate/", {"radpeer": "1", **_verdicts(case, side="signed_report")}
        ).status_code
        == 403
    )
    assert not Review.objects.exists()
    assert AuditEvent.objects.filter(action="access.denied", actor_username=persona).exists()


def test_a_reviewer_may_not_score_a_report_they_signed(page_for, make_case, personas):
    from django.contrib.auth.models import Group

    personas["carol"].groups.add(Group.objects.get_or_create(name="radiologist")[0])
    own = make_case(personas["carol"])

    response = page_for("carol").post(
        f"{_url(own)}adjudicate/", {"radpeer": "1", **_verdicts(own, side="signed_report")}
    )

    assert response.status_code == 403
    assert not Review.objects.exists()


def test_j_and_k_link_to_the_neighbours_in_queue_order(page_for, make_case, personas):
    first, second, third = (make_case(personas["alice"]) for _ in range(3))

    html = page_for("carol").get(f"{_url(second)}?sort=date").content.decode()

    assert f'href="/review/cases/{third.pk}/?sort=date" id="case-next" data-key="j"' in html
    assert f'href="/review/cases/{first.pk}/?sort=date" id="case-prev" data-key="k"' in html
    assert "review/case.js" in html and "<script>" not in html


def test_completing_a_review_completes_the_assignment(page_for, case, personas):
    Assignment.objects.create(comparison=case, reviewer=personas["carol"], assigned_by=personas["dana"])

    page_for("carol").post(
        f"{_url(case)}adjudicate/", {"radpeer": "1", **_verdicts(case, side="signed_report")}
    )

    assert Assignment.objects.get().completed_at is not None


def test_the_case_page_runs_a_bounded_number_of_queries(page_for, case, django_assert_max_num_queries):
    client = page_for("carol")
    client.get(_url(case))  # warm the session
    with django_assert_max_num_queries(24):
        assert client.get(f"{_url(case)}?sort=-date&specialty=chest").status_code == 200


def test_the_audit_timeline_shows_the_radiologist_only_as_a_pseudonym(page_for, case, personas):
    page_for("alice").get(_url(case))  # alice's own view is an audited event of the study

    html = page_for("carol").get(_url(case)).content.decode()
    timeline = html.split('data-testid="audit-timeline"')[1]

    assert pseudonym(personas["alice"].pk) in timeline and "<td>alice</td>" not in timeline
    assert "<td>carol</td>" in timeline
    assert "<td>alice</td>" in page_for("dana").get(_url(case)).content.decode().split("audit-timeline")[1]
