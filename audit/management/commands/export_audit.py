"""``manage.py export_audit``: the audit log as a FHIR R4 Bundle (JSON) or as ATNA XML messages.

Streams: events are read with a server-side iterator in chunks of 1000 and written as they come, so a
million-event export uses the memory of one chunk. With ``--out`` the file is written next to its final
name and moved into place at the end, so a reader never sees half an export.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.interop import atna_message, fhir_audit_event
from audit.models import AuditEvent

CHUNK_SIZE = 1000


def events_between(from_seq: int | None, to_seq: int | None) -> Iterator[AuditEvent]:
    """The events with ``from_seq <= seq <= to_seq`` (bounds optional), in log order, streamed."""
    events = AuditEvent.objects.order_by("seq")
    if from_seq is not None:
        events = events.filter(seq__gte=from_seq)
    if to_seq is not None:
        events = events.filter(seq__lte=to_seq)
    return events.iterator(chunk_size=CHUNK_SIZE)


def write_fhir(events: Iterator[AuditEvent], out: IO[str]) -> int:
    """Write a FHIR ``collection`` Bundle entry by entry; the number of entries written.

    The Bundle is assembled as text rather than validated as a whole (that would hold it in memory);
    each AuditEvent is validated by :func:`fhir_audit_event`, and the envelope is fixed.
    """
    envelope = {"resourceType": "Bundle", "type": "collection", "timestamp": timezone.now().isoformat()}
    head = json.dumps(envelope, ensure_ascii=False)
    out.write(head[:-1] + ', "entry": [\n')
    count = 0
    for event in events:
        entry = {"fullUrl": f"urn:concordance:audit-event:{event.seq}", "resource": fhir_audit_event(event)}
        out.write((",\n" if count else "") + json.dumps(entry, ensure_ascii=False))
        count += 1
    out.write("\n]}\n")
    return count


def write_atna(events: Iterator[AuditEvent], out: IO[str]) -> int:
    """Write one ATNA ``AuditMessage`` XML document per line; the number written."""
    count = 0
    for event in events:
        out.write(atna_message(event) + "\n")
        count += 1
    return count


class Command(BaseCommand):
    """Export a range of the audit log for an audit repository or an auditor."""

    help = "Export audit events as a FHIR R4 Bundle (JSON) or ATNA audit messages (one XML per line)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=["fhir", "atna"], required=True)
        parser.add_argument("--from-seq", type=int, default=None, help="first seq to export (inclusive)")
        parser.add_argument("--to-seq", type=int, default=None, help="last seq to export (inclusive)")
        parser.add_argument("--out", default=None, help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        from_seq, to_seq = options["from_seq"], options["to_seq"]
        if from_seq is not None and to_seq is not None and from_seq > to_seq:
            raise CommandError(f"--from-seq {from_seq} is after --to-seq {to_seq}")
        writer = write_fhir if options["format"] == "fhir" else write_atna
        events = events_between(from_seq, to_seq)

        if options["out"] is None:
            count = writer(events, self.stdout)
            self.stderr.write(f"exported {count} events")
            return

        target = Path(options["out"])
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                count = writer(events, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        self.stdout.write(f"exported {count} events to {target}")
