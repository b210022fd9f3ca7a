"""Health of the moving parts: database, broker, workers. One report for the JSON endpoint and the page.

Each probe answers within about a second whatever is broken: the database with ``SELECT 1``, the
broker with one connection attempt (skipped while this process's enqueue circuit is open: it already
knows), the workers with Celery's ``ping`` broadcast (every running worker answers with its name).
Nothing here reads clinical data, so a report may go to a monitoring system as it is.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection

from portal.core.enqueue import broker_breaker


@dataclass
class Component:
    """One part's state: ``ok``, ``down`` or ``unknown`` (could not be asked), and a sentence why."""

    name: str
    state: str
    detail: str
    latency_ms: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def check_database() -> Component:
    """Can this process run a query on the default database now?"""
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # noqa: BLE001 - any failure means "down"; the class says which
        return Component("database", "down", f"query failed ({type(error).__name__})", _elapsed_ms(started))
    return Component("database", "ok", f"{connection.vendor} answers", _elapsed_ms(started))


def check_broker() -> Component:
    """Can this process reach the message broker? Includes the enqueue circuit breaker's state."""
    breaker = broker_breaker().snapshot()
    transport = current_app.conf.broker_url.split("://", 1)[0]  # never the URL: it may hold a password
    facts = {"transport": transport, "enqueue_circuit": breaker}
    if breaker["state"] == "open":
        wait = breaker["retry_in_seconds"]
        detail = f"enqueueing paused after {breaker['last_error']}; next try in {wait} s"
        return Component("broker", "down", detail, None, facts)
    started = time.perf_counter()
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.HEALTH_PROBE_TIMEOUT_SECONDS)
    except Exception as error:  # noqa: BLE001 - any failure to connect means "down"
        broker_breaker().failed(error)  # spare the next request its own failed send
        facts["enqueue_circuit"] = broker_breaker().snapshot()
        detail = f"no connection ({type(error).__name__})"
        return Component("broker", "down", detail, _elapsed_ms(started), facts)
    return Component("broker", "ok", f"{transport} broker reachable", _elapsed_ms(started), facts)


#: The last ping's answer and when it came (monotonic): a broadcast costs up to a second, and a
#: monitoring system or an open page asking every few seconds need not send one each time.
_last_ping: tuple[float, Component] | None = None


def check_workers(broker: Component) -> Component:
    """Which Celery workers answer a ping (at most HEALTH_PING_CACHE_SECONDS old; none: no work is taken)."""
    global _last_ping  # noqa: PLW0603 - one small per-process cache
    if broker.state != "ok":
        return Component("workers", "unknown", "cannot ask the workers while the broker is down")
    if _last_ping is not None and time.monotonic() - _last_ping[0] < settings.HEALTH_PING_CACHE_SECONDS:
        age = round(time.monotonic() - _last_ping[0], 1)
        return replace(_last_ping[1], facts={**_last_ping[1].facts, "age_s": age})
    _last_ping = (time.monotonic(), _ping_workers())
    return _last_ping[1]


def _ping_workers() -> Component:
    """Broadcast a ping and wait HEALTH_PROBE_TIMEOUT_SECONDS for the workers' replies."""
    started = time.perf_counter()
    try:
        replies = current_app.control.ping(timeout=settings.HEALTH_PROBE_TIMEOUT_SECONDS) or []
    except Exception as error:  # noqa: BLE001 - a broadcast that fails tells us nothing about workers
        return Component("workers", "unknown", f"ping failed ({type(error).__name__})", _elapsed_ms(started))
    names = sorted(name for reply in replies for name in reply)
    if not names:
        return Component("workers", "down", "no worker is taking work", _elapsed_ms(started), {"workers": []})
    detail = f"{len(names)} worker(s) answering"
    return Component("workers", "ok", detail, _elapsed_ms(started), {"workers": names})


def health_report() -> dict[str, Any]:
    """The whole report: ``status`` is ``ok`` only when every component is; then each component."""
    database = check_database()
    broker = check_broker()
    workers = check_workers(broker)
    components = [database, broker, workers]
    overall = "ok" if all(part.state == "ok" for part in components) else "degraded"
    if database.state != "ok":
        overall = "unavailable"  # nothing can be recorded; with a broker or worker down, requests still are
    return {
        "status": overall,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "components": {part.name: asdict(part) for part in components},
    }
