"""Brokers that are down, for tests: a closed port, a listener that hangs up, and an app sending there."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

from celery import Celery, current_app


def free_port() -> int:
    """A local port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HangingUpBroker:
    """A TCP listener that accepts each connection and closes it at once, counting the attempts."""

    def __init__(self, port: int) -> None:
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.server.close()


@contextlib.contextmanager
def broker_at(port: int, *, password: str = "") -> Iterator[Celery]:
    """A Celery app sending to Redis on ``port`` made the current app for the duration.

    Celery's ``broker_url`` prefers the CELERY_BROKER_URL environment variable over the app's own
    setting, so the variable is lifted for the duration (CI exports it for the real broker).
    """
    previous = current_app._get_current_object()
    exported = os.environ.pop("CELERY_BROKER_URL", None)
    auth = f":{password}@" if password else ""
    app = Celery("broker-test", broker=f"redis://{auth}127.0.0.1:{port}/0", set_as_current=True)
    app.conf.broker_connection_timeout = 2
    try:
        yield app
    finally:
        app.close()
        previous.set_current()
        if exported is not None:
            os.environ["CELERY_BROKER_URL"] = exported


def wait_for_port(port: int) -> None:
    """Wait until something listens on ``port``."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")
