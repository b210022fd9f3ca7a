"""``manage.py import_dicom DIR [--account USERNAME]``: register the studies of a folder of DICOM files.

Every DICOM Part 10 file under DIR (recursively) has its header read and its study stored exactly as
``POST /api/v1/dicom`` stores an upload, so a rerun over the same folder changes nothing. Files that are
not DICOM at all are skipped silently by the walker; DICOM files that cannot be read or stored are
reported on stderr by file name and reason only (never a header value: those are patient data) and
make the command exit with status 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import log as audit
from portal.accounts.roles import can_ingest
from portal.records.ingest import channels
from portal.records.ingest.dicom import iter_dicom_files
from portal.records.ingest.inbound import Answer
from portal.records.models import InboundChannel, InboundOutcome


def _reason(answer: Answer) -> str:
    """The refusal as one line: code, message (which names fields, never values) and where."""
    data = json.loads(answer.body)
    where = f" ({data['field']})" if data.get("field") else ""
    return f"{data.get('error', 'refused')}: {data.get('detail', '')}{where}"


class Command(BaseCommand):
    """Import the studies described by the DICOM files of a folder."""

    help = "Read every DICOM file under DIR and store its study (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help="folder to walk (recursively)")
        parser.add_argument(
            "--account", default=None, help="integration account to record as the actor (default: system)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        directory: Path = options["directory"]
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a folder.")
        actor = self._actor(options["account"])
        context = audit.AuditContext(channel="import_dicom")
        imported = present = failed = 0
        for path in iter_dicom_files(directory):
            name = path.relative_to(directory)
            answer = self._receive(path, actor, context)
            if answer.status >= 400:
                failed += 1
                self.stderr.write(f"{name}: {_reason(answer)}")
            elif answer.status == 201:
                imported += 1
            else:
                present += 1
        self.stdout.write(f"imported {imported}, already present {present}, failed {failed}")
        if failed:
            raise CommandError(f"{failed} file(s) could not be imported.", returncode=1)

    @staticmethod
    def _receive(path: Path, actor: AbstractBaseUser | None, context: audit.AuditContext) -> Answer:
        """One file through the DICOM channel (logged like an upload); oversized files are not read."""
        limit = settings.CONCORDANCE_MAX_UPLOAD_BYTES
        if path.stat().st_size > limit:
            body = json.dumps({"error": "too_large", "detail": f"file larger than {limit} bytes"})
            return Answer(413, body.encode("utf-8"), "application/json", InboundOutcome.REJECTED)
        return channels.receive(
            channel=InboundChannel.DICOM,
            body=path.read_bytes(),
            content_type="application/dicom",
            actor=actor,
            context=context,
        )

    @staticmethod
    def _actor(username: str | None) -> AbstractBaseUser | None:
        """The account to attribute the import to; None records it as the system."""
        if username is None:
            return None
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active account named {username!r}.")
        if not can_ingest(user):
            raise CommandError(f"The account {username!r} may not write clinical records.")
        return user
