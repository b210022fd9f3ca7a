"""``manage.py import_dicom DIR [--account USERNAME]``: register the studies of a folder of DICOM files.

Every DICOM Part 10 file under DIR (recursively) has its header read and its study stored exactly as
``POST /api/v1/dicom`` stores an upload, so a rerun over the same folder changes nothing. Files that are
not DICOM at all are skipped silently by the walker; DICOM files that cannot be read or stored are
reported on stderr by file name and reason only (never a header value: those are patient data) and
make the command exit with status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import log as audit
from portal.accounts.roles import can_ingest
from portal.core.errors import RecordError
from portal.records import ingest
from portal.records.dicom import iter_dicom_files, read_study_header
from portal.records.payloads import AdapterError


def _reason(exc: AdapterError | RecordError) -> str:
    """A PHI-free reason: adapter messages describe rules, record errors are reduced to code and field.

    Record messages can quote stored keys (an accession number), so only their code and field are shown.
    """
    if isinstance(exc, AdapterError):
        where = f" ({exc.location})" if exc.location else ""
        return f"{exc.code}: {exc.message}{where}"
    where = f" ({exc.field})" if exc.field else ""
    return f"{exc.code}{where}"


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
            try:
                payload = read_study_header(path, max_bytes=settings.CONCORDANCE_MAX_UPLOAD_BYTES)
                result = ingest.dicom_study(payload, actor=actor, context=context)
            except (AdapterError, RecordError) as exc:
                failed += 1
                self.stderr.write(f"{name}: {_reason(exc)}")
                continue
            if result.created:
                imported += 1
            else:
                present += 1
        self.stdout.write(f"imported {imported}, already present {present}, failed {failed}")
        if failed:
            raise CommandError(f"{failed} file(s) could not be imported.", returncode=1)

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
