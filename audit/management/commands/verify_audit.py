"""``manage.py verify_audit``: recompute the leaves and check every checkpoint.

Exit status: 0 intact, 1 the evidence fails (tampering or loss), 2 cannot verify (environment: the
signing key file is missing or unreadable while signed checkpoints exist).
"""

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import VerificationOrigin
from audit.verify import verify_and_store


class Command(BaseCommand):
    """Verify the audit log and print a one-line summary."""

    help = (
        "Verify the audit log: incrementally from the last verified checkpoint by default, every event "
        "with --full (one process per core)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--full", action="store_true", help="recompute every event, not only new ones")
        parser.add_argument("--workers", type=int, default=None, help="processes for --full (default: cores)")
        parser.add_argument(
            "--origin",
            choices=[VerificationOrigin.COMMAND, VerificationOrigin.STARTUP],
            default=VerificationOrigin.COMMAND,
            help="what the auditor's page says started it (the demo passes 'startup')",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        workers = options["workers"]
        if workers is not None and not 1 <= workers <= 256:
            raise CommandError("--workers must be between 1 and 256")
        try:
            verdict, _ = verify_and_store(full=options["full"], workers=workers, origin=options["origin"])
        except (FileNotFoundError, PermissionError, ValueError) as exc:
            # Signed checkpoints exist but their key cannot be read: nothing can be vouched for.
            raise CommandError(f"cannot verify: {exc}", returncode=2) from exc
        if verdict.ok:
            self.stdout.write(verdict.summary())
            return
        self.stderr.write(verdict.summary())
        sys.exit(1)
