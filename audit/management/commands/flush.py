"""``manage.py flush`` that works with the immutability triggers.

Flushing wipes a whole database: it is for test databases and disposable demo installs. It needs the
tables' owner on PostgreSQL (the runtime role cannot disable the triggers).
"""

from typing import Any

from django.core.management.commands import flush
from django.db import connections

from audit import immutability, sequencer
from audit.models import AuditEvent


class Command(flush.Command):
    """Django's flush, with the immutability triggers lifted while it runs."""

    def handle(self, **options: Any) -> None:
        connection = connections[options["database"]]
        with immutability.suspended(connection):
            super().handle(**options)
        if not AuditEvent.objects.using(options["database"]).exists():  # not when the flush was declined
            sequencer.reset(connection)  # an empty log numbers its first event 0 again
