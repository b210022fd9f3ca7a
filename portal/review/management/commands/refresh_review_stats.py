"""``manage.py refresh_review_stats``: recompute the dashboard figures now (beat does it periodically)."""

from django.core.management.base import BaseCommand

from portal.review.services import daily_stats_refresh


class Command(BaseCommand):
    """Recompute the daily rollup the dashboard and feedback pages read."""

    help = "Recompute the review dashboard's daily figures from the cases, studies and AI outputs."

    def handle(self, *args, **options) -> None:
        rows = daily_stats_refresh()
        self.stdout.write(f"{rows} daily figure rows written.")
