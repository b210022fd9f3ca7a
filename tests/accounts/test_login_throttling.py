"""Login throttling (django-axes): lockout after N failures per username and address, audited."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from tests.accounts.helpers import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def limit_of_three(settings):
    settings.AXES_FAILURE_LIMIT = 3


def _login(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_a_right_password_signs_in(with_passwords):
    response = _login(Client(), "alice", PASSWORD)

    assert response.status_code == 302 and response["Location"] == "/"
    assert AuditEvent.objects.filter(action="auth.login", actor_username="alice").count() == 1


def test_a_wrong_password_is_refused_and_audited_without_the_password(with_passwords):
    response = _login(Client(), "alice", "guess-1")

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.details == {"username": "alice"} and "guess-1" not in str(event.leaf_document())


def test_the_account_is_locked_after_the_limit_even_with_the_right_password(with_passwords):
    client = Client()
    for attempt in range(2):
        assert _login(client, "alice", f"guess-{attempt}").status_code == 200

    locked = _login(client, "alice", "guess-2")
    still_locked = _login(client, "alice", PASSWORD)

    assert locked.status_code == 429 and "Sign-in temporarily locked" in locked.content.decode()
    assert still_locked.status_code == 429
    assert "_auth_user_id" not in client.session
    lockouts = AuditEvent.objects.filter(action="auth.lockout")
    assert lockouts.count() >= 1 and lockouts.first().details == {"username": "alice"}
    assert lockouts.first().client_address == "10.0.0.1"


def test_the_lockout_is_per_username_and_address(with_passwords):
    client = Client()
    for attempt in range(3):
        _login(client, "alice", f"guess-{attempt}")

    other_address = _login(Client(), "alice", PASSWORD, address="10.0.0.2")
    other_user = _login(Client(), "bob", PASSWORD)

    assert other_address.status_code == 302
    assert other_user.status_code == 302


def test_a_success_before_the_limit_resets_the_count(with_passwords):
    client = Client()
    _login(client, "alice", "guess-0")
    _login(client, "alice", "guess-1")
    assert _login(client, "alice", PASSWORD).status_code == 302
    client.post("/accounts/logout/")

    _login(client, "alice", "guess-2")
    _login(client, "alice", "guess-3")

    assert _login(client, "alice", PASSWORD).status_code == 302


def test_the_limit_is_configurable(with_passwords, settings):
    settings.AXES_FAILURE_LIMIT = 1

    assert _login(Client(), "alice", "guess").status_code == 429


def test_unknown_usernames_are_throttled_too(with_passwords):
    for attempt in range(3):
        response = _login(Client(), "mallory", f"guess-{attempt}")

    assert response.status_code == 429
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 3


def test_a_hostile_username_is_escaped_on_the_page_and_kept_as_text_in_the_log(with_passwords):
    hostile = "<script>alert(1)</script>' OR 1=1 --"
    for attempt in range(3):
        response = _login(Client(), hostile, f"guess-{attempt}")

    page = response.content.decode()
    assert response.status_code == 429 and "<script>alert(1)</script>" not in page
    assert AuditEvent.objects.filter(action="auth.login_failed").first().details == {"username": hostile}


@pytest.mark.parametrize(
    "form",
    [
        {"username": "a" * 10_000, "password": "x"},
        {"username": "", "password": ""},
        {"password": PASSWORD},
        {"username": "ali\x00ce", "password": PASSWORD},
    ],
    ids=["oversized", "empty", "missing-username", "null-byte"],
)
def test_malformed_sign_in_forms_are_refused_without_signing_in(with_passwords, form):
    client = Client()

    response = client.post("/accounts/login/", form, REMOTE_ADDR="10.0.0.9")

    assert response.status_code in {200, 429}
    assert "_auth_user_id" not in client.session


def test_a_sign_in_without_the_csrf_token_is_refused(with_passwords):
    client = Client(enforce_csrf_checks=True)

    response = _login(client, "alice", PASSWORD)

    assert response.status_code == 403 and "_auth_user_id" not in client.session
