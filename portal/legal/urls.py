"""URLs of the legal-hold API (mounted at /api/v1/legal/)."""

from django.urls import path

from portal.legal import api

urlpatterns = [
    path("holds", api.HoldListCreate.as_view(), name="api-legal-holds"),
    path("holds/<int:pk>/release", api.HoldRelease.as_view(), name="api-legal-hold-release"),
]
