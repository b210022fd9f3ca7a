"""Accounts: list and search, create, roles, deactivation (sessions end at once) and sessions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from portal.accounts.models import DirectoryIdentity
from portal.records.models import Clinician

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(1)</script>"
GOOD_PASSWORD = "a long enough passphrase 42"


def create(client: Client, **fields) -> object:
    data = {"username": "newbie", "email": "", "first_name": "", "last_name": "", "password": "", **fields}
    return client.post(reverse("administration-account-new"), data)


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-seq").first()


def test_the_list_shows_every_account_with_roles_and_a_total(admin_client, personas):
    response = admin_client.get(reverse("administration-users"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "9 accounts" in body  # eight personas and root
    assert f'data-testid="account-{personas["alice"].pk}"' in body
    assert "qa_chair" in body


def test_search_finds_by_username_name_or_email(admin_client, personas):
    personas["carol"].first_name = "Caroline"
    personas["carol"].email = "c.reviewer@hospital.example"
    personas["carol"].save()
    for query in ("arol", "Caroline", "reviewer@hospital"):
        body = admin_client.get(reverse("administration-users"), {"q": query}).content.decode()
        assert "1 account " in body and "carol" in body, query
        assert "alice" not in body


def test_search_with_hostile_or_oversized_text_is_refused_or_escaped(admin_client, personas):
    assert admin_client.get(reverse("administration-users"), {"q": "x" * 101}).status_code == 400
    body = admin_client.get(reverse("administration-users"), {"q": HOSTILE}).content.decode()
    assert HOSTILE not in body and "&lt;script&gt;" in body
    body = admin_client.get(reverse("administration-users"), {"q": "' OR 1=1 --"}).content.decode()
    assert "0 accounts" in body


def test_the_list_costs_a_fixed_number_of_queries(admin_client, personas, django_assert_max_num_queries):
    for number in range(30):
        User.objects.create_user(username=f"extra{number}")
    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse("administration-users"))
    assert response.status_code == 200


def test_an_admin_creates_an_account_with_roles_audited_without_the_password(admin_client, root):
    response = create(
        admin_client, username="dr_new", password=GOOD_PASSWORD, roles=["radiologist", "qa_reviewer"]
    )
    user = User.objects.get(username="dr_new")
    assert response.status_code == 302 and response["Location"] == reverse(
        "administration-account", args=[user.pk]
    )
    assert user.check_password(GOOD_PASSWORD)
    assert sorted(user.groups.values_list("name", flat=True)) == ["qa_reviewer", "radiologist"]
    event = last_event("account.create")
    assert event.actor_username == "root" and event.object_id == str(user.pk)
    assert event.details["roles"] == ["qa_reviewer", "radiologist"] and event.details["password_set"] is True
    assert GOOD_PASSWORD not in str(event.details)


def test_an_account_without_a_password_cannot_sign_in_with_one(admin_client):
    create(admin_client, username="pacs", roles=["integration"])
    assert not User.objects.get(username="pacs").has_usable_password()


@pytest.mark.parametrize(
    "fields",
    [
        {"username": "alice"},  # exists
        {"username": "ALICE"},  # exists, other case
        {"username": HOSTILE},  # not a username
        {"username": ""},
        {"username": "x" * 151},
        {"username": "fine", "roles": ["superuser"]},  # no such role
        {"username": "fine", "password": "short"},  # too weak
        {"username": "fine", "email": "not an address"},
        {"username": "fine", "first_name": "x" * 151},
    ],
)
def test_bad_account_input_is_refused_and_nothing_is_written(admin_client, personas, fields):
    users_before = User.objects.count()
    events_before = AuditEvent.objects.filter(action="account.create").count()
    response = create(admin_client, **fields)
    assert response.status_code == 400
    assert User.objects.count() == users_before
    assert AuditEvent.objects.filter(action="account.create").count() == events_before


def test_hostile_names_are_shown_escaped(admin_client):
    create(admin_client, username="hostile", first_name=HOSTILE, roles=["radiologist"])
    body = admin_client.get(reverse("administration-users")).content.decode()
    assert HOSTILE not in body and "&lt;script&gt;" in body


def test_roles_are_replaced_and_audited(admin_client, personas):
    bob = personas["bob"]
    response = admin_client.post(
        reverse("administration-account-roles", args=[bob.pk]), {"roles": ["qa_reviewer", "legal"]}
    )
    assert response.status_code == 302
    assert sorted(bob.groups.values_list("name", flat=True)) == ["legal", "qa_reviewer"]
    event = last_event("account.roles_change")
    assert event.details == {"added": ["legal", "qa_reviewer"], "removed": ["radiologist"]}


@pytest.mark.parametrize("roles", [["root"], ["admin' OR 1=1"], [HOSTILE]])
def test_unknown_roles_are_refused(admin_client, personas, roles):
    response = admin_client.post(
        reverse("administration-account-roles", args=[personas["bob"].pk]), {"roles": roles}
    )
    assert response.status_code == 400
    assert list(personas["bob"].groups.values_list("name", flat=True)) == ["radiologist"]


def test_an_admin_cannot_take_their_own_admin_role_nor_deactivate_themselves(admin_client, root):
    response = admin_client.post(
        reverse("administration-account-roles", args=[root.pk]), {"roles": ["auditor"]}
    )
    assert response.status_code == 400
    assert root.groups.filter(name="admin").exists()
    response = admin_client.post(
        reverse("administration-account-deactivate", args=[root.pk]), {"reason": "x"}
    )
    assert response.status_code == 400
    root.refresh_from_db()
    assert root.is_active


def test_directory_accounts_get_their_roles_from_the_directory(admin_client, personas):
    DirectoryIdentity.objects.create(user=personas["bob"], source="ldap", subject="bob")
    page = admin_client.get(reverse("administration-account", args=[personas["bob"].pk])).content.decode()
    assert 'data-testid="roles-form"' not in page
    response = admin_client.post(
        reverse("administration-account-roles", args=[personas["bob"].pk]), {"roles": ["admin"]}
    )
    assert response.status_code == 400
    assert not personas["bob"].groups.filter(name="admin").exists()


def test_deactivation_ends_the_sessions_at_once_and_reactivation_restores_sign_in(
    admin_client, page_as, personas
):
    bob_page = page_as("bob")
    assert bob_page.get("/").status_code == 200
    response = admin_client.post(
        reverse("administration-account-deactivate", args=[personas["bob"].pk]),
        {"reason": "left the hospital"},
    )
    assert response.status_code == 302
    again = bob_page.get("/")
    assert again.status_code == 302 and again["Location"].startswith("/accounts/login/")
    event = last_event("account.deactivate")
    assert event.details == {"reason": "left the hospital", "sessions_ended": 1}
    personas["bob"].refresh_from_db()
    assert not personas["bob"].is_active

    admin_client.post(reverse("administration-account-reactivate", args=[personas["bob"].pk]))
    personas["bob"].refresh_from_db()
    assert personas["bob"].is_active
    assert last_event("account.reactivate").object_id == str(personas["bob"].pk)


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_deactivation_needs_a_reason(admin_client, personas, reason):
    response = admin_client.post(
        reverse("administration-account-deactivate", args=[personas["bob"].pk]), {"reason": reason}
    )
    assert response.status_code == 400
    personas["bob"].refresh_from_db()
    assert personas["bob"].is_active


def signed_in_through_the_login_page(user) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": user.username, "password": GOOD_PASSWORD})
    assert response.status_code == 302
    return client


def test_sessions_are_listed_and_one_can_be_ended(admin_client, personas):
    personas["bob"].set_password(GOOD_PASSWORD)
    personas["bob"].save()
    first, second = (
        signed_in_through_the_login_page(personas["bob"]),
        signed_in_through_the_login_page(personas["bob"]),
    )
    page = admin_client.get(reverse("administration-account", args=[personas["bob"].pk]))
    sessions = page.context["sessions"]
    assert len(sessions) == 2
    assert all(info.client_address == "127.0.0.1" and info.signed_in_at for info in sessions)
    keys = {first.session.session_key, second.session.session_key}
    assert not any(key in page.content.decode() for key in keys)  # never the secret key itself
    everyone = admin_client.get(reverse("administration-sessions"))
    assert len([row for row in everyone.context["rows"] if row["account"] == personas["bob"]]) == 2

    from portal.accounts.sessions import session_id

    target = session_id(first.session.session_key)
    response = admin_client.post(reverse("administration-session-end", args=[personas["bob"].pk, target]))
    assert response.status_code == 302
    assert first.get("/").status_code == 302
    assert second.get("/").status_code == 200
    assert last_event("account.session_end").details == {"session": target}


@pytest.mark.parametrize("sid", ["0" * 16, "<script>", "x" * 300])
def test_ending_an_unknown_session_is_refused(admin_client, personas, sid):
    response = admin_client.post(reverse("administration-session-end", args=[personas["bob"].pk, sid]))
    assert response.status_code in {400, 404}
    assert not AuditEvent.objects.filter(action="account.session_end").exists()


def test_an_unknown_account_is_404(admin_client):
    assert admin_client.get(reverse("administration-account", args=[999_999])).status_code == 404


def test_the_account_page_lists_the_linked_clinicians(admin_client, personas):
    Clinician.objects.create(
        authority="urn:ris", identifier="R-77", family_name="Okafor", account=personas["alice"]
    )
    body = admin_client.get(reverse("administration-account", args=[personas["alice"].pk])).content.decode()
    assert "Okafor" in body and "R-77" in body and reverse("records-clinicians") in body
