"""The administration pages in Debian's Chromium: an admin creates an account, issues a token for the
RIS account and sees it once; no Content-Security-Policy violation on the way; screenshots for the docs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group, User

from tests.accounts.helpers import PASSWORD
from tests.e2e.browser import login_as, shoot
from tests.e2e.conftest import TIMEOUT_MS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(browser, live_server, personas, settings) -> Iterator[object]:
    """A fresh page on the live server (no worker needed), signed in as an admin ("root"), recording CSP
    violations. Lives under tests/e2e: the one session-wide Chromium is that directory's fixture."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    root = User.objects.create_user(username="root", password=PASSWORD)
    root.groups.add(Group.objects.get_or_create(name="admin")[0])
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    tab.csp_violations = []
    tab.on(
        "console",
        lambda message: (
            tab.csp_violations.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    login_as(tab, "root")
    yield tab
    context.close()


def test_an_admin_creates_an_account_and_issues_a_token_shown_once(page, personas):
    page.click("[data-testid=nav-administration]")
    assert page.inner_text("[data-testid=account-total]").startswith("9 accounts")  # personas and root
    page.goto("/administration/users/new")
    page.fill("#id_username", "dr_new")
    page.check("input[value=radiologist]")
    with page.expect_navigation():
        page.click("[data-testid=account-form] button[type=submit]")
    assert page.url.endswith(f"/administration/users/{User.objects.get(username='dr_new').pk}/")

    page.goto(f"/administration/users/{personas['ris'].pk}/")
    page.fill("#id_name", "RIS feed")
    with page.expect_navigation():
        page.click("[data-testid=token-form] button[type=submit]")
    secret = page.inner_text("[data-testid=token-secret] code")
    assert re.fullmatch(r"cct_[A-Za-z0-9_-]{43}", secret.split()[0])
    shoot(page, "administration-account")
    page.goto(f"/administration/users/{personas['ris'].pk}/")
    assert page.locator("[data-testid=token-secret]").count() == 0  # shown once
    assert secret.split()[0] not in page.content()
    page.goto("/administration/users/")
    shoot(page, "administration-accounts")
    assert page.csp_violations == []


def test_the_404_page_has_the_shell_and_a_way_back(page):
    page.goto("/no-such-page/")
    assert page.locator("[data-testid=error-404]").is_visible()
    with page.expect_navigation():
        page.click("[data-testid=error-home]")
    assert urlsplit(page.url).path == "/"
    assert page.csp_violations == []
