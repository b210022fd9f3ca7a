"""The portal's main navigation: which pages exist, under which URL names, and who sees each link.

Pages are built by several apps; a link appears only when one of its URL names resolves (so a page
not built yet, or renamed, hides its link instead of crashing every page) and when
:func:`portal.accounts.roles.can_open_page` allows the user.
"""

from __future__ import annotations

import dataclasses
import functools

from django.urls import NoReverseMatch, reverse

from portal.accounts import roles


@dataclasses.dataclass(frozen=True)
class NavItem:
    """One link of the main navigation: its page key (see roles.PAGE_ROLES) and candidate URL names."""

    key: str
    label: str
    url_names: tuple[str, ...]


NAV: tuple[NavItem, ...] = (
    NavItem("dashboard", "Dashboard", ("review-dashboard", "review:dashboard", "dashboard")),
    NavItem("qa_queue", "QA queue", ("review-queue", "review:queue", "queue")),
    NavItem("my_feedback", "My feedback", ("review-feedback", "review:feedback", "my-feedback")),
    NavItem(
        "reinference",
        "Re-inference",
        ("reinference-runs", "reinference:runs", "inference:runs", "reinference-run-list", "reinference"),
    ),
    NavItem("models", "Models", ("models", "model-list", "inference:models", "model-versions")),
    NavItem("legal", "Legal", ("legal", "legal-home", "legal:home", "legal-search", "legal:search")),
    NavItem("audit", "Audit", ("audit-status", "audit-log", "audit:status")),
    NavItem("health", "Health", ("system-health",)),
    NavItem("interfaces", "Interfaces", ("records-interfaces",)),
    NavItem("clinicians", "Clinicians", ("records-clinicians",)),
    NavItem("administration", "Users", ("administration-users",)),
)


@functools.cache
def url_of(item: NavItem) -> str | None:
    """The path of the first of ``item``'s URL names that resolves (cached: URLs are fixed at start)."""
    for name in item.url_names:
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return None


def links_for(user: object, current_path: str = "") -> list[dict[str, object]]:
    """The links ``user`` sees, in order, each with its label, URL and whether it is the current page."""
    links = []
    for item in NAV:
        url = url_of(item)
        if url is None or not roles.can_open_page(user, item.key):  # type: ignore[arg-type]
            continue
        current = current_path == url or (url != "/" and current_path.startswith(url))
        links.append({"key": item.key, "label": item.label, "url": url, "current": current})
    return links
