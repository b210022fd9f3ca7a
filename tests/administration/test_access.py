"""Only the admin role reaches the administration pages; every refusal is audited; forms need CSRF."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

NON_ADMINS = ["alice", "carol", "dana", "lena", "otto", "eve"]


def pages(target_pk: int) -> list[tuple[str, str]]:
    return [
        ("get", reverse("administration-users")),
        ("get", reverse("administration-account-new")),
        ("post", reverse("administration-account-new")),
        ("get", reverse("administration-account", args=[target_pk])),
        ("post", reverse("administration-account-roles", args=[target_pk])),
        ("post", reverse("administration-account-deactivate", args=[target_pk])),
        ("post", reverse("administration-account-reactivate", args=[target_pk])),
        ("post", reverse("administration-token-create", args=[target_pk])),
        ("get", reverse("administration-sessions")),
        ("post", reverse("administration-session-end", args=[target_pk, "0" * 16])),
    ]


@pytest.mark.parametrize("name", NON_ADMINS)
def test_other_roles_get_403_and_the_refusal_is_audited(name, personas, page_as, root):
    client = page_as(name)
    for method, url in pages(personas["bob"].pk):
        before = AuditEvent.objects.filter(action="access.denied").count()
        response = getattr(client, method)(url, {"roles": ["admin"], "reason": "x", "name": "x"})
        assert response.status_code == 403, (method, url)
        assert AuditEvent.objects.filter(action="access.denied").count() == before + 1
    personas["bob"].refresh_from_db()
    assert personas["bob"].is_active
    assert not personas["bob"].groups.filter(name="admin").exists()


def test_the_integration_account_gets_403_on_pages(personas, page_as):
    response = page_as("ris").get(reverse("administration-users"))
    assert response.status_code == 403


def test_anonymous_is_sent_to_sign_in(personas):
    response = Client().get(reverse("administration-users"))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_forms_need_the_csrf_token(root, personas):
    client = Client(enforce_csrf_checks=True)
    client.force_login(root)
    response = client.post(
        reverse("administration-account-deactivate", args=[personas["bob"].pk]), {"reason": "left"}
    )
    assert response.status_code == 403
    personas["bob"].refresh_from_db()
    assert personas["bob"].is_active


def test_pages_are_never_cached(admin_client, personas):
    response = admin_client.get(reverse("administration-account", args=[personas["ris"].pk]))
    assert "no-store" in response["Cache-Control"]


def test_the_admin_sees_the_users_link(admin_client, page_as):
    assert b'data-testid="nav-administration"' in admin_client.get("/").content
    assert b'data-testid="nav-administration"' not in page_as("dana").get("/").content
