"""API tokens for integrations: issued with the secret shown once, stored hashed, accepted by the API,
rotated and revoked, every step audited without the secret."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditEvent
from portal.accounts.models import ApiToken

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"cct_[A-Za-z0-9_-]{43}")


def issue(admin_client, user, name="RIS feed") -> str:
    response = admin_client.post(reverse("administration-token-create", args=[user.pk]), {"name": name})
    assert response.status_code == 200
    found = SECRET.findall(response.content.decode())
    assert found, "the secret is shown on the answer"
    return found[0]


def api(secret: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client.get("/api/v1/studies").status_code


def test_a_token_is_shown_once_stored_hashed_and_accepted_by_the_api(admin_client, personas):
    secret = issue(admin_client, personas["ris"])
    token = ApiToken.objects.get()
    assert token.digest != secret and secret not in token.digest and secret.startswith(token.prefix)
    assert api(secret) == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    page = admin_client.get(reverse("administration-account", args=[personas["ris"].pk])).content.decode()
    assert secret not in page and token.prefix in page
    event = AuditEvent.objects.get(action="api_token.create")
    assert secret not in str(event.details) and event.details["account_id"] == personas["ris"].pk


def test_rotation_replaces_the_secret_and_revocation_stops_it(admin_client, personas):
    old = issue(admin_client, personas["ris"])
    token = ApiToken.objects.get()
    response = admin_client.post(reverse("administration-token-rotate", args=[token.pk]))
    new = SECRET.findall(response.content.decode())[0]
    assert new != old
    assert api(old) == 401 and api(new) == 200
    replacement = ApiToken.objects.get(revoked_at=None)
    assert replacement.name == "RIS feed"
    assert AuditEvent.objects.get(action="api_token.rotate").details["replaces"] == token.pk

    admin_client.post(reverse("administration-token-revoke", args=[replacement.pk]))
    assert api(new) == 401
    assert AuditEvent.objects.filter(action="api_token.revoke", object_id=str(replacement.pk)).exists()
    again = admin_client.post(reverse("administration-token-revoke", args=[replacement.pk]))
    assert again.status_code == 400
    assert admin_client.post(reverse("administration-token-rotate", args=[replacement.pk])).status_code == 400


def test_a_deactivated_accounts_token_stops_working(admin_client, personas):
    secret = issue(admin_client, personas["ris"])
    admin_client.post(
        reverse("administration-account-deactivate", args=[personas["ris"].pk]), {"reason": "retired"}
    )
    assert api(secret) == 401


@pytest.mark.parametrize(
    "secret", ["cct_" + "A" * 43, "cct_", "cct_<script>", "not-a-token", "cct_" + "x" * 5000]
)
def test_wrong_secrets_are_refused(personas, secret):
    assert api(secret) == 401


def test_legacy_framework_tokens_still_work(ris):
    assert ris.get("/api/v1/studies").status_code == 200


def test_tokens_are_only_for_integration_accounts(admin_client, personas):
    response = admin_client.post(
        reverse("administration-token-create", args=[personas["alice"].pk]), {"name": "x"}
    )
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_token_needs_a_name(admin_client, personas, name):
    response = admin_client.post(
        reverse("administration-token-create", args=[personas["ris"].pk]), {"name": name}
    )
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_a_hostile_token_name_is_escaped(admin_client, personas):
    issue(admin_client, personas["ris"], name="<script>alert(1)</script>")
    page = admin_client.get(reverse("administration-account", args=[personas["ris"].pk])).content.decode()
    assert "<script>alert(1)</script>" not in page


def test_an_unknown_token_is_404(admin_client):
    assert admin_client.post(reverse("administration-token-revoke", args=[424242])).status_code == 404
