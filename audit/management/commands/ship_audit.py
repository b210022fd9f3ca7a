"""``manage.py ship_audit``: send the audit log to an ATNA audit record repository over syslog/TCP.

Each event becomes one DICOM PS3.15 A.5 audit message in an RFC 5424 record, framed by RFC 6587
octet counting (IHE ITI-20). Shipping resumes where it stopped: the next seq to send is kept in a
position file, ``{"next_seq": N, "target": "host:port"}``, replaced atomically (temporary file +
``os.replace``) only *after* a batch has been handed to the connection.

Delivery is at-least-once: a crash between a batch's send and the position write resends that one
batch (at most ``--batch`` events) on the next run. Repositories can dedupe redelivered records by
the message's EventID + EventDateTime, or exactly by the ``AuditEvent/<seq>`` participant object
every message carries. Plain syslog over TCP has no application-level acknowledgement, so "sent"
means accepted by the local TCP stack; ITI-20 deployments put TLS (a stunnel/rsyslog relay) in front.

Without ``--once`` the command polls every ``--interval`` seconds (5 by default) until SIGINT or
SIGTERM, finishing the batch in progress first; a failed connection is reported and retried at the
next poll. With ``--once`` it ships what is pending and exits, and a failure is a ``CommandError``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.interop import atna_message, syslog_frame
from audit.models import AuditEvent

CONNECT_TIMEOUT_S = 10.0


def parse_target(value: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6addr]:port"`` -> ``(host, port)``; ``CommandError`` when malformed."""
    host, sep, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise CommandError(f"--syslog must be HOST:PORT with a port in 1..65535, not {value!r}")
    return host, int(port_text)


def read_position(path: Path, target: str) -> int:
    """The next seq to send to ``target`` (0 when nothing was shipped yet)."""
    if not path.exists():
        return 0
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        next_seq, saved_target = int(state["next_seq"]), str(state["target"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"unreadable position file {path}: {exc}") from exc
    if saved_target != target:
        # A position for another repository says nothing about what this one holds. Refusing is safer
        # than guessing (starting over would flood it, resuming could skip events).
        raise CommandError(
            f"position file {path} belongs to {saved_target}, not {target}; use --position to keep one "
            "file per repository"
        )
    return next_seq


def write_position(path: Path, target: str, next_seq: int) -> None:
    """Replace the position file atomically, so a crash leaves the old or the new position, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"next_seq": next_seq, "target": target}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    """Ship audit events to a syslog (ATNA) repository, resuming from the last shipped seq."""

    help = "Send audit events as ATNA messages over syslog/TCP (RFC 5424 + RFC 6587), resuming."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--syslog", required=True, metavar="HOST:PORT", help="repository address")
        parser.add_argument("--batch", type=int, default=500, help="events per send (default 500)")
        parser.add_argument("--once", action="store_true", help="ship what is pending, then exit")
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
        parser.add_argument("--position", default=None, help="position file (default VAR_DIR)")

    def handle(self, *args: Any, **options: Any) -> None:
        target = options["syslog"]
        address = parse_target(target)
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        position = Path(options["position"] or Path(settings.VAR_DIR) / "ship_audit.position")
        self.stop = threading.Event()

        if options["once"]:
            sent = self.ship_pending(address, target, position, options["batch"])
            self.stdout.write(f"shipped {sent} events to {target}")
            return

        previous = self._install_signal_handlers()
        try:
            while not self.stop.is_set():
                try:
                    sent = self.ship_pending(address, target, position, options["batch"])
                    if sent:
                        self.stdout.write(f"shipped {sent} events to {target}")
                except CommandError as exc:
                    # A repository outage must not kill the shipper; the position is intact, retry later.
                    self.stderr.write(f"{exc}; retrying in {options['interval']} s")
                self.stop.wait(options["interval"])
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _install_signal_handlers(self) -> dict[int, Any]:
        """Turn SIGINT/SIGTERM into a request to stop after the current batch (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: self.stop.set())
        return previous

    def ship_pending(self, address: tuple[str, int], target: str, position: Path, batch: int) -> int:
        """Send every event from the saved position on, batch by batch; the number sent.

        Opens a connection only when something is pending. The position is written after each batch,
        so an error mid-way keeps the batches already sent and resends only the failed one.
        """
        next_seq = read_position(position, target)
        if not AuditEvent.objects.filter(seq__gte=next_seq).exists():
            return 0
        hostname = socket.gethostname()
        sent = 0
        try:
            with socket.create_connection(address, timeout=CONNECT_TIMEOUT_S) as conn:
                while not self.stop.is_set():
                    events = list(AuditEvent.objects.filter(seq__gte=next_seq).order_by("seq")[:batch])
                    if not events:
                        break
                    payload = b"".join(syslog_frame(atna_message(e), hostname=hostname) for e in events)
                    conn.sendall(payload)
                    next_seq = events[-1].seq + 1
                    write_position(position, target, next_seq)
                    sent += len(events)
                    if len(events) < batch:
                        break
                # Half-close so the repository sees a clean end of stream after the last frame, rather
                # than a reset if the socket were torn down with data still queued.
                conn.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise CommandError(
                f"cannot ship audit events to {target}: {exc} (position stays at seq {next_seq})"
            ) from exc
        return sent
