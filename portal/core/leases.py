"""Lease heartbeats: the process doing leased work renews its lease while it is alive.

Leased work (a re-inference chunk, a legal export build) is claimed for a short time, ``lease``
seconds. While the work runs, a daemon thread of the same process renews the lease every
:func:`renew_interval` seconds, so a slow but living worker keeps its work however long it takes, and a
dead one (SIGKILL, OOM kill, a crashed machine) stops renewing: its work is free again within one lease
and the app's reaper hands it to another worker. The lease length no longer has to exceed the longest
job, so it can be short (30 s by default) and lost work is noticed in seconds, not minutes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from django.conf import settings
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


def renew_interval(lease_seconds: float) -> float:
    """How often to renew a lease of ``lease_seconds``: LEASE_RENEW_SECONDS, at most a third of it.

    A third leaves two renewals to fail (a database blip) before the lease runs out.
    """
    return max(0.05, min(float(settings.LEASE_RENEW_SECONDS), lease_seconds / 3))


class LeaseHeartbeat:
    """A context manager that calls ``renew()`` every ``every`` seconds from a thread while it is open.

    ``renew`` extends the lease and returns whether it still held it; once it returns False (the
    lease was taken over, the job cancelled or finished elsewhere) the heartbeat stops and
    :attr:`lost` says so, for the work to check before it stores anything. A database error in one
    renewal is logged and the next renewal tried; the thread's database connection is closed at the end.
    """

    def __init__(self, renew: Callable[[], bool], *, every: float, what: str) -> None:
        self.renew = renew
        self.every = every
        self.what = what  # for log lines: ids only, no PHI
        self.renewals = 0
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-heartbeat {what}", daemon=True)

    @property
    def lost(self) -> bool:
        """Whether a renewal found the lease no longer ours."""
        return self._lost.is_set()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    still_ours = self.renew()
                except DatabaseError as error:
                    failure = type(error).__name__
                    logger.warning("%s: lease renewal failed (%s); trying again", self.what, failure)
                    continue
                if not still_ours:
                    logger.warning("%s: lease no longer ours; heartbeat stopped", self.what)
                    self._lost.set()
                    return
                self.renewals += 1
        finally:
            connection.close()  # this thread's own connection, opened by the renewals

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=max(5.0, self.every * 2))
