"""The page shell in a real browser: navigation per role, lockout, idle logoff, CSP, two-step sign-in."""

from __future__ import annotations

import base64
import re
import time

import pytest

from tests.e2e.browser import login_as, shoot

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The navigation each persona sees, of the pages that exist (the test drops the ones not built).
NAV = {
    "alice": {"my_feedback", "inbox"},
    "carol": {"dashboard", "qa_queue", "inbox", "reinference", "models"},
    "dana": {"dashboard", "qa_queue", "inbox", "reinference", "models", "audit"},
    "lena": {"dashboard", "qa_queue", "models", "legal", "audit"},
    "otto": {"dashboard", "qa_queue", "reinference", "models", "audit"},
    "eve": set(),
}


def _built(keys: set[str]) -> set[str]:
    from portal.accounts import navigation

    return {item.key for item in navigation.NAV if item.key in keys and navigation.url_of(item)}


def _nav_keys(page) -> set[str]:
    testids = page.locator("[data-testid=main-nav] a").evaluate_all(
        "links => links.map(link => link.dataset.testid)"
    )
    return {testid.removeprefix("nav-") for testid in testids}


def test_each_role_signs_in_and_sees_its_navigation(page, users):
    for persona, expected in NAV.items():
        login_as(page, persona)

        assert page.url.endswith("/"), f"{persona} landed on {page.url}"
        assert page.locator("[data-testid=who]").inner_text() == persona
        assert _nav_keys(page) == _built(expected), persona
        if persona == "dana":
            shoot(page, "home")
        page.click("[data-testid=logout]")
        page.wait_for_url(re.compile(r"/accounts/logout/$"))
    assert not page.csp_violations and not page.errors


def test_the_integration_account_cannot_use_pages(page, users):
    login_as(page, "ris")

    response = page.goto("/")

    assert response is not None and response.status == 403


def test_every_page_in_the_navigation_opens_without_csp_violations(page, users):
    visited = []
    for persona in ("dana", "lena", "alice", "root"):
        login_as(page, persona)
        links = page.locator("[data-testid=main-nav] a").evaluate_all("links => links.map(link => link.href)")
        for href in links:
            response = page.goto(href)
            assert response is not None and response.status < 400, f"{persona} {href}: {response.status}"
            page.wait_for_load_state("networkidle")
            visited.append(href)
        page.goto("/")
        page.click("[data-testid=logout]")
        page.wait_for_url(re.compile(r"/accounts/logout/$"))

    assert visited
    assert not page.csp_violations, "\n".join(page.csp_violations)
    assert not page.errors, "\n".join(page.errors)


def test_responses_carry_the_content_security_policy(page, users):
    response = page.goto("/accounts/login/")

    header = response.headers["content-security-policy"]
    assert "script-src 'self'" in header and "style-src 'self'" in header
    assert "frame-ancestors 'none'" in header and "unsafe-inline" not in header
    shoot(page, "login")


def test_an_inline_script_would_be_refused(page, users):
    # The policy is live, not decorative: a script injected into the page does not run.
    page.goto("/accounts/login/")
    page.evaluate(
        """() => { const s = document.createElement('script'); s.textContent = 'window.__ran = true';
                   document.body.appendChild(s); }"""
    )

    assert page.evaluate("() => window.__ran === true") is False
    assert page.csp_violations


def test_repeated_failures_lock_the_sign_in(page, users, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for attempt in range(2):
        login_as(page, "carol", password=f"wrong-{attempt}")
        assert page.locator("#login-error").is_visible()

    login_as(page, "carol", password="wrong-2")
    assert page.locator("[data-testid=lockout]").is_visible()
    shoot(page, "lockout")

    login_as(page, "carol")
    assert page.locator("[data-testid=lockout]").is_visible()


def test_an_idle_session_warns_then_signs_out(page, users, settings):
    settings.CONCORDANCE_IDLE_TIMEOUT_S = 6
    login_as(page, "otto")

    page.locator("[data-testid=session-warning]").wait_for(state="visible", timeout=10_000)
    shoot(page, "session-warning")
    page.wait_for_url(re.compile(r"/accounts/login/"), timeout=20_000)

    assert "signed out after a period of inactivity" in page.locator("main").inner_text()
    page.goto("/audit/")
    assert "/accounts/login/" in page.url


def test_stay_signed_in_keeps_the_session(page, users, settings):
    settings.CONCORDANCE_IDLE_TIMEOUT_S = 6
    login_as(page, "otto")
    page.goto("/audit/")

    page.locator("[data-testid=session-warning]").wait_for(state="visible", timeout=10_000)
    page.click("#session-stay")
    page.locator("[data-testid=session-warning]").wait_for(state="hidden")

    assert "/audit/" in page.url and page.locator("h1").inner_text() == "Audit log integrity"


def test_the_auditor_asks_the_worker_to_verify_the_log(page, users):
    login_as(page, "otto")
    page.goto("/audit/")

    page.click("text=Verify the whole log now")
    page.wait_for_url(re.compile(r"/audit/$"))
    deadline = time.monotonic() + 60
    while "No verification has run yet" in page.content() and time.monotonic() < deadline:
        page.wait_for_timeout(1000)
        page.reload()

    assert "Intact" in page.locator("dl.cards").inner_text()
    shoot(page, "audit-status")


def _totp_now(secret: str, offset_steps: int = 0) -> str:
    from django_otp.oath import totp

    key = base64.b32decode(secret)
    return f"{totp(key, t0=0, step=30, digits=6, drift=offset_steps):06d}"


def test_two_step_sign_in_enrolment_then_login(page, users):
    login_as(page, "dana")
    page.goto("/accounts/otp/setup/")
    secret = page.locator("[data-testid=otp-secret]").inner_text().replace(" ", "").strip()
    assert page.locator("[data-testid=otp-uri]").inner_text().startswith("otpauth://totp/")
    shoot(page, "otp-setup")

    page.fill("#id_token", _totp_now(secret))
    with page.expect_navigation():
        page.click("[data-testid=otp-confirm]")
    assert page.url.endswith("/")
    page.click("[data-testid=logout]")
    page.wait_for_url(re.compile(r"/accounts/logout/$"))

    login_as(page, "dana")
    assert "/accounts/otp/verify/" in page.url
    page.goto("/audit/")
    assert "/accounts/otp/verify/" in page.url  # nothing else opens before the code
    shoot(page, "otp-verify")
    page.fill("#id_token", _totp_now(secret, offset_steps=1))  # the enrolment code may not be reused
    with page.expect_navigation():
        page.click("[data-testid=otp-submit]")

    assert page.url.endswith("/audit/")
    assert not page.csp_violations


def test_htmx_is_loaded_with_the_csrf_header_and_without_inline_styles(page, users):
    login_as(page, "carol")

    config = page.evaluate(
        """() => ({loaded: !!window.htmx, styles: htmx.config.includeIndicatorStyles,
                   evalAllowed: htmx.config.allowEval, headers: document.body.getAttribute('hx-headers'),
                   meta: document.querySelector('meta[name=csrf-token]').content})"""
    )

    assert config["loaded"] and config["styles"] is False and config["evalAllowed"] is False
    assert f'"X-CSRFToken":"{config["meta"]}"' in config["headers"]
    assert page.locator("style").count() == 0
