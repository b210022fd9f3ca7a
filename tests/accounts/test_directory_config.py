"""Directory sign-in is configured by environment variables, off by default, loud on bad values."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.accounts import directory_config

LDAP = {
    "CONCORDANCE_LDAP_SERVER_URI": "ldaps://dc1.hospital.example",
    "CONCORDANCE_LDAP_USER_BASE": "ou=Staff,dc=hospital,dc=example",
    "CONCORDANCE_LDAP_GROUP_BASE": "ou=Groups,dc=hospital,dc=example",
}


def read_from(environ):
    return lambda name, default: environ.get(name) or default


def test_everything_is_off_without_variables():
    assert directory_config.ldap_settings({}, read_from({})) == {}
    assert directory_config.oidc_settings({}, read_from({})) == {}


def test_active_directory_settings_exclude_disabled_accounts_from_the_user_search():
    environ = {
        **LDAP,
        "CONCORDANCE_LDAP_USER_FILTER": "(sAMAccountName=%(user)s)",
        "CONCORDANCE_LDAP_DISABLED_FILTER": directory_config.AD_DISABLED_FILTER,
        "CONCORDANCE_LDAP_GROUP_TYPE": "activeDirectory",
        "CONCORDANCE_LDAP_ROLE_GROUPS": "radiologist=CN=Radiologists,OU=Groups,DC=hospital,DC=example",
    }
    found = directory_config.ldap_settings(environ, read_from(environ))
    assert found["AUTH_LDAP_USER_SEARCH"].filterstr == (
        "(&(sAMAccountName=%(user)s)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
    )
    assert found["CONCORDANCE_LDAP_ROLE_GROUPS"] == {
        "cn=radiologists,ou=groups,dc=hospital,dc=example": "radiologist"
    }


@pytest.mark.parametrize(
    "environ",
    [
        {"CONCORDANCE_LDAP_SERVER_URI": "ldap://x"},  # no bases
        {**LDAP, "CONCORDANCE_LDAP_ROLE_GROUPS": "superuser=cn=x"},  # no such role
        {**LDAP, "CONCORDANCE_LDAP_ROLE_GROUPS": "radiologist"},  # no group
        {**LDAP, "CONCORDANCE_LDAP_GROUP_TYPE": "posixGroup"},
        {**LDAP, "CONCORDANCE_LDAP_START_TLS": "maybe"},
    ],
)
def test_bad_ldap_settings_fail_loudly(environ):
    with pytest.raises(ImproperlyConfigured):
        directory_config.ldap_settings(environ, read_from(environ))


def test_oidc_needs_its_client_credentials_and_derives_endpoints_from_the_issuer():
    with pytest.raises(ImproperlyConfigured):
        directory_config.oidc_settings(
            {"CONCORDANCE_OIDC_ISSUER": "https://id"}, read_from({"CONCORDANCE_OIDC_ISSUER": "https://id"})
        )
    environ = {
        "CONCORDANCE_OIDC_ISSUER": "https://id.hospital.example/",
        "CONCORDANCE_OIDC_CLIENT_ID": "concordance",
        "CONCORDANCE_OIDC_CLIENT_SECRET": "s",
        "CONCORDANCE_OIDC_TOKEN_ENDPOINT": "https://id.hospital.example/connect/token",
    }
    found = directory_config.oidc_settings(environ, read_from(environ))
    assert found["OIDC_OP_AUTHORIZATION_ENDPOINT"] == "https://id.hospital.example/oauth2/authorize"
    assert found["OIDC_OP_TOKEN_ENDPOINT"] == "https://id.hospital.example/connect/token"
    assert found["OIDC_VERIFY_KID"] is True and found["OIDC_TIMEOUT"] == 10



def test_ldap_without_its_libraries_says_what_to_install(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(directory_config.importlib, "import_module", missing)
    with pytest.raises(ImproperlyConfigured, match=r"\.\[directory\]"):
        directory_config.ldap_settings(LDAP, read_from(LDAP))
