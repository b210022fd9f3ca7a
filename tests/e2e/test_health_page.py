"""The admin's health page in a real browser, with a real worker running beside the live portal."""

from __future__ import annotations

import pytest

from portal.core import health
from tests.e2e.browser import login_as, shoot

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_admin_sees_database_broker_and_workers_up(page, users, settings):
    # The live server runs in this process: a loaded machine gets more than a second to answer,
    # and no ping answer cached by an earlier test is reused.
    settings.HEALTH_PROBE_TIMEOUT_SECONDS = 5
    health._last_ping = None
    login_as(page, "root")
    page.click("[data-testid=nav-health]")
    page.wait_for_url("**/health/")

    table = page.locator("table.list").inner_text()
    assert "Database" in table and "Broker" in table and "Workers" in table
    assert "1 worker(s) answering" in table, table
    assert page.locator("strong.ok").inner_text() == "ok"
    shoot(page, "system-health")
    assert not page.csp_violations and not page.errors
