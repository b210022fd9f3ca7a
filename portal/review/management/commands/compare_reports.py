"""``manage.py compare_reports``: the discrepancy engine from the command line.

Single pair: ``--candidate FILE --reference FILE [--format json|text]``.
Batch: ``--batch PAIRS.jsonl`` reads lines ``{"id", "candidate", "reference"}`` and prints one JSON line
per pair; bad lines are reported on stderr with their line number and the rest still run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from inference.compare import compare

MAX_FILE_BYTES = 5 * 1_048_576


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CommandError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from exc


class Command(BaseCommand):
    """Compare an AI text with a signed text (or many pairs)."""

    help = "Compare AI text (candidate) with signed text (reference) and list the discrepancies."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--candidate", type=Path)
        parser.add_argument("--reference", type=Path)
        parser.add_argument("--batch", type=Path, help="JSON lines with id, candidate, reference")
        parser.add_argument("--format", choices=["json", "text"], default="json")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch"]:
            self._batch(options["batch"])
            return
        if not (options["candidate"] and options["reference"]):
            raise CommandError("give --candidate and --reference, or --batch")
        result = compare(_read(options["candidate"]), _read(options["reference"]))
        if options["format"] == "json":
            self.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
            return
        self.stdout.write(f"Suggested RADPEER: {result.radpeer}")
        for d in result.discrepancies:
            self.stdout.write(f"- [{d.significance}] {d.category} ({d.finding}): {d.explanation}")
        if not result.discrepancies:
            self.stdout.write("No discrepancies.")

    def _batch(self, path: Path) -> None:
        failed = 0
        try:
            handle = path.open(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        with handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    if not isinstance(item, dict):
                        raise ValueError("not a JSON object")
                    candidate, reference = item["candidate"], item["reference"]
                    if not isinstance(candidate, str) or not isinstance(reference, str):
                        raise ValueError("candidate and reference must be strings")
                    out = {"id": item.get("id"), **compare(candidate, reference).to_dict()}
                except (ValueError, KeyError, TypeError) as exc:
                    failed += 1
                    sys.stderr.write(f"line {number}: {type(exc).__name__}: {exc}\n")
                    continue
                self.stdout.write(json.dumps(out, ensure_ascii=False))
        if failed:
            sys.stderr.write(f"{failed} line(s) failed\n")
