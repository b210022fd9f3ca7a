"""Directory sign-in settings from environment variables (read by portal/settings.py; off by default).

LDAP / Active Directory (django-auth-ldap, the optional ``directory`` extra) is on when
``CONCORDANCE_LDAP_SERVER_URI`` is set; OpenID Connect (mozilla-django-oidc) when
``CONCORDANCE_OIDC_ISSUER`` is set. Both map directory groups to the portal's roles with
``ROLE=GROUP;ROLE=GROUP`` lists (a role may appear several times). docs/directory.md explains each.

This module imports no Django model (settings import it before the apps are ready); the LDAP
libraries are imported only when LDAP is configured, so that installations without it need not
build python-ldap.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

ROLE_NAMES = ("radiologist", "qa_reviewer", "qa_chair", "legal", "auditor", "integration", "admin")
LDAP_BACKEND = "portal.accounts.ldap_backend.DirectoryBackend"
OIDC_BACKEND = "portal.accounts.oidc_backend.DirectoryOIDCBackend"
# Active Directory's "account disabled" flag (userAccountControl bit 2), as an LDAP filter.
AD_DISABLED_FILTER = "(userAccountControl:1.2.840.113556.1.4.803:=2)"

Reader = Callable[[str, str | None], str | None]


def role_groups(raw: str | None, *, name: str, case_insensitive: bool = True) -> dict[str, str]:
    """Parse ``role=group;role=group`` into {group: role}; fail loudly on an unknown role or bad item."""
    mapping: dict[str, str] = {}
    for item in (raw or "").split(";"):
        if not item.strip():
            continue
        role, sep, group = item.partition("=")
        role, group = role.strip(), group.strip()
        if not sep or not group or role not in ROLE_NAMES:
            raise ImproperlyConfigured(
                f"{name}: {item.strip()!r} is not ROLE=GROUP with ROLE one of {', '.join(ROLE_NAMES)}"
            )
        mapping[group.lower() if case_insensitive else group] = role
    return mapping


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = (environ.get(name) or "").strip().lower()
    if value in {"", "0", "false", "no", "off"}:
        return False
    if value in {"1", "true", "yes", "on"}:
        return True
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean")


def ldap_settings(environ: Mapping[str, str], read: Reader) -> dict[str, Any]:
    """The ``AUTH_LDAP_*`` settings and the role map, or {} when LDAP is not configured.

    ``read(name, default)`` reads a variable or its ``_FILE`` (for the bind password).
    """
    uri = read("CONCORDANCE_LDAP_SERVER_URI", None)
    if not uri:
        return {}
    try:
        ldap = importlib.import_module("ldap")
        config = importlib.import_module("django_auth_ldap.config")
    except ImportError as exc:
        raise ImproperlyConfigured(
            "CONCORDANCE_LDAP_SERVER_URI is set but the LDAP libraries are missing: "
            "pip install -e '.[directory]'"
        ) from exc
    user_base = read("CONCORDANCE_LDAP_USER_BASE", None)
    group_base = read("CONCORDANCE_LDAP_GROUP_BASE", None)
    if not user_base or not group_base:
        raise ImproperlyConfigured(
            "CONCORDANCE_LDAP_USER_BASE and CONCORDANCE_LDAP_GROUP_BASE must be set with LDAP"
        )
    user_filter = read("CONCORDANCE_LDAP_USER_FILTER", "(uid=%(user)s)") or "(uid=%(user)s)"
    disabled = read("CONCORDANCE_LDAP_DISABLED_FILTER", "") or ""
    # A disabled entry is simply not found: it cannot sign in, and a re-check ends its sessions.
    search_filter = f"(&{user_filter}(!{disabled}))" if disabled else user_filter
    group_type = read("CONCORDANCE_LDAP_GROUP_TYPE", "groupOfNames")
    group_types = {
        "groupOfNames": config.GroupOfNamesType,
        "activeDirectory": config.NestedActiveDirectoryGroupType,
        "groupOfUniqueNames": config.GroupOfUniqueNamesType,
    }
    if group_type not in group_types:
        raise ImproperlyConfigured(f"CONCORDANCE_LDAP_GROUP_TYPE must be one of {', '.join(group_types)}")
    group_class = "group" if group_type == "activeDirectory" else group_type
    return {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_BIND_DN": read("CONCORDANCE_LDAP_BIND_DN", "") or "",
        "AUTH_LDAP_BIND_PASSWORD": read("CONCORDANCE_LDAP_BIND_PASSWORD", "") or "",
        "AUTH_LDAP_START_TLS": _flag(environ, "CONCORDANCE_LDAP_START_TLS"),
        "AUTH_LDAP_USER_SEARCH": config.LDAPSearch(user_base, ldap.SCOPE_SUBTREE, search_filter),
        "AUTH_LDAP_GROUP_SEARCH": config.LDAPSearch(
            group_base, ldap.SCOPE_SUBTREE, f"(objectClass={group_class})"
        ),
        "AUTH_LDAP_GROUP_TYPE": group_types[group_type](),
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_CONNECTION_OPTIONS": {ldap.OPT_NETWORK_TIMEOUT: 5, ldap.OPT_TIMEOUT: 5},
        "CONCORDANCE_LDAP_ROLE_GROUPS": role_groups(
            read("CONCORDANCE_LDAP_ROLE_GROUPS", ""), name="CONCORDANCE_LDAP_ROLE_GROUPS"
        ),
    }


def oidc_settings(environ: Mapping[str, str], read: Reader) -> dict[str, Any]:
    """The ``OIDC_*`` settings of mozilla-django-oidc and the role map, or {} when OIDC is off."""
    issuer = (read("CONCORDANCE_OIDC_ISSUER", None) or "").rstrip("/")
    if not issuer:
        return {}
    client_id = read("CONCORDANCE_OIDC_CLIENT_ID", None)
    secret = read("CONCORDANCE_OIDC_CLIENT_SECRET", None)
    if not client_id or not secret:
        raise ImproperlyConfigured(
            "CONCORDANCE_OIDC_CLIENT_ID and CONCORDANCE_OIDC_CLIENT_SECRET must be set"
        )

    def endpoint(name: str, default: str) -> str:
        return read(f"CONCORDANCE_OIDC_{name}", None) or issuer + default

    return {
        "OIDC_RP_CLIENT_ID": client_id,
        "OIDC_RP_CLIENT_SECRET": secret,
        "OIDC_RP_SIGN_ALGO": read("CONCORDANCE_OIDC_SIGN_ALGO", "RS256"),
        "OIDC_RP_SCOPES": "openid email profile",
        # Endpoints default to the common layout under the issuer; each can be set on its own.
        "OIDC_OP_AUTHORIZATION_ENDPOINT": endpoint("AUTHORIZATION_ENDPOINT", "/oauth2/authorize"),
        "OIDC_OP_TOKEN_ENDPOINT": endpoint("TOKEN_ENDPOINT", "/oauth2/token"),
        "OIDC_OP_USER_ENDPOINT": endpoint("USER_ENDPOINT", "/userinfo"),
        "OIDC_OP_JWKS_ENDPOINT": endpoint("JWKS_ENDPOINT", "/jwks"),
        "OIDC_USE_NONCE": True,
        "OIDC_TIMEOUT": 10,  # seconds per call to the provider (the library's default waits for ever)
        # Match the ID token's key by its "kid"; a provider that publishes a single key without one
        # needs CONCORDANCE_OIDC_VERIFY_KID=0 (the signature is still checked against that key).
        "OIDC_VERIFY_KID": _flag(environ, "CONCORDANCE_OIDC_VERIFY_KID")
        if environ.get("CONCORDANCE_OIDC_VERIFY_KID")
        else True,
        # How often a signed-in session is re-checked with the provider (silently, prompt=none).
        "OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS": int(read("CONCORDANCE_OIDC_RECHECK_S", "900") or 900),
        "OIDC_STORE_ID_TOKEN": True,
        # Not sent to the provider when the token is old: sign-in pages, the idle countdown's
        # background checks, the API (JSON clients cannot follow a redirect to a login form), assets.
        "OIDC_EXEMPT_URLS": [
            "login",
            "logout",
            "session-status",
            "session-keepalive",
            re.compile(r"^/api/"),
            re.compile(r"^/static/"),
        ],
        "OIDC_CREATE_USER": True,
        "CONCORDANCE_OIDC_USERNAME_CLAIM": read("CONCORDANCE_OIDC_USERNAME_CLAIM", "preferred_username"),
        "CONCORDANCE_OIDC_GROUPS_CLAIM": read("CONCORDANCE_OIDC_GROUPS_CLAIM", "groups"),
        "CONCORDANCE_OIDC_ROLE_GROUPS": role_groups(
            read("CONCORDANCE_OIDC_ROLE_GROUPS", ""),
            name="CONCORDANCE_OIDC_ROLE_GROUPS",
            case_insensitive=False,
        ),
    }
