"""App config for the review workflow."""

from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """Comparisons and discrepancies feed the QA queue."""

    name = "portal.review"
    label = "review"
