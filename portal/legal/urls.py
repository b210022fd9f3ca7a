"""URLs of the legal page (mounted at the site root): search, holds and export packages."""

from django.urls import path

from portal.legal import views

urlpatterns = [
    path("legal/", views.legal, name="legal"),
    path("legal/search", views.search, name="legal-search"),
    path("legal/holds", views.hold_place, name="legal-hold-place"),
    path("legal/holds/<int:pk>/release", views.hold_release, name="legal-hold-release"),
    path("legal/exports", views.exports, name="legal-exports"),
    path("legal/exports/request", views.export_request, name="legal-export-request"),
    path("legal/exports/<int:pk>/cancel", views.export_cancel, name="legal-export-cancel"),
]
