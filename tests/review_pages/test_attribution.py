"""Attribution is part of the verdict: who was right against the images decides whose figures an error
feeds. RADPEER scores the radiologist's report only where it erred (or carried the AI's error); errors
of the AI draft alone count for the model version, never for the radiologist.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.log import SYSTEM
from portal.review import selectors, services
from portal.review.errors import InvalidReview
from portal.review.models import DailyStat, DiscrepancyVerdict, Feedback, Review

pytestmark = pytest.mark.django_db

# Case 1995 of the demo, reduced: the AI draft missed a large left pleural effusion the radiologist reported.
AI_MISSED = (
    "FINDINGS:\nNo pleural effusion. No pneumothorax.\n\nIMPRESSION:\nNo acute cardiopulmonary abnormality."
)
SIGNED_RIGHT = (
    "FINDINGS:\nLarge left pleural effusion. No pneumothorax.\n\nIMPRESSION:\nLarge left pleural effusion."
)


@pytest.fixture
def missed_by_ai(make_case, personas):
    """Studied an hour ago (inside every period of the figures pages)."""
    when = timezone.now() - dt.timedelta(hours=1)
    return make_case(personas["alice"], draft=AI_MISSED, signed=SIGNED_RIGHT, when=when)


def _form(case, *, radpeer: str, side: str, carried: bool = False, verdict: str = "agree") -> dict:
    data = {"radpeer": radpeer}
    for d in case.discrepancies.all():
        data[f"verdict_{d.pk}"] = verdict
        data[f"side_{d.pk}"] = side
        if carried:
            data[f"carried_{d.pk}"] = "on"
    return data


def test_the_engine_suggests_2b_and_the_form_offers_it_as_a_suggestion(page_for, missed_by_ai):
    assert missed_by_ai.radpeer_suggested == "2b"

    html = page_for("carol").get(f"/review/cases/{missed_by_ai.pk}/").content.decode()

    assert 'id="radpeer-2b" data-testid="radpeer-2b" checked' in html
    assert 'data-testid="radpeer-suggested-mark">(engine\'s suggestion)' in html
    assert 'data-testid="case-texts"' in html  # the texts stay beside the form (sticky column)


def test_an_ai_only_error_gets_no_radpeer_against_the_radiologist(
    page_for, missed_by_ai, personas, django_capture_on_commit_callbacks
):
    client = page_for("carol")
    refused = client.post(
        f"/review/cases/{missed_by_ai.pk}/adjudicate/",
        _form(missed_by_ai, radpeer="2b", side="signed_report"),
    )
    assert refused.status_code == 400
    assert "RADPEER scores the radiologist" in refused.content.decode()
    assert not Review.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        accepted = client.post(
            f"/review/cases/{missed_by_ai.pk}/adjudicate/",
            {**_form(missed_by_ai, radpeer="", side="signed_report"), "send_feedback": "on",
             "feedback_message": "Well spotted: the AI draft missed it."},
        )  # fmt: skip

    assert accepted.status_code == 302
    review = Review.objects.get()
    assert (review.radpeer, review.radiologist_erred, review.ai_erred) == ("", False, True)
    # Refreshed on commit: no periodic task needed for the figures to show the review.
    alice = next(
        r for r in selectors.performance_summary(*_period()) if r.radiologist_id == personas["alice"].pk
    )
    assert (alice.reviewed, alice.radiologist_errors, alice.ai_errors) == (1, 0, 1)
    assert sum(alice.radpeer.values()) == 0 and alice.major_discrepancy_rate == 0.0
    model = DailyStat.objects.get(dimension="model", key=str(missed_by_ai.model_version_id))
    assert (model.reviewed, model.ai_errors) == (1, 1)
    errors = selectors.model_errors(*_period())
    assert [(e.model_version_id, e.category, e.specialty, e.errors) for e in errors] == [
        (missed_by_ai.model_version_id, "missed_finding", "chest", 1)
    ]
    feedback = page_for("alice").get("/review/feedback/?period=30").content.decode()
    assert 'data-testid="feedback-radpeer">not scored' in feedback
    assert "the AI draft erred; your report was right" in feedback
    assert 'data-testid="own-errors">0' in feedback and 'data-testid="own-ai-errors">1' in feedback
    assert Feedback.objects.count() == 1


def _period():
    import datetime as dt

    from django.utils import timezone

    today = timezone.localdate()
    return today - dt.timedelta(days=29), today


def test_the_radiologists_error_takes_a_discrepant_score(page_for, missed_by_ai, personas):
    client = page_for("carol")
    assert (
        client.post(
            f"/review/cases/{missed_by_ai.pk}/adjudicate/", _form(missed_by_ai, radpeer="1", side="ai_draft")
        ).status_code
        == 400
    )
    assert (
        client.post(
            f"/review/cases/{missed_by_ai.pk}/adjudicate/", _form(missed_by_ai, radpeer="3a", side="ai_draft")
        ).status_code
        == 302
    )

    review = Review.objects.get()
    assert (review.radpeer, review.radiologist_erred, review.ai_erred) == ("3a", True, False)


def test_an_ai_error_carried_into_the_report_counts_for_both(page_for, missed_by_ai):
    response = page_for("carol").post(
        f"/review/cases/{missed_by_ai.pk}/adjudicate/",
        _form(missed_by_ai, radpeer="2a", side="indeterminate", carried=True),
    )

    assert response.status_code == 302
    review = Review.objects.get()
    assert (review.radiologist_erred, review.ai_erred, review.carried_ai_error) == (True, True, True)
    assert DiscrepancyVerdict.objects.get().carried_into_report is True


@pytest.mark.parametrize(
    "change",
    [
        {"side": ""},  # a real discrepancy needs its attribution
        {"side": "radiologist"},
        {"side": "<script>alert(1)</script>"},
        {"side": "signed_report' OR '1'='1"},
        {"side": "both_acceptable", "carried": True},  # wording cannot be a carried error
        {"verdict": "not_a_discrepancy", "side": "signed_report"},  # a rejected one has no side
    ],
)
def test_bad_attributions_are_refused_and_nothing_is_written(page_for, missed_by_ai, change):
    data = _form(
        missed_by_ai,
        radpeer="",
        side=change.get("side", "signed_report"),
        carried=change.get("carried", False),
        verdict=change.get("verdict", "agree"),
    )

    response = page_for("carol").post(f"/review/cases/{missed_by_ai.pk}/adjudicate/", data)

    assert response.status_code == 400
    assert not Review.objects.exists() and not DiscrepancyVerdict.objects.exists()
    assert "<script>alert(1)</script>" not in response.content.decode()


def test_wrong_roles_cannot_attribute(page_for, missed_by_ai):
    data = _form(missed_by_ai, radpeer="", side="signed_report")

    assert page_for("alice").post(f"/review/cases/{missed_by_ai.pk}/adjudicate/", data).status_code == 403
    assert page_for("lena").post(f"/review/cases/{missed_by_ai.pk}/adjudicate/", data).status_code == 403
    assert not Review.objects.exists()


def test_the_service_refuses_what_the_form_would(missed_by_ai, personas):
    d = missed_by_ai.discrepancies.get()
    with pytest.raises(InvalidReview, match="RADPEER scores"):
        services.review_submit(
            comparison=missed_by_ai,
            reviewer=personas["carol"],
            radpeer="2b",
            comment="",
            verdicts={d.pk: services.VerdictInput("agree", correct_side="signed_report")},
            context=SYSTEM,
        )


def test_the_database_refuses_a_discrepant_score_without_the_radiologists_error(missed_by_ai, personas):
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(comparison=missed_by_ai, reviewer=personas["carol"], radpeer="2b")
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(
            comparison=missed_by_ai, reviewer=personas["carol"], radpeer="1", radiologist_erred=True
        )


def test_the_dashboard_says_who_erred(page_for, missed_by_ai, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        page_for("carol").post(
            f"/review/cases/{missed_by_ai.pk}/adjudicate/",
            _form(missed_by_ai, radpeer="", side="signed_report"),
        )

    html = page_for("otto").get("/review/dashboard/?period=30").content.decode()

    assert 'data-testid="attribution-note"' in html and 'data-testid="as-of"' in html
    assert 'data-testid="dash-ai-errors">1' in html and 'data-testid="dash-radiologist-errors">0' in html
    assert "Missed finding" in html.split('data-testid="model-error-categories"')[1]
