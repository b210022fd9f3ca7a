"""ship_audit against a real TCP syslog listener: octet-counted frames, exactly the pending events, resume."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import xml.etree.ElementTree as ET  # noqa: S405 - parsing our own output in tests
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.audit.conftest import append_events


class SyslogCollector:
    """A TCP listener on 127.0.0.1:<free port> that splits RFC 6587 octet-counted frames."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.records: list[bytes] = []
        self.connections = 0
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            with self.changed:
                self.connections += 1
            with conn:
                buffer = b""
                while chunk := conn.recv(65536):
                    buffer += chunk
                    buffer = self._take_frames(buffer)

    def _take_frames(self, buffer: bytes) -> bytes:
        while b" " in buffer:
            length_text, _, rest = buffer.partition(b" ")
            length = int(length_text)
            if len(rest) < length:
                break
            with self.changed:
                self.records.append(rest[:length])
                self.changed.notify_all()
            buffer = rest[length:]
        return buffer

    def wait_for(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """Wait until ``count`` records arrived; all records so far."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.records) >= count, timeout=timeout)
            return list(self.records)

    def seqs(self, records: list[bytes]) -> list[int]:
        """The audit seq each record's ATNA message carries."""
        found = []
        for record in records:
            xml = record.split(b"\xef\xbb\xbf", 1)[1]
            root = ET.fromstring(xml)  # noqa: S314 - our own output
            entry = root.findall("ParticipantObjectIdentification")[-1].get("ParticipantObjectID")
            found.append(int(entry.removeprefix("AuditEvent/")))
        return found

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def collector() -> Iterator[SyslogCollector]:
    server = SyslogCollector()
    yield server
    server.close()


@pytest.fixture
def position(tmp_path: Path) -> Path:
    return tmp_path / "ship.position"


def _ship(collector: SyslogCollector, position: Path, *extra: str) -> None:
    call_command(
        "ship_audit", "--syslog", f"127.0.0.1:{collector.port}", "--position", str(position), "--once", *extra
    )


@pytest.mark.django_db
def test_ships_every_event_once_then_resumes_with_only_the_new_ones(collector, position):
    first = append_events(7)

    _ship(collector, position, "--batch", "3")  # three batches: 3 + 3 + 1
    records = collector.wait_for(7)
    assert collector.seqs(records) == first
    for record in records:
        assert record.startswith(b"<85>1 ")
    assert json.loads(position.read_text()) == {"next_seq": 7, "target": f"127.0.0.1:{collector.port}"}

    connections = collector.connections
    _ship(collector, position)  # nothing pending: no connection, nothing sent
    time.sleep(0.1)
    assert collector.connections == connections and len(collector.records) == 7

    new = append_events(3, prefix="later")
    _ship(collector, position)
    records = collector.wait_for(10)
    assert collector.seqs(records[7:]) == new
    assert len(collector.wait_for(11, timeout=0.2)) == 10  # exactly those three, nothing resent
    assert json.loads(position.read_text())["next_seq"] == 10


@pytest.mark.django_db
def test_connection_refused_is_a_command_error_and_keeps_the_position(position):
    append_events(2)
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed_port = probe.getsockname()[1]  # free once closed: nothing listens there
    position.write_text(json.dumps({"next_seq": 1, "target": f"127.0.0.1:{closed_port}"}))
    before = position.read_text()

    with pytest.raises(CommandError, match="cannot ship audit events"):
        call_command(
            "ship_audit", "--syslog", f"127.0.0.1:{closed_port}", "--position", str(position), "--once"
        )

    assert position.read_text() == before


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["localhost", "localhost:", ":514", "host:port", "host:0", "host:70000"])
def test_bad_target_is_a_command_error(target, position):
    with pytest.raises(CommandError, match="HOST:PORT"):
        call_command("ship_audit", "--syslog", target, "--position", str(position), "--once")


@pytest.mark.django_db
def test_a_position_for_another_target_is_refused(collector, position):
    append_events(1)
    position.write_text(json.dumps({"next_seq": 0, "target": "elsewhere:6514"}))
    with pytest.raises(CommandError, match="belongs to elsewhere:6514"):
        _ship(collector, position)
    assert collector.connections == 0


@pytest.mark.django_db
def test_default_position_lives_in_var_dir(collector, settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    append_events(2)
    call_command("ship_audit", "--syslog", f"127.0.0.1:{collector.port}", "--once")
    assert json.loads((tmp_path / "var" / "ship_audit.position").read_text())["next_seq"] == 2


@pytest.mark.django_db
def test_polling_mode_ships_and_stops_on_sigterm(collector, position):
    """Without --once the shipper polls until SIGTERM; it ships what is pending on its first poll."""
    seqs = append_events(4)
    original = signal.getsignal(signal.SIGTERM)

    def stop_when_shipped() -> None:
        collector.wait_for(4)
        # Only while the command's handler is installed: the default one would end the test run.
        if signal.getsignal(signal.SIGTERM) is not original:
            os.kill(os.getpid(), signal.SIGTERM)  # the command sets its stop flag and returns

    killer = threading.Thread(target=stop_when_shipped, daemon=True)
    killer.start()
    started = time.monotonic()
    call_command(
        "ship_audit",
        "--syslog",
        f"127.0.0.1:{collector.port}",
        "--position",
        str(position),
        "--interval",
        "30",
    )
    killer.join(timeout=5)

    assert time.monotonic() - started < 10  # woke from the 30 s sleep as soon as the signal came
    assert collector.seqs(collector.wait_for(4)) == seqs
    assert signal.getsignal(signal.SIGTERM) is original  # the previous handler is restored
