"""``manage.py assign_by_rules --as USERNAME``: route waiting review cases by the active rules.

The same service as the page's "Assign by rules" button; the named account (a QA chair or an admin)
is the actor the audit log and the assignments record. Run it from cron or a scheduler as often as
new cases should reach reviewers; a run only takes what is still unassigned.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import log as audit
from portal.core.errors import RecordError
from portal.peer import routing


class Command(BaseCommand):
    """Assign unassigned cases to reviewers by subspecialty and quota, never to the signer."""

    help = "Assign waiting review cases to reviewers by the assignment rules (subspecialty, quota)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as", dest="username", required=True, help="the QA chair or admin acting")
        parser.add_argument(
            "--limit", type=int, default=routing.MAX_PER_RUN, help=f"cases per run (1-{routing.MAX_PER_RUN})"
        )

    def handle(self, *args: Any, username: str, limit: int, **options: Any) -> None:
        actor = get_user_model().objects.filter(username=username, is_active=True).first()
        if actor is None:
            raise CommandError(f"No active account named {username!r}.")
        try:
            outcome = routing.routing_run(
                actor=actor, context=audit.AuditContext(channel="manage.py assign_by_rules"), limit=limit
            )
        except RecordError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"run {outcome.run.pk}: {outcome.routed} of {outcome.considered} waiting case(s) assigned"
            + "".join(f"; reviewer {k}: {v}" for k, v in sorted(outcome.per_reviewer.items()))
        )
