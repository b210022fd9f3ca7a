"""``manage.py export_committee_labels --output FILE.jsonl [--since YYYY-MM-DD]``: the committee's
verdicts as labelled pairs for ``python -m inference.compare.evaluate FILE.jsonl``.

The file holds report texts (PHI): it is written with owner-only permissions, and the export is
recorded in the audit log (counts and the file name, never the texts).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from audit import log as audit
from portal.review.labels import committee_labels


def _since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--since must be a date such as 2026-01-31, not {value[:40]!r}") from exc
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


class Command(BaseCommand):
    """Write the committee's verdicts as JSON lines the engine's evaluation reads."""

    help = "Export committee verdicts as labelled pairs (JSON lines) for inference.compare.evaluate."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--output", type=Path, required=True, help="the JSON-lines file to write")
        parser.add_argument("--since", help="only reviews submitted on or after this date (YYYY-MM-DD)")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _since(options.get("since"))
        path: Path = options["output"]
        if path.exists() and not path.is_file():
            raise CommandError(f"{path} is not a regular file")
        cases = labels = 0
        partial = path.with_name(path.name + ".partial")
        try:
            # Owner-only from the start: the texts are PHI.
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                for record in committee_labels(since=since):
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    cases += 1
                    labels += len(record["expected"])
            partial.replace(path)  # a reader never sees half a file
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise CommandError(f"cannot write {path}: {exc}") from exc
        with transaction.atomic():
            audit.record(
                "committee_labels.export",
                actor=None,
                object_type="committee_labels",
                details={"file": path.name, "cases": cases, "labels": labels, "since": options.get("since")},
            )
        self.stdout.write(f"{cases} reviewed cases, {labels} confirmed discrepancies written to {path}")
