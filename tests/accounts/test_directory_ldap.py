"""Sign-in through LDAP against a real OpenLDAP server: roles from directory groups, leavers out at
their next request, no takeover of local accounts, every step audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditEvent
from portal.accounts import directory_config
from portal.accounts.models import DirectoryIdentity
from tests.accounts import ldap_server as directory

pytestmark = pytest.mark.django_db

PASSWORD = "ward-round-7-secret"
PEOPLE = {
    "rkhan": {"password": PASSWORD, "sn": "Khan", "givenName": "Rana"},
    "mlee": {"password": PASSWORD, "sn": "Lee", "givenName": "Min"},
    "gone": {"password": PASSWORD, "employeeType": "disabled"},
}
GROUPS = {"radiologists": ["rkhan", "mlee"], "qa-chairs": ["mlee"], "cleaners": ["rkhan"]}


@pytest.fixture(scope="module")
def ldap_uri(tmp_path_factory):
    with directory.running_slapd(tmp_path_factory.mktemp("slapd")) as uri:
        yield uri


@pytest.fixture
def hospital_directory(ldap_uri, settings):
    """The seeded directory, and the portal configured for it exactly as the environment would."""
    directory.seed(ldap_uri, PEOPLE, GROUPS)
    environ = {
        "CONCORDANCE_LDAP_SERVER_URI": ldap_uri,
        "CONCORDANCE_LDAP_BIND_DN": directory.ROOT_DN,
        "CONCORDANCE_LDAP_BIND_PASSWORD": directory.ROOT_PASSWORD,
        "CONCORDANCE_LDAP_USER_BASE": directory.PEOPLE,
        "CONCORDANCE_LDAP_GROUP_BASE": directory.GROUPS,
        "CONCORDANCE_LDAP_DISABLED_FILTER": "(employeeType=disabled)",
        "CONCORDANCE_LDAP_ROLE_GROUPS": (
            f"radiologist={directory.group_dn('radiologists')};qa_chair={directory.group_dn('qa-chairs')}"
        ),
    }
    for name, value in directory_config.ldap_settings(environ, lambda n, d: environ.get(n, d)).items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        directory_config.LDAP_BACKEND,
        "django.contrib.auth.backends.ModelBackend",
    ]
    settings.CONCORDANCE_DIRECTORY_RECHECK_S = 0
    return ldap_uri


def sign_in(username: str, password: str = PASSWORD) -> tuple[Client, int]:
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return client, response.status_code


def roles(username: str) -> list[str]:
    return sorted(User.objects.get(username=username).groups.values_list("name", flat=True))


def test_a_directory_user_signs_in_with_roles_from_groups(hospital_directory):
    client, status = sign_in("mlee")
    assert status == 302
    assert roles("mlee") == ["qa_chair", "radiologist"]
    user = User.objects.get(username="mlee")
    assert (user.first_name, user.last_name, user.email) == ("Min", "Lee", "mlee@hospital.example")
    assert not user.has_usable_password()  # the directory holds the password, never the portal
    assert DirectoryIdentity.objects.get(user=user).source == "ldap"
    assert AuditEvent.objects.filter(action="auth.directory_account", object_id=str(user.pk)).exists()
    assert AuditEvent.objects.get(action="auth.directory_roles").details == {
        "added": ["qa_chair", "radiologist"],
        "removed": [],
    }
    assert client.get("/review/queue/").status_code == 200  # the QA chair's queue


def test_unmapped_groups_grant_nothing(hospital_directory):
    sign_in("rkhan")
    assert roles("rkhan") == ["radiologist"]


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("rkhan", "wrong password"),
        ("gone", PASSWORD),  # disabled in the directory
        ("nobody", PASSWORD),
        ("*", PASSWORD),  # filter injection
        ("rkhan)(uid=*", PASSWORD),
        ("x" * 300, PASSWORD),
    ],
)
def test_wrong_or_disabled_or_hostile_sign_ins_fail(hospital_directory, username, password):
    _, status = sign_in(username, password)
    assert status == 200  # the login page again, with its error
    assert not User.objects.filter(username__in=["rkhan", "gone", "nobody", "*"]).exists()


def test_a_user_disabled_in_the_directory_loses_access_at_the_next_request(hospital_directory):
    client, _ = sign_in("rkhan")
    second, _ = sign_in("rkhan")
    assert client.get("/").status_code == 200
    directory.set_attribute(hospital_directory, directory.person_dn("rkhan"), "employeeType", ["disabled"])

    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    user = User.objects.get(username="rkhan")
    assert not user.is_active
    event = AuditEvent.objects.get(action="auth.directory_disabled")
    assert event.object_id == str(user.pk) and event.details["sessions_ended"] == 2
    assert second.get("/").status_code == 302  # every session of the account ended

    # Switched on again in the directory: the next sign-in works and the account is active again.
    directory.set_attribute(hospital_directory, directory.person_dn("rkhan"), "employeeType", ["staff"])
    client, status = sign_in("rkhan")
    assert status == 302 and client.get("/").status_code == 200
    assert User.objects.get(username="rkhan").is_active


def test_a_group_change_in_the_directory_changes_roles_at_the_next_request(hospital_directory):
    client, _ = sign_in("mlee")
    assert client.get("/review/queue/").status_code == 200
    directory.seed(hospital_directory, PEOPLE, {**GROUPS, "qa-chairs": ["rkhan"]})
    assert client.get("/review/queue/").status_code == 403
    assert roles("mlee") == ["radiologist"]


def test_an_unreachable_directory_ends_the_session_but_not_the_account(hospital_directory, settings):
    client, _ = sign_in("rkhan")
    settings.AUTH_LDAP_SERVER_URI = f"ldap://127.0.0.1:{directory.free_port()}/"
    response = client.get("/")
    assert response.status_code == 302
    assert User.objects.get(username="rkhan").is_active
    assert AuditEvent.objects.filter(action="auth.directory_unreachable").count() == 1


def test_an_admin_deactivation_is_not_undone_by_the_directory(hospital_directory):
    sign_in("rkhan")
    User.objects.filter(username="rkhan").update(is_active=False)
    _, status = sign_in("rkhan")
    assert status == 200
    assert not User.objects.get(username="rkhan").is_active


def test_a_local_account_is_never_taken_over_by_the_directory(hospital_directory, fast_hasher):
    local = User.objects.create_user(username="rkhan", password="the local password 123")
    _, status = sign_in("rkhan")  # the directory's password
    assert status == 200
    assert not DirectoryIdentity.objects.filter(user=local).exists()
    assert roles("rkhan") == []
    _, status = sign_in("rkhan", "the local password 123")
    assert status == 302  # the local account still signs in locally


def test_local_sessions_are_not_rechecked_with_the_directory(hospital_directory, personas):
    client = Client()
    client.force_login(personas["carol"], backend="django.contrib.auth.backends.ModelBackend")
    assert client.get("/").status_code == 200
    assert not AuditEvent.objects.filter(action__startswith="auth.directory").exists()
