"""``manage.py export_package --accession A [...] --matter REF --reason TEXT --out FILE.zip``.

The same request, builder and audit events as the API, run synchronously in this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import log as audit
from portal.core.dates import date_option
from portal.core.errors import RecordError
from portal.legal import export_jobs
from portal.legal.models import ExportStatus


class Command(BaseCommand):
    """Build a signed legal export package for a scope and write it to --out."""

    help = (
        "Build a legal export package (signed ZIP with records, audit events and proofs, FHIR bundle, PDF, "
        "load file and verifier). Scope: any of --accession (repeatable), --patient, --model NAME:VERSION, "
        "narrowed by --from/--to (or a date range alone). The request and the build are audited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--accession", action="append", default=[], help="accession number (repeatable)")
        parser.add_argument("--patient", help="patient MRN")
        parser.add_argument(
            "--from", dest="date_from", type=date_option("--from"), help="first study day, YYYY-MM-DD"
        )
        parser.add_argument(
            "--to", dest="date_to", type=date_option("--to"), help="last study day, YYYY-MM-DD"
        )
        parser.add_argument("--model", help="every study a model version touched, NAME:VERSION")
        parser.add_argument("--matter", required=True, help="the matter reference")
        parser.add_argument("--reason", required=True, help="why the package is made")
        parser.add_argument("--out", required=True, type=Path, help="the ZIP to write")
        parser.add_argument("--deidentify", action="store_true", help="de-identified variant (PS3.15 basic)")
        parser.add_argument("--user", help="record the request as this user (must hold the legal role)")

    def handle(self, *args: Any, **options: Any) -> None:
        out: Path = options["out"].resolve()
        if out.exists():
            raise CommandError(f"{out} exists; choose a new file name (packages are never overwritten)")
        if not out.parent.is_dir():
            raise CommandError(f"{out.parent} is not a directory")
        actor = None
        if options["user"]:
            actor = get_user_model().objects.filter(username=options["user"]).first()
            if actor is None:
                raise CommandError(f"no user {options['user']!r}")
        try:
            package = export_jobs.export_request(
                actor=actor,
                context=audit.AuditContext(channel="manage.py export_package"),
                matter_reference=options["matter"],
                reason=options["reason"],
                patient_mrn=options["patient"],
                accession_numbers=options["accession"] or None,
                date_from=options["date_from"],
                date_to=options["date_to"],
                model=options["model"],
                deidentify=options["deidentify"],
                enqueue=False,
            )
        except RecordError as exc:
            raise CommandError(exc.message) from exc
        built = export_jobs.export_build(package_pk=package.pk, out_path=out)
        if built is None or built.status != ExportStatus.READY:
            message = built.error if built is not None else "the job was taken by another process"
            raise CommandError(message)
        self.stdout.write(f"package {built.package_id} written to {out}")
        self.stdout.write(f"sha256 {built.sha256}  size {built.size} bytes")
