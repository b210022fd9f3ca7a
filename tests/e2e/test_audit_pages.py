"""The auditor's pages in a real browser with a real worker: "Verify now" shows its progress and its
result in place (no reload), the proof viewer draws an event's path to the signed root, and the
public key page shows the key any signed-in person can pin."""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.e2e.browser import login_as, shoot

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _logged_events(count: int) -> int:
    """``count`` committed events, integrated and signed; the seq of the last one."""
    from audit import checkpoints, integrator, log

    seq = 0
    for i in range(count):
        with transaction.atomic():
            seq = log.record(
                "study.viewed", actor=None, object_type="study", object_id=i, details={"i": i}
            ).seq
    integrator.integrate_all(hole_wait_s=2.0)
    checkpoints.create_checkpoint()
    return seq


def test_verify_now_shows_its_result_in_place(page, users):
    _logged_events(12)
    login_as(page, "otto")
    page.goto("/audit/")
    page.evaluate("window.stillTheSamePage = true")

    page.click("[data-testid=verify-now]")
    page.wait_for_selector("[data-testid=verification-result]", timeout=60_000)

    assert page.locator("[data-testid=verification-result]").inner_text().strip() == "Intact"
    assert "audit log intact" in page.locator("[data-testid=verification-summary]").inner_text()
    assert page.evaluate("window.stillTheSamePage") is True  # the result came in place, no reload
    assert page.locator("[data-testid=last-verification]").inner_text().strip() == "Intact"
    assert "on request" in page.locator("#verification-runs").inner_text()
    shoot(page, "audit-verify-now")
    assert not page.csp_violations and not page.errors


def test_the_proof_viewer_draws_the_path_and_offers_the_download(page, users):
    seq = _logged_events(9) - 4
    login_as(page, "otto")
    page.goto("/audit/proofs/")
    page.fill("input[name=seq]", str(seq))
    with page.expect_navigation():
        page.click("form.proof-form button")

    assert (
        "Every path below reaches the signed root."
        in page.locator("[data-testid=proof-verdict]").inner_text()
    )
    path = page.locator(f"[data-testid=proof-event-{seq}] table.proof-path").inner_text()
    assert "= signed root" in path
    assert page.locator("[data-testid=proof-download]").is_visible()
    shoot(page, "audit-proof-viewer")

    page.goto("/audit/key/")
    assert len(page.locator("[data-testid=key-fingerprint]").inner_text().strip()) == 64
    shoot(page, "audit-public-key")
    assert not page.csp_violations and not page.errors
