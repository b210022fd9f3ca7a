"""``{% unread_badge %}``: the unread count beside the navigation's Inbox link (base.html loads it)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html

from portal.peer import notifications

register = template.Library()


@register.simple_tag(takes_context=True)
def unread_badge(context: dict[str, Any]) -> str:
    """The badge with the signed-in user's unread notifications; nothing when there are none.

    One COUNT on an index per page; the inbox page has counted already and leaves its number on the
    request, so the page does not count twice.
    """
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    unread = getattr(request, "peer_unread", None)
    if unread is None:
        unread = notifications.unread_count(user)
    if not unread:
        return ""
    return format_html(
        ' <span class="badge" data-testid="nav-unread" aria-label="{} unread">{}</span>', unread, unread
    )
