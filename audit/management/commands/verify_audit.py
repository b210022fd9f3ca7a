"""``manage.py verify_audit``: recompute every leaf and checkpoint; exit 0 when intact, 1 otherwise."""

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.verify import verify_and_store


class Command(BaseCommand):
    """Verify the audit log end to end and print a one-line summary."""

    help = "Verify every audit event, signed checkpoint and consistency proof."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            verdict, _ = verify_and_store()
        except (FileNotFoundError, PermissionError, ValueError) as exc:
            # The signing key is needed to check checkpoints; without it nothing can be vouched for.
            raise CommandError(f"cannot verify: {exc}") from exc
        if verdict.ok:
            self.stdout.write(verdict.summary())
            return
        self.stderr.write(verdict.summary())
        sys.exit(1)
