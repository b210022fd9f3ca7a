"""URL of the auditor's page (mounted at /audit/).

``audit`` imports no domain app, so the guard that decides who may open the page (and audits a
refusal) is an argument: the project's URL configuration passes it (see :mod:`portal.urls`).
"""

from __future__ import annotations

from collections.abc import Callable

from django.urls import URLPattern, path

from audit import views
from audit.views import View


def urlpatterns_for(guard: Callable[[View], View]) -> list[URLPattern]:
    """The status page, wrapped in ``guard`` (a view decorator that refuses the wrong accounts)."""
    return [path("", views.audit_status_view(guard), name="audit-status")]
