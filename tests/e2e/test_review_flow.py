"""The review workflow in a real browser, on cases the real worker compared.

A reviewer filters the QA queue, opens a case, sees the discrepancy highlighted at its exact words,
moves with the keyboard and adjudicates; the signing radiologist reads and acknowledges the feedback;
everyone else is refused where they should be. Every visited page is checked for CSP violations and
script errors, and the main pages are saved as screenshots for the README.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.browser import login_as, shoot
from tests.e2e.review_data import seed_cases

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COMMENT = "Right apical pneumothorax missed by the draft; laterality of the effusion swapped."
FEEDBACK = "Please compare against the prior film: the pneumothorax was visible on the apical view."


@pytest.fixture
def cases(portal, users, ris):
    """The seeded comparisons by key (see tests/e2e/review_data.py)."""
    return seed_cases(ris)


def _logout(page) -> None:
    page.goto("/")
    page.click("[data-testid=logout]")
    page.wait_for_url(re.compile(r"/accounts/logout/$"))


def _row_ids(page) -> set[int]:
    ids = page.locator("[data-testid=queue-row]").evaluate_all("rows => rows.map(r => r.dataset.caseId)")
    return {int(i) for i in ids}


def _post(page, path: str, form: dict[str, str]) -> int:
    """POST a form from inside the page (its session cookie and CSRF token), as a hostile script would."""
    return page.evaluate(
        """async ([path, form]) => {
             const token = document.querySelector('meta[name=csrf-token]').content;
             const r = await fetch(path, {method: 'POST', headers: {'X-CSRFToken': token},
                                          body: new URLSearchParams(form), redirect: 'manual'});
             return r.status; }""",
        [path, form],
    )


def _marked_words(mark) -> str:
    """The words a highlight wraps, without its significance tag (the ``!``/``~`` superscript)."""
    return mark.evaluate(
        """m => { const c = m.cloneNode(true); c.querySelectorAll('.disc-tag').forEach(t => t.remove());
                 return c.textContent; }"""
    )


def _clean(page) -> None:
    assert page.csp_violations == [], "\n".join(page.csp_violations)
    assert page.errors == [], "\n".join(page.errors)


def test_reviewer_adjudicates_and_the_radiologist_acknowledges(page, cases):
    from portal.review.models import Feedback, Review

    swap, missed, other = cases["swap"], cases["missed"], cases["other"]
    location = swap.discrepancies.get(category="location")
    pneumothorax = swap.discrepancies.get(category="missed_finding")
    everything = {c.pk for c in cases.values()}

    # --- carol (qa_reviewer): the queue, narrowed by the filters (HTMX swaps the results) -----------
    login_as(page, "carol")
    page.goto("/review/queue/")
    assert _row_ids(page) >= everything
    shoot(page, "queue")

    page.select_option("#filter-specialty", "chest")
    page.select_option("#filter-category", "location")
    with page.expect_response(re.compile(r"/review/queue/\?")):
        page.click("#queue-apply")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=queue-row]').length === 1")
    assert _row_ids(page) == {swap.pk}
    assert "category=location" in page.url  # hx-push-url: the filtered view can be bookmarked

    page.select_option("#filter-category", "")
    with page.expect_response(re.compile(r"/review/queue/\?")):
        page.click("#queue-apply")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=queue-row]').length === 3")
    assert _row_ids(page) == {swap.pk, missed.pk, cases["concordant"].pk}
    assert other.pk not in _row_ids(page)

    # --- the case: the discrepancy at its exact words, side by side ---------------------------------
    page.click(f"#case-link-{swap.pk}")
    page.wait_for_url(re.compile(rf"/review/cases/{swap.pk}/"))
    # Marks cover the differing words (one per repeat, findings and impression), not whole sentences.
    reference = swap.reference.text
    start, end = sorted(map(tuple, pneumothorax.reference_marks))[0]
    mark = page.locator(f"#reference-mark-{pneumothorax.pk}")
    assert _marked_words(mark) == reference[start:end]
    assert "pneumothorax" in _marked_words(mark).lower()
    assert "disc" in (mark.get_attribute("class") or "")
    candidate = swap.candidate.text
    start, end = sorted(map(tuple, location.candidate_marks))[0]
    swapped = page.locator(f"#candidate-mark-{location.pk}")
    assert _marked_words(swapped) == candidate[start:end]
    assert "left" in _marked_words(swapped).lower()
    assert end - start < location.candidate_end - location.candidate_start  # the word, not the sentence
    assert page.locator("[data-testid=discrepancy]").count() == swap.discrepancies.count()
    assert page.locator("[data-testid=case-radiologist]").inner_text() != "alice"  # pseudonym only
    shoot(page, "case")

    # --- keyboard: j / k move through the queue's order, a jumps to the form -------------------------
    if page.locator("#case-next").count():
        following = page.locator("#case-next").get_attribute("href")
        page.keyboard.press("j")
        page.wait_for_url(re.compile(re.escape(following.split("?")[0])))
        assert f"/review/cases/{swap.pk}/" not in page.url
        page.keyboard.press("k")
    else:
        preceding = page.locator("#case-prev").get_attribute("href")
        page.keyboard.press("k")
        page.wait_for_url(re.compile(re.escape(preceding.split("?")[0])))
        assert f"/review/cases/{swap.pk}/" not in page.url
        page.keyboard.press("j")
    page.wait_for_url(re.compile(rf"/review/cases/{swap.pk}/"))
    page.keyboard.press("a")
    assert page.evaluate("() => document.activeElement.id") == "radpeer-1"

    # --- adjudicate: 2b, agree with one category, correct the other, comment, feedback -------------
    page.check("#radpeer-2b")
    page.select_option(f"#verdict-{pneumothorax.pk}", "agree")
    page.select_option(f"#verdict-{location.pk}", "recategorise:severity")
    # Attribution is part of the verdict: here the signed report erred (hence a discrepant score).
    for side in page.locator("select[id^=side-]").all():
        side.select_option("ai_draft")
    page.fill("#adjudication-comment", COMMENT)
    page.check("#send-feedback")
    page.fill("#feedback-message", FEEDBACK)
    shoot(page, "adjudication")
    with page.expect_navigation():
        page.click("#adjudicate-submit")
    assert re.search(rf"/review/cases/{swap.pk}/", page.url)
    assert "RADPEER 2b" in page.locator(".notice").first.inner_text()
    review_item = page.locator("[data-testid=review]")
    assert review_item.count() == 1
    assert "2b" in review_item.inner_text() and COMMENT in review_item.inner_text()
    review = Review.objects.get(comparison=swap)
    verdicts = {v.discrepancy_id: (v.verdict, v.category) for v in review.verdicts.all()}
    assert verdicts[pneumothorax.pk][0] == "agree"
    assert verdicts[location.pk] == ("recategorise", "severity")
    _clean(page)
    _logout(page)

    # --- alice: her feedback, acknowledged through HTMX ---------------------------------------------
    feedback = Feedback.objects.get(comparison=swap)
    login_as(page, "alice")
    page.goto("/review/feedback/")
    item = page.locator(f"#feedback-{feedback.pk}")
    assert FEEDBACK in item.locator("[data-testid=feedback-message]").inner_text()
    assert "2b" in item.inner_text()
    assert "carol" not in item.inner_text()  # the reviewer stays anonymous
    with page.expect_response(re.compile(rf"/review/feedback/{feedback.pk}/acknowledge/")):
        page.click(f"#acknowledge-{feedback.pk}")
    page.locator(f"#feedback-{feedback.pk} [data-testid=feedback-acknowledged]").wait_for()
    assert page.url.endswith("/review/feedback/")  # swapped in place, no navigation
    feedback.refresh_from_db()
    assert feedback.acknowledged_at is not None
    shoot(page, "feedback")

    # Her own case opens (read only: she signed it), another radiologist's does not exist for her.
    page.goto(f"/review/cases/{swap.pk}/")
    assert page.locator("#adjudication").count() == 0
    response = page.goto(f"/review/cases/{other.pk}/")
    assert response is not None and response.status == 404
    _clean(page)
    _logout(page)

    # --- bob: neither alice's case nor her feedback --------------------------------------------------
    login_as(page, "bob")
    response = page.goto(f"/review/cases/{swap.pk}/")
    assert response is not None and response.status == 404
    page.goto("/review/feedback/")
    assert page.locator("[data-testid=feedback-item]").count() == 0
    assert FEEDBACK not in page.content()
    assert _post(page, f"/review/feedback/{feedback.pk}/acknowledge/", {}) == 404
    response = page.goto("/review/queue/")
    assert response is not None and response.status == 403
    _clean(page)


def test_legal_and_auditors_read_but_cannot_adjudicate(page, cases):
    from portal.review.models import Review

    swap = cases["swap"]
    for persona in ("lena", "otto"):
        login_as(page, persona)
        nav = page.locator("[data-testid=main-nav]").inner_text()
        assert "QA queue" in nav and "Dashboard" in nav  # the links follow the pages' own rules
        page.goto("/review/queue/")
        assert swap.pk in _row_ids(page)
        page.goto(f"/review/cases/{swap.pk}/")
        assert page.locator("[data-testid=discrepancy]").count() >= 1
        assert page.locator("#adjudication").count() == 0
        assert page.locator("#case-adjudicate-link").count() == 0
        status = _post(page, f"/review/cases/{swap.pk}/adjudicate/", {"radpeer": "1"})
        assert status == 403
        for path in ("/review/campaigns/", "/review/performance/", "/review/feedback/"):
            response = page.goto(path)
            assert response is not None and response.status == 403, f"{persona} {path}"
        _clean(page)
        _logout(page)
    assert not Review.objects.exists()

    # The integration account uses the API only.
    login_as(page, "ris")
    for path in ("/review/queue/", f"/review/cases/{swap.pk}/", "/review/dashboard/", "/review/feedback/"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path


def test_the_chair_assigns_reads_the_dashboard_and_exports(page, cases):
    from portal.review.models import Assignment

    swap, missed = cases["swap"], cases["missed"]
    login_as(page, "dana")
    page.goto("/review/queue/?specialty=chest")
    assert page.locator("[data-testid=queue-row]").count() == 3
    assert "alice" in page.locator(f"#queue-row-{swap.pk}").inner_text()  # the chair sees names
    page.check(f"#select-case-{swap.pk}")
    page.check(f"#select-case-{missed.pk}")
    page.select_option("#assign-reviewer", label="carol")
    with page.expect_navigation():
        page.click("#assign-submit")
    assert "2 cases assigned to carol" in page.locator(".notice").first.inner_text()
    assert "specialty=chest" in page.url  # back to the same view
    assert set(Assignment.objects.values_list("comparison_id", flat=True)) == {swap.pk, missed.pk}
    assert "carol" in page.locator(f"#queue-row-{swap.pk}").inner_text()

    page.goto("/review/dashboard/")
    assert int(page.locator("[data-testid=total-compared]").inner_text()) == len(cases)
    assert page.locator("#chart-trend").count() == 1
    shoot(page, "dashboard")

    page.goto("/review/campaigns/")
    assert page.locator("#campaign-form").count() == 1
    shoot(page, "campaigns")

    page.goto("/review/performance/")
    assert page.locator("[data-testid=performance-row]").count() >= 2
    with page.expect_download() as download:
        page.click("#export-csv")
    csv_text = open(download.value.path(), encoding="utf-8").read()
    assert "alice" in csv_text and "bob" in csv_text
    pdf = page.request.get(page.locator("#export-pdf").get_attribute("href"))
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    shoot(page, "performance")
    _clean(page)


def test_the_navigation_shows_exactly_the_pages_each_role_may_open(users):
    # One source of truth (roles.PAGE_ROLES): a link is shown if and only if its page opens.
    from django.test import Client

    from portal.accounts import navigation

    pages = {item.key: navigation.url_of(item) for item in navigation.NAV if navigation.url_of(item)}
    assert {"dashboard", "qa_queue", "my_feedback"} <= set(pages)
    for persona, user in users.items():
        if persona == "ris":
            continue  # API only: every page is 403, the shell included (test_shell)
        client = Client()
        client.force_login(user)
        home = client.get("/").content.decode()
        shown = set(re.findall(r'data-testid="nav-([a-z_]+)"', home))
        for key, url in pages.items():
            status = client.get(url).status_code
            assert status in (200, 403), f"{persona} {url}: {status}"
            assert (key in shown) == (status == 200), f"{persona}: link {key} shown={key in shown}, {status}"
