"""URLs of the legal-hold and legal-export API (mounted at /api/v1/legal/)."""

from django.urls import path

from portal.legal.api import views as api

urlpatterns = [
    path("holds", api.HoldListCreate.as_view(), name="api-legal-holds"),
    path("holds/<int:pk>/release", api.HoldRelease.as_view(), name="api-legal-hold-release"),
    path("exports", api.ExportListCreate.as_view(), name="api-legal-exports"),
    path("exports/<int:pk>", api.ExportDetail.as_view(), name="api-legal-export"),
    path("exports/<int:pk>/cancel", api.ExportCancel.as_view(), name="api-legal-export-cancel"),
    path("exports/<int:pk>/download", api.ExportDownload.as_view(), name="api-legal-export-download"),
]
