"""App config for the review workflow."""

from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """Comparisons and discrepancies feed the QA queue; reviews and their verdicts are append-only."""

    name = "portal.review"
    label = "review"

    def ready(self) -> None:
        from audit import immutability

        immutability.register("review_review", "review_discrepancyverdict")
