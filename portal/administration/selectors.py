"""Reads for the administration pages: the account list (search, page) and one account's detail."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet

from portal.accounts import sessions
from portal.accounts.models import ApiToken
from portal.accounts.roles import Role, roles_of
from portal.records.models import Clinician

PAGE_SIZE = 50


def accounts(query: str = "") -> QuerySet[User]:
    """Every account, or those whose username, name or e-mail contains ``query``; by username."""
    found = User.objects.select_related("directory_identity").prefetch_related("groups").order_by("username")
    if query:
        found = found.filter(
            Q(username__icontains=query)
            | Q(first_name__icontains=query)
            | Q(last_name__icontains=query)
            | Q(email__icontains=query)
        )
    return found


def accounts_page(query: str, page: Any) -> Page:
    """One page of :func:`accounts` (a bad or too-high page number gives the nearest page)."""
    return Paginator(accounts(query), PAGE_SIZE).get_page(page)


def role_names(user: User) -> list[str]:
    """The account's roles, by name, from its prefetched groups (no query per row)."""
    return sorted(group.name for group in user.groups.all() if group.name in Role._value2member_map_)


def account_detail(user: User) -> dict[str, Any]:
    """What the account page shows: roles, sessions, API tokens and linked clinicians."""
    return {
        "account": user,
        "roles": sorted(role.value for role in roles_of(user)) if user.is_active else role_names(user),
        "sessions": sessions.sessions_of(user.pk),
        "tokens": list(ApiToken.objects.filter(user=user).order_by("revoked_at", "-created_at")),
        "clinicians": list(Clinician.objects.filter(account=user).order_by("family_name", "identifier")),
    }


def all_sessions() -> list[dict[str, Any]]:
    """Every signed-in session with its account, for the sessions page."""
    found = sessions.sessions_of()
    users = User.objects.in_bulk({info.user_id for info in found})
    return [{"info": info, "account": users.get(info.user_id)} for info in found]
