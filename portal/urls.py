"""Top-level URLs: pages, the API under /api/v1/, its OpenAPI schema, and authentication."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from portal import views
from portal.review.api.views import CompareView

urlpatterns = [
    path("", views.home, name="home"),
    path("audit/", views.audit_status, name="audit-status"),
    path("accounts/", include("portal.accounts.urls")),
    path("review/", include("portal.review.urls")),
    path("records/", include("portal.records.urls")),
    path("", include("inference.urls")),  # /reinference/ and /models/
    path("", include("portal.legal.page_urls")),  # /legal/
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/compare", CompareView.as_view(), name="api-compare"),
    path("api/v1/legal/", include("portal.legal.urls")),
    path("api/v1/audit/", include("portal.legal.audit_urls")),
    path("api/v1/", include("inference.api.run_urls")),
    path("api/v1/", include("inference.api.urls")),
    path("api/v1/", include("portal.records.api.urls")),
]
