"""URLs of the live drafting API (mounted at /api/v1/)."""

from django.urls import path

from inference.api import drafts

urlpatterns = [
    path("drafts", drafts.DraftCreate.as_view(), name="api-drafts"),
]
