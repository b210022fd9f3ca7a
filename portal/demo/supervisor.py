"""The demo's process supervisor: the web server runs until asked to stop; a dead worker is restarted.

A worker can die for reasons that are no reason to stop serving pages (an OOM kill, a crash in a
native library, an operator's ``kill -9``): the supervisor notices within a poll interval, writes one
line to the log and starts a new one. Work the dead worker held is not lost: unacknowledged messages
return to the queue and leased chunks or exports are taken again after their lease. A worker that dies
again and again is restarted with growing pauses (up to ``max_backoff``) so that a broken installation
does not spin. Only the web server's own exit, or a stop request, ends the supervision.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

Starter = Callable[[], subprocess.Popen]


def exit_description(returncode: int) -> str:
    """How a process ended, in words: "exit code 1" or "signal 9 (SIGKILL)"."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "unknown"
    return f"signal {-returncode} ({name})"


@dataclass
class Supervisor:
    """Runs ``start_web()`` and ``start_worker()`` processes; restarts the worker whenever it dies.

    ``log`` receives one line per start and per death (timestamps in UTC). ``poll`` is how often the
    processes are looked at; ``stable_after`` how long a worker must have lived for its next death to
    count as isolated (the pause before a restart is reset to ``min_backoff``).
    """

    start_web: Starter
    start_worker: Starter
    log: TextIO
    poll: float = 0.5
    min_backoff: float = 1.0
    max_backoff: float = 30.0
    stable_after: float = 60.0
    stop_requested: threading.Event = field(default_factory=threading.Event)
    web: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    restarts: int = 0
    _worker_started: float = 0.0

    def _say(self, message: str) -> None:
        self.log.write(f"{time.strftime('%H:%M:%S', time.gmtime())} supervisor: {message}\n")
        self.log.flush()

    def _start_worker(self) -> None:
        self.worker = self.start_worker()
        self._worker_started = time.monotonic()
        self._say(f"worker started (pid {self.worker.pid})")

    def start(self) -> None:
        """Start the web server and the first worker."""
        self.web = self.start_web()
        self._say(f"web server started (pid {self.web.pid})")
        self._start_worker()

    def run(self) -> int:
        """:meth:`start`, then :meth:`watch`."""
        self.start()
        return self.watch()

    def watch(self) -> int:
        """Supervise until a stop is requested or the web server exits; the web server's exit code.

        Both processes are stopped on the way out.
        """
        assert self.web is not None, "start() first"
        backoff = self.min_backoff
        restart_at: float | None = None
        try:
            while not self.stop_requested.wait(self.poll):
                if self.web.poll() is not None:
                    self._say(f"web server ended ({exit_description(self.web.returncode)}); stopping")
                    break
                now = time.monotonic()
                if restart_at is None and self.worker is not None and self.worker.poll() is not None:
                    backoff = self._worker_died(now, backoff)
                    restart_at = now + backoff
                if restart_at is not None and now >= restart_at:
                    restart_at = None
                    self.restarts += 1
                    self._start_worker()
        finally:
            self.stop()
        return self.web.returncode if self.web.returncode is not None else 0

    def _worker_died(self, now: float, backoff: float) -> float:
        """Clear up after a dead worker and say so; the pause before its restart."""
        assert self.worker is not None
        lived = now - self._worker_started
        orphans = self._end_orphaned_pool()
        # Dying again soon after a restart: something is broken, so pause longer each time.
        again_soon = lived < self.stable_after and self.restarts > 0
        backoff = min(backoff * 2, self.max_backoff) if again_soon else self.min_backoff
        how = exit_description(self.worker.returncode)
        self._say(
            f"worker (pid {self.worker.pid}) died after {lived:.0f} s ({how}); {orphans}"
            f"restarting in {backoff:g} s"
        )
        return backoff

    def _end_orphaned_pool(self) -> str:
        """Kill what is left of a dead worker's process group (its prefork pool); a note for the log.

        A worker killed outright leaves its pool processes running without a parent to feed or stop
        them; they hold memory and a model session, so they go too. Needs the worker started in its own
        process group (``start_worker(own_process_group=True)``); otherwise there is nothing to do.
        """
        assert self.worker is not None
        if os.getpgid(0) == self.worker.pid:
            return ""  # the worker shares our group: never signal ourselves
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.worker.pid, signal.SIGKILL)
            return "its pool processes ended; "
        return ""

    def stop(self, timeout: float = 20.0) -> None:
        """Ask both processes to stop (SIGTERM), wait up to ``timeout`` each, then kill what is left."""
        processes = [p for p in (self.web, self.worker) if p is not None]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
