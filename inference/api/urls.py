"""URLs of the inference API (mounted at /api/v1/): live drafting and re-inference runs."""

from django.urls import path

from inference.api import drafts, runs

urlpatterns = [
    path("drafts", drafts.DraftCreate.as_view(), name="api-drafts"),
    path("reinference-runs", runs.RunListCreate.as_view(), name="api-reinference-runs"),
    path("reinference-runs/<int:pk>", runs.RunDetail.as_view(), name="api-reinference-run"),
    path("reinference-runs/<int:pk>/cancel", runs.RunCancel.as_view(), name="api-reinference-run-cancel"),
    path("reinference-runs/<int:pk>/results", runs.RunResults.as_view(), name="api-reinference-run-results"),
    path("reinference-runs/<int:pk>/summary", runs.RunSummary.as_view(), name="api-reinference-run-summary"),
]
