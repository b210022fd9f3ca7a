"""App config for the review workflow."""

from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """Comparisons and discrepancies feed the QA queue; reviews and their verdicts are append-only."""

    name = "portal.review"
    label = "review"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from audit import immutability
        from portal.core.signals import stored_comparisons_wanted
        from portal.records.models import Clinician
        from portal.review.receivers import clinician_saved, stored_comparisons

        immutability.register("review_review", "review_discrepancyverdict")
        stored_comparisons_wanted.connect(stored_comparisons, dispatch_uid="review.stored_comparisons")
        post_save.connect(clinician_saved, sender=Clinician, dispatch_uid="review.clinician_saved")
