"""How sign-in throttling (django-axes) names the account a failed attempt was for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest

#: No real account has a longer name, and axes stores the name in a bounded column.
USERNAME_MAX_LENGTH: int = get_user_model()._meta.get_field("username").max_length or 150


def axes_username(request: HttpRequest, credentials: Mapping[str, Any] | None = None) -> str | None:
    """The submitted user name as axes should record it: clipped to a real name's length, no NUL.

    A hostile form can post any text as the user name; storing it unclipped fails on PostgreSQL's
    bounded column (a 500 instead of a refused sign-in) and NUL cannot be stored at all. Clipping keeps
    the lockout per name for every name that can exist.
    """
    source = credentials if credentials else getattr(request, "POST", {})
    value = source.get("username") if source else None
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "")[:USERNAME_MAX_LENGTH]
