"""Top-level URLs: pages, the API under /api/v1/, its OpenAPI schema, and authentication.

This is the wiring on top of every app: it hands ``audit`` (which imports no domain app) the access
rules of :mod:`portal.accounts` for its pages and its proof API, and the record's look-up of a study by
accession number for its proof viewer.
"""

from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from audit import urls as audit_urls
from audit.api import urls as audit_api_urls
from portal import views
from portal.accounts import roles
from portal.accounts.permissions import CanReadProofs
from portal.core.access import require
from portal.records.models import Study


def _study_by_accession(accession: str) -> int | None:
    """The primary key of the study with this accession number (the proof viewer's look-up)."""
    return Study.objects.filter(accession_number=accession).values_list("pk", flat=True).first()


urlpatterns = [
    path("", views.home, name="home"),
    # Browsers ask for /favicon.ico on their own (e.g. for a JSON answer or a download).
    path(
        "favicon.ico", RedirectView.as_view(url=static("favicon/favicon.ico"), permanent=True), name="favicon"
    ),
    path("health/", views.system_health, name="system-health"),
    path(
        "audit/",
        include(
            audit_urls.urlpatterns_for(
                require(roles.can_view_audit_status, reason="PermissionDenied"), _study_by_accession
            )
        ),
    ),
    path("accounts/", include("portal.accounts.urls")),
    path("administration/", include("portal.administration.urls")),
    path("review/", include("portal.review.urls")),
    path("records/", include("portal.records.urls")),
    path("peer/", include("portal.peer.urls")),
    path("", include("inference.urls")),  # /reinference/ and /models/
    path("", include("portal.legal.urls")),  # /legal/
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/health/components", views.SystemHealthView.as_view(), name="api-system-health"),
    path("api/v1/", include("portal.review.api.urls")),
    path("api/v1/legal/", include("portal.legal.api.urls")),
    path("api/v1/audit/", include(audit_api_urls.urlpatterns_for(CanReadProofs))),
    path("api/v1/", include("inference.api.urls")),
    path("api/v1/", include("portal.records.api.urls")),
]
