"""App config for the review workflow."""

from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """Comparisons and discrepancies feed the QA queue; reviews and their verdicts are append-only."""

    name = "portal.review"
    label = "review"

    def ready(self) -> None:
        from audit import immutability
        from portal.core.signals import stored_comparisons_wanted
        from portal.review.receivers import stored_comparisons

        immutability.register("review_review", "review_discrepancyverdict")
        stored_comparisons_wanted.connect(stored_comparisons, dispatch_uid="review.stored_comparisons")
