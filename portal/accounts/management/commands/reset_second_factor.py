"""``manage.py reset_second_factor USERNAME --reason TEXT``: remove a user's TOTP devices (lost phone).

The user enrols a new device at the next sign-in (forced if their role requires it). Audited.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import log as audit
from portal.accounts import services


class Command(BaseCommand):
    """Reset a user's second factor, with the reason in the audit log."""

    help = "Remove a user's TOTP devices so that they can enrol a new one (audited)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--reason", required=True, help="why (a ticket number); kept in the audit log")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user named {options['username']!r}.")
        try:
            removed = services.second_factor_reset(
                user=user, reason=options["reason"], context=audit.AuditContext(channel="manage.py")
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Removed {removed} device(s) of {user.get_username()}.")
