"""Logins, logouts, failed logins and refused requests are audit events."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from tests.factories import study_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_with_password(personas, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed, tests only
    alice = personas["alice"]
    alice.set_password("alice-correct-horse-battery")
    alice.save()
    return alice


def test_a_login_and_a_logout_are_recorded(alice_with_password):
    client = Client()
    client.post("/accounts/login/", {"username": "alice", "password": "alice-correct-horse-battery"})
    client.post("/accounts/logout/")

    events = list(AuditEvent.objects.filter(action__startswith="auth.").order_by("seq"))
    assert [e.action for e in events] == ["auth.login", "auth.logout"]
    assert events[0].actor_id == alice_with_password.pk
    assert events[0].client_address == "127.0.0.1"


def test_a_failed_login_records_the_username_but_never_the_password(alice_with_password):
    Client().post("/accounts/login/", {"username": "alice", "password": "wrong-guess-123"})

    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.details == {"username": "alice"}
    assert "wrong-guess" not in str(event.leaf_document())


def test_a_refused_api_request_is_recorded_with_who_asked(client_for, personas):
    client_for("lena").post("/api/v1/studies", study_json(), format="json")
    client_for(None).get("/api/v1/studies")

    denied = list(AuditEvent.objects.filter(action="access.denied").order_by("seq"))
    assert [(e.actor_id, e.details["reason"]) for e in denied] == [
        (personas["lena"].pk, "PermissionDenied"),
        (None, "NotAuthenticated"),
    ]
    assert denied[0].channel == "POST /api/v1/studies"
