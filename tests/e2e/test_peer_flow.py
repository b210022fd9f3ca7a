"""Peer learning in a real browser: the radiologist's inbox, the chair's teaching set and rules."""

from __future__ import annotations

import pytest

from portal.peer.models import TeachingCase
from tests.e2e.browser import login_as, shoot
from tests.peer.conftest import adjudicate, make_case, model_version  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_feedback_reaches_the_inbox_and_the_chair_teaches_the_case(page, users, make_case, adjudicate):  # noqa: F811
    case = make_case(users["alice"])
    adjudicate(case, users["carol"], feedback="Please look at the right apex.", comment="Subtle pneumothorax")
    for specialty in ("chest", "chest", "neuro"):
        make_case(users["bob"], specialty=specialty)

    login_as(page, "alice")
    assert page.locator("[data-testid=nav-unread]").inner_text() == "1"
    page.click("[data-testid=nav-inbox]")
    page.wait_for_url("**/peer/inbox/")
    assert page.locator("[data-testid=inbox-item]").count() == 1
    shoot(page, "peer-inbox")
    page.click("[data-testid=inbox-open]")
    page.wait_for_url("**/review/feedback/**")
    assert page.locator("[data-testid=nav-unread]").count() == 0
    page.click("[data-testid=logout]")

    login_as(page, "dana")
    page.goto("/peer/teaching/")
    page.fill("#set-title", "Chest conference: missed pneumothoraces")
    page.fill("#set-date", "2026-04-02")
    with page.expect_navigation():
        page.click("[data-testid=teaching-set-create]")
    page.fill("#add-case", str(case.pk))
    with page.expect_navigation():
        page.click("[data-testid=add-case]")
    assert page.locator("[data-testid=teaching-case]").count() == 1
    signed = page.locator("[data-testid=teaching-signed-report]").inner_text()
    assert case.study.patient.mrn not in signed and case.study.accession_number not in signed
    assert "Large right pneumothorax" in signed
    assert TeachingCase.objects.count() == 1
    shoot(page, "peer-teaching-set")

    page.goto("/peer/rules/")
    page.select_option("#rule-reviewer", str(users["carol"].pk))
    page.select_option("#rule-specialty", "chest")
    page.fill("#rule-quota", "5")
    with page.expect_navigation():
        page.click("[data-testid=rule-save]")
    with page.expect_navigation():
        page.click("[data-testid=run-rules]")
    assert "2 of 2 waiting case(s) assigned to 1 reviewer(s)." in page.content()
    shoot(page, "peer-rules")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not page.csp_violations and not page.errors
