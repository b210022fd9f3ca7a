"""URLs of the review API (mounted at /api/v1/): ad hoc comparison of two texts."""

from django.urls import path

from portal.review.api.views import CompareView

urlpatterns = [
    path("compare", CompareView.as_view(), name="api-compare"),
]
