"""``{% inbox_link %}``: the navigation's link to the inbox, with the unread count (base.html loads it)."""

from __future__ import annotations

from typing import Any

from django import template

from portal.accounts import roles
from portal.peer import notifications

register = template.Library()


@register.inclusion_tag("peer/_nav_inbox.html", takes_context=True)
def inbox_link(context: dict[str, Any]) -> dict[str, Any]:
    """The link for a signed-in person (one COUNT on an index); nothing for service accounts."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or roles.is_api_only(user):
        return {"show": False}
    path = getattr(request, "path", "")
    # The inbox page counts them already: reuse its number instead of counting twice.
    unread = getattr(request, "peer_unread", None)
    if unread is None:
        unread = notifications.unread_count(user)
    return {"show": True, "unread": unread, "current": path.startswith("/peer/")}
