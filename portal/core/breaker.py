"""A circuit breaker: after a failure, stop calling what failed for a while instead of waiting on it.

Used around enqueueing (:mod:`.enqueue`): with the broker down, each send costs a connection attempt
and kombu's retries (about 0.6 s on a refused connection). Once one send has failed, the breaker is
*open* and every caller skips the send at once for ``cooldown`` seconds; then it lets exactly one
caller try (*half-open*): success closes it, failure opens it for another ``cooldown``. Skipped work is
not lost: every enqueue has a periodic catch-up (sweeper or reaper) that re-sends from the database.

State is per process (each gunicorn worker learns of an outage by its own first failure), guarded by a
lock because gunicorn threads share it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    """Closed: calls go through. Open: calls are skipped. Half-open: one trial call is under way."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Counts consecutive failures; ``failures`` of them open the circuit for ``cooldown`` seconds.

    ``clock`` is injectable so that a test may step time; it defaults to :func:`time.monotonic`.
    """

    name: str
    failures: int = 1
    cooldown: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _state: BreakerState = BreakerState.CLOSED
    _failed: int = 0
    _opened_at: float = 0.0
    _last_error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allow(self) -> bool:
        """Whether the caller may try now. In half-open state only the first caller gets ``True``."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN and self.clock() - self._opened_at >= self.cooldown:
                self._state = BreakerState.HALF_OPEN
                return True
            return False

    def succeeded(self) -> None:
        """Record a successful call: the circuit closes and the failure count starts again."""
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failed = 0
            self._last_error = ""

    def failed(self, error: BaseException) -> None:
        """Record a failed call; open the circuit on the ``failures``-th in a row or a failed trial."""
        with self._lock:
            self._failed += 1
            # The exception's class only: a broker error message may carry a URL with credentials.
            self._last_error = type(error).__name__
            if self._state is BreakerState.HALF_OPEN or self._failed >= self.failures:
                self._state = BreakerState.OPEN
                self._opened_at = self.clock()

    def snapshot(self) -> dict[str, object]:
        """The state for a health report: state, consecutive failures, seconds until the next trial."""
        with self._lock:
            retry_in = 0.0
            if self._state is BreakerState.OPEN:
                retry_in = max(0.0, self.cooldown - (self.clock() - self._opened_at))
            return {
                "state": self._state.value,
                "consecutive_failures": self._failed,
                "retry_in_seconds": round(retry_in, 1),
                "last_error": self._last_error,
            }

    def reset(self) -> None:
        """Close the circuit and forget failures (a new broker configuration, or between tests)."""
        self.succeeded()
