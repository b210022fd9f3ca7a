"""Automatic logoff after CONCORDANCE_IDLE_TIMEOUT_S without activity, enforced by the server."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from audit.models import AuditEvent
from portal.accounts.middleware import LAST_ACTIVITY_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def one_minute(settings):
    settings.CONCORDANCE_IDLE_TIMEOUT_S = 60


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    client.get("/")  # the first request stamps the activity
    return client


def _idle_for(client: Client, seconds: float) -> None:
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - seconds
    session.save()


def test_activity_within_the_timeout_keeps_the_session(personas):
    client = _signed_in(personas["alice"])
    _idle_for(client, 50)

    assert client.get("/").status_code == 200
    assert time.time() - client.session[LAST_ACTIVITY_KEY] < 5


def test_an_idle_session_is_ended_and_sent_to_the_login_page(personas):
    client = _signed_in(personas["alice"])
    _idle_for(client, 61)

    response = client.get("/audit/")

    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=%2Faudit%2F"
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action="auth.idle_logout")
    assert event.actor_username == "alice" and event.details["timeout_seconds"] == 60
    assert AuditEvent.objects.filter(action="auth.logout", actor_username="alice").exists()
    login_page = client.get(response["Location"]).content.decode()
    assert "signed out after a period of inactivity" in login_page


def test_background_requests_do_not_count_as_activity(personas):
    client = _signed_in(personas["alice"])
    _idle_for(client, 50)
    before = client.session[LAST_ACTIVITY_KEY]

    status = client.get("/accounts/session/status", HTTP_X_CONCORDANCE_BACKGROUND="1").json()

    assert status["authenticated"] and 5 <= status["remaining_s"] <= 10
    assert client.session[LAST_ACTIVITY_KEY] == before


def test_stay_signed_in_counts_as_activity(personas):
    client = _signed_in(personas["alice"])
    _idle_for(client, 50)

    response = client.post("/accounts/session/keepalive")

    assert response.status_code == 204
    assert (
        client.get("/accounts/session/status", HTTP_X_CONCORDANCE_BACKGROUND="1").json()["remaining_s"] >= 55
    )


def test_keepalive_cannot_revive_an_expired_session(personas):
    client = _signed_in(personas["alice"])
    _idle_for(client, 61)

    response = client.post("/accounts/session/keepalive")

    assert response.status_code in {302, 401} and "_auth_user_id" not in client.session


def test_keepalive_refuses_get_and_anonymous_callers():
    assert Client().get("/accounts/session/keepalive").status_code == 405
    assert Client().post("/accounts/session/keepalive").status_code == 401
    assert Client().get("/accounts/session/status").json() == {"remaining_s": 0, "authenticated": False}


def test_htmx_requests_after_the_timeout_get_a_redirect_header(personas):
    client = _signed_in(personas["otto"])
    _idle_for(client, 61)

    response = client.get("/audit/", HTTP_HX_REQUEST="true")

    assert response.status_code == 204 and response["HX-Redirect"].startswith("/accounts/login/")


def test_a_form_posted_after_the_timeout_is_not_carried_out(personas, monkeypatch):
    from audit import tasks

    sent = []
    monkeypatch.setattr(tasks.verify_log, "delay", lambda: sent.append(True))
    client = _signed_in(personas["otto"])
    _idle_for(client, 61)

    response = client.post("/audit/")

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert sent == []


def test_session_api_calls_after_the_timeout_are_unauthenticated(personas):
    client = _signed_in(personas["carol"])
    _idle_for(client, 61)

    response = client.get("/api/v1/studies")

    assert response.status_code in {401, 403} and "_auth_user_id" not in client.session


def test_token_api_calls_are_not_subject_to_the_session_timeout(client_for):
    assert client_for("carol").get("/api/v1/studies").status_code == 200


def test_the_countdowns_own_check_after_the_timeout_answers_json_and_keeps_the_message(personas):
    client = _signed_in(personas["alice"])
    _idle_for(client, 61)

    status = client.get("/accounts/session/status", HTTP_X_CONCORDANCE_BACKGROUND="1")
    login_page = client.get("/", follow=True).content.decode()

    assert status.status_code == 401 and status.json() == {"authenticated": False, "remaining_s": 0}
    assert "signed out after a period of inactivity" in login_page


def test_signing_in_starts_the_clock(personas):
    client = Client()
    client.force_login(personas["alice"])

    assert time.time() - client.session[LAST_ACTIVITY_KEY] < 5
