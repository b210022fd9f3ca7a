"""``manage.py compare_pending``: compare, in this process, every study still awaiting its comparison."""

import time
from typing import Any

from django.core.management.base import BaseCommand

from portal.review import services
from portal.review.selectors import studies_awaiting_comparison


class Command(BaseCommand):
    """Catch up on comparisons (after a bulk import, or when no worker was running)."""

    help = "Compare every clinical AI draft that has a signed report but no comparison yet."

    def handle(self, *args: Any, **options: Any) -> None:
        started, done = time.monotonic(), 0
        while ids := studies_awaiting_comparison(limit=500):
            for study_id in ids:
                done += len(services.study_compare(study_id))
        self.stdout.write(f"compared {done} AI drafts in {time.monotonic() - started:.1f} s")
