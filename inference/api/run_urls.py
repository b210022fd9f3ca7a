"""URLs of the re-inference run API (mounted at /api/v1/)."""

from django.urls import path

from inference.api import runs

urlpatterns = [
    path("reinference-runs", runs.RunListCreate.as_view(), name="api-reinference-runs"),
    path("reinference-runs/<int:pk>", runs.RunDetail.as_view(), name="api-reinference-run"),
    path("reinference-runs/<int:pk>/cancel", runs.RunCancel.as_view(), name="api-reinference-run-cancel"),
    path("reinference-runs/<int:pk>/results", runs.RunResults.as_view(), name="api-reinference-run-results"),
    path("reinference-runs/<int:pk>/summary", runs.RunSummary.as_view(), name="api-reinference-run-summary"),
]
