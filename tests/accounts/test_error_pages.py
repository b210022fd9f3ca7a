"""With DEBUG off, 403, 404 and 500 answer with the portal's own pages, each with a way back; a favicon."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def production_like(settings):
    settings.DEBUG = False


def test_an_unknown_address_gets_the_styled_404_with_a_way_back(personas):
    client = Client()
    client.force_login(personas["carol"])
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert 'data-testid="error-404"' in body and 'href="/"' in body
    assert "portal/portal.css" in body and 'data-testid="main-nav"' in body  # the portal's shell


def test_a_refusal_gets_the_styled_403_with_its_reason(personas):
    client = Client()
    client.force_login(personas["ris"])
    response = client.get("/review/")
    assert response.status_code == 403
    body = response.content.decode()
    assert 'data-testid="error-403"' in body and "This account may use the API only." in body
    assert 'data-testid="error-home"' in body


def test_anonymous_visitors_get_a_sign_in_link_on_404(db):
    body = Client().get("/nothing-here").content.decode()
    assert 'data-testid="error-404"' in body and "/accounts/login/" in body


def test_a_bug_gets_the_styled_500_without_details(settings, personas):
    settings.ROOT_URLCONF = "tests.accounts.error_urls"
    client = Client(raise_request_exception=False)
    client.force_login(personas["carol"])
    response = client.get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert 'data-testid="error-500"' in body and 'href="/"' in body
    assert "a bug" not in body and "Traceback" not in body


def test_the_favicon_is_served_from_our_static_files(personas):
    assert finders.find("favicon/favicon.svg") and finders.find("favicon/favicon.ico")
    client = Client()
    client.force_login(personas["carol"])
    assert 'rel="icon" href="/static/favicon/favicon.svg"' in client.get("/").content.decode()
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon/favicon.ico"
