"""``manage.py audit_checkpoint``: sign the current tree head now (beat does it periodically)."""

from typing import Any

from django.core.management.base import BaseCommand

from audit.checkpoints import create_checkpoint


class Command(BaseCommand):
    """Write a signed checkpoint of the audit log."""

    help = "Sign and store the audit log's current tree head."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = create_checkpoint()
        if checkpoint is None:
            self.stdout.write("no new events since the last checkpoint")
        else:
            self.stdout.write(f"checkpoint: size {checkpoint.tree_size}, root {checkpoint.root_hash}")
