"""The page shell: role-aware navigation, skip link, CSRF meta tag, scripts from static files only."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from audit.models import AuditEvent
from portal.accounts import navigation

pytestmark = pytest.mark.django_db

# The pages each persona's navigation offers, when the page exists (URL name resolves).
EXPECTED_NAV = {
    "alice": {"my_feedback", "inbox"},
    "carol": {"dashboard", "qa_queue", "inbox", "reinference", "models"},
    "dana": {"dashboard", "qa_queue", "inbox", "reinference", "models", "audit"},
    "lena": {"dashboard", "qa_queue", "models", "legal", "audit"},
    "otto": {"dashboard", "qa_queue", "reinference", "models", "audit"},
    "eve": set(),
}


def _page(user, path: str = "/") -> str:
    client = Client()
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


def _existing(keys: set[str]) -> set[str]:
    return {item.key for item in navigation.NAV if item.key in keys and navigation.url_of(item)}


@pytest.mark.parametrize("persona", sorted(EXPECTED_NAV))
def test_each_role_sees_only_its_own_links(personas, persona):
    html = _page(personas[persona])

    shown = set(re.findall(r'data-testid="nav-([a-z_]+)"', html))

    assert shown == _existing(EXPECTED_NAV[persona])


def test_the_audit_link_points_at_the_audit_page_and_marks_it_current(personas):
    html = _page(personas["otto"], "/audit/")

    assert re.search(r'<a href="/audit/" data-testid="nav-audit" aria-current="page">Audit</a>', html)


def test_a_url_name_that_does_not_exist_hides_the_link_instead_of_failing(personas, monkeypatch):
    ghost = navigation.NavItem("audit", "Ghost", ("no-such-page", "nor:this"))
    monkeypatch.setattr(navigation, "NAV", (*navigation.NAV, ghost))

    html = _page(personas["otto"])

    assert "Ghost" not in html


def test_the_shell_has_a_skip_link_csrf_meta_and_only_external_scripts(personas):
    html = _page(personas["alice"])

    assert '<a class="skip-link" href="#main">' in html and '<main id="main"' in html
    assert re.search(r'<meta name="csrf-token" content="[A-Za-z0-9]{64}">', html)
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all('src="/static/' in tag for tag in scripts)
    assert 'src="/static/vendor/htmx.min.js"' in html and 'src="/static/portal/htmx-config.js"' in html
    assert 'data-idle-timeout="900"' in html and "data-signed-in" in html


def test_the_login_page_has_no_navigation_and_no_countdown():
    html = Client().get("/accounts/login/").content.decode()

    assert "main-nav" not in html and "data-signed-in" not in html and "session-warning" not in html


def test_the_vendored_files_are_there_with_their_licence():
    from django.conf import settings

    vendor = settings.BASE_DIR / "static" / "vendor"
    assert (vendor / "htmx.min.js").stat().st_size > 40_000
    assert "Zero-Clause BSD" in (vendor / "htmx.LICENSE").read_text()
    for name in ("htmx-config.js", "session.js"):
        assert (settings.BASE_DIR / "static" / "portal" / name).exists()


def test_service_accounts_are_refused_on_pages_and_the_refusal_is_audited(personas):
    client = Client()
    client.force_login(personas["ris"])

    response = client.get("/")

    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="access.denied", actor_username="ris").exists()
    assert client.get("/api/v1/health").status_code == 200


def test_the_username_is_escaped_in_the_shell(personas):
    from django.contrib.auth.models import User

    html = _page(User.objects.create_user(username="<img src=x onerror=alert(1)>"))

    assert "<img src=x" not in html
