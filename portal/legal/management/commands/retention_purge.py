"""``manage.py retention_purge --before YYYY-MM-DD [--dry-run]``: delete old studies not under hold,
then clear the bodies of the inbound messages received before the date that no hold keeps."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from portal.core.dates import date_option
from portal.legal import inbound_retention, services


class Command(BaseCommand):
    """Purge the records of studies acquired before a date, keeping every study a legal hold covers."""

    help = (
        "Delete studies acquired before --before (portal time zone) with their AI outputs, signed "
        "reports, comparisons, discrepancies and labels, and their patient when no study remains. "
        "Studies under an active legal hold are kept. Each study is purged in its own transaction "
        "with a 'retention.purge' audit event; audit events are never purged. The command lifts the "
        "immutability triggers of records_aioutput and records_signedreport while it deletes: on "
        "PostgreSQL it must run as the owner of those tables (the migration role), not the runtime role. "
        "Then the raw bodies of inbound messages received before --before (HL7, FHIR, DICOM: PHI) are "
        "cleared, except where a record the message produced is under an active hold."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--before", required=True, type=date_option("--before"), help="cut-off date, YYYY-MM-DD"
        )
        parser.add_argument("--dry-run", action="store_true", help="report what would happen; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        verb = "would be purged" if dry_run else "purged"
        purged = kept = patients = 0
        for outcome in services.retention_purge(before=options["before"], dry_run=dry_run):
            if outcome.kept:
                kept += 1
                for hold in outcome.kept_by:
                    self.stdout.write(
                        f"study {outcome.study_id} kept: held by {hold.matter_reference} (hold {hold.pk})"
                    )
                continue
            purged += 1
            patients += outcome.patient_deleted
            rows = ", ".join(f"{name}={count}" for name, count in outcome.deleted.items())
            self.stdout.write(f"study {outcome.study_id} {verb}: {rows}")
        prefix = "dry run: " if dry_run else ""
        # After the studies: a message about a purged study no longer names a record a hold could cover.
        inbound = inbound_retention.inbound_purge(before=options["before"], dry_run=dry_run)
        cleared = "would be cleared" if dry_run else "cleared"
        self.stdout.write(
            f"{prefix}{inbound.cleared} inbound message bodies {cleared} ({inbound.bytes_cleared} bytes), "
            f"{inbound.kept_held} kept under legal hold, {inbound.kept_unresolved} kept (record kind unknown)"
        )
        # The studies' summary stays the last line (scripts read it).
        self.stdout.write(
            f"{prefix}{purged} studies {verb}, {kept} kept under legal hold, {patients} patients {verb}"
        )
