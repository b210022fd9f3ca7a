"""Single sign-on through OpenID Connect against a local provider (oidc-provider-mock) the tests start:
accounts keyed by the provider's subject, roles from its groups claim, no takeover of local accounts."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client
from oidc_provider_mock import run_server_in_thread

from audit.models import AuditEvent
from portal.accounts import directory_config
from portal.accounts.models import DirectoryIdentity

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def provider():
    """A running OpenID Connect provider on a free loopback port: its base URL."""
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def sso(provider, settings):
    """The portal configured for the provider exactly as the environment would configure it."""
    environ = {
        "CONCORDANCE_OIDC_ISSUER": provider,
        "CONCORDANCE_OIDC_CLIENT_ID": "concordance",
        "CONCORDANCE_OIDC_CLIENT_SECRET": "client-secret-for-tests",
        "CONCORDANCE_OIDC_ROLE_GROUPS": "radiologist=Radiology;admin=Portal Admins",
        "CONCORDANCE_OIDC_VERIFY_KID": "0",  # the mock publishes one key and names none
    }
    for name, value in directory_config.oidc_settings(environ, lambda n, d: environ.get(n, d)).items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        directory_config.OIDC_BACKEND,
        "django.contrib.auth.backends.ModelBackend",
    ]
    return provider


def person(provider: str, sub: str, **claims) -> None:
    """Register (or change) a person at the provider."""
    assert requests.put(f"{provider}/users/{sub}", json=claims, timeout=10).status_code == 204


def sign_in(sub: str) -> tuple[Client, object]:
    """The whole code flow: portal → provider (the person picks ``sub``) → portal callback."""
    client = Client()
    start = client.get("/accounts/oidc/authenticate/")
    assert start.status_code == 302
    consent = requests.post(start["Location"], data={"sub": sub}, allow_redirects=False, timeout=10)
    assert consent.status_code == 302, consent.text[:500]
    back = urlsplit(consent.headers["Location"])
    return client, client.get(f"{back.path}?{back.query}")


def test_the_login_page_offers_single_sign_on(sso):
    body = Client().get("/accounts/login/").content.decode()
    assert 'data-testid="sso-login"' in body and "/accounts/oidc/authenticate/" in body


def test_a_first_sign_in_creates_the_account_with_roles_from_groups(sso):
    person(
        sso,
        "0b1c-77",
        preferred_username="jdoe",
        email="jdoe@hospital.example",
        groups=["Radiology", "Staff"],
    )
    client, response = sign_in("0b1c-77")
    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(username="jdoe")
    assert sorted(user.groups.values_list("name", flat=True)) == ["radiologist"]
    assert DirectoryIdentity.objects.get(user=user).subject == "0b1c-77"
    assert not user.has_usable_password()
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(action="auth.directory_account", object_id=str(user.pk)).exists()


def test_a_returning_person_is_found_by_subject_and_roles_follow_the_provider(sso):
    person(sso, "sub-1", preferred_username="mchair", groups=["Radiology"])
    sign_in("sub-1")
    person(sso, "sub-1", preferred_username="renamed", groups=["Portal Admins"])
    _, response = sign_in("sub-1")
    assert response.status_code == 302
    user = User.objects.get(directory_identity__subject="sub-1")
    assert user.username == "mchair"  # the subject, not the changeable name, finds the account
    assert list(user.groups.values_list("name", flat=True)) == ["admin"]


def test_a_local_account_is_never_taken_over(sso, personas):
    person(sso, "intruder", preferred_username="carol", groups=["Portal Admins"])
    client, response = sign_in("intruder")
    assert response["Location"].startswith("/accounts/login/?sso=failed")
    assert not DirectoryIdentity.objects.exists()
    assert not personas["carol"].groups.filter(name="admin").exists()
    assert 'data-testid="sso-failed"' in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize("username", ["<script>alert(1)</script>", "x" * 151 + " y", "' OR 1=1 --"])
def test_hostile_usernames_from_the_provider_are_refused(sso, username):
    person(sso, "hostile", preferred_username=username)
    _, response = sign_in("hostile")
    assert response["Location"].startswith("/accounts/login/?sso=failed")
    assert not DirectoryIdentity.objects.exists()
    assert not User.objects.filter(username__startswith=username[:10]).exists()


def test_an_account_deactivated_in_the_portal_cannot_sign_in(sso):
    person(sso, "sub-2", preferred_username="leaver", groups=["Radiology"])
    sign_in("sub-2")
    User.objects.filter(username="leaver").update(is_active=False)
    client, response = sign_in("sub-2")
    assert response["Location"].startswith("/accounts/login/?sso=failed")
    assert client.get("/").status_code == 302


def test_without_a_provider_the_sso_urls_are_404(db):
    assert Client().get("/accounts/oidc/authenticate/").status_code == 404
    assert 'data-testid="sso-login"' not in Client().get("/accounts/login/").content.decode()


def test_an_sso_session_is_rechecked_with_the_provider_once_its_token_is_old(sso, settings):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[:-1],
        "mozilla_django_oidc.middleware.SessionRefresh",
        settings.MIDDLEWARE[-1],
    ]
    person(sso, "sub-3", preferred_username="recheck", groups=["Radiology"])
    client, _ = sign_in("sub-3")
    assert client.get("/").status_code == 200  # the ID token is fresh
    session = client.session
    session["oidc_id_token_expiration"] = 0
    session.save()
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(f"{sso}/oauth2/authorize")
    assert "prompt=none" in response["Location"]
