"""Benchmark: what enqueueing costs a request while the broker is down, with and without the breaker.

Run from the repository root::

    SECRET_KEY_FILE=$PWD/var/secret_key .venv/bin/python bench/broker_outage.py [--sends 200]

The broker is a Redis URL on a free local port where nothing listens (connection refused, as when
Redis is stopped). Each figure is the wall time of :func:`portal.core.enqueue.send_now`, the call every
request that enqueues work makes after its commit: once with the breaker as configured (one failure
opens it for the cooldown) and once with a breaker that never opens (the behaviour before it). Prints
one table: first send, then median / p95 / max of the following sends.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")


def free_port() -> int:
    """A local port where nothing listens (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(sends: int, *, failures: int) -> list[float]:
    """Seconds per ``send_now`` over ``sends`` sends with a breaker opening after ``failures``."""
    from django.conf import settings

    from portal.core import enqueue

    settings.ENQUEUE_BREAKER_FAILURES = failures
    enqueue.broker_breaker().reset()
    timings = []
    for object_id in range(sends):
        started = time.perf_counter()
        enqueue.send_now("portal.review.tasks.compare_study", object_id)
        timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    """Parse arguments, point Celery at a closed port, measure both ways, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=200)
    args = parser.parse_args()
    os.environ["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    import django

    django.setup()
    never_opens = measure(min(args.sends, 20), failures=10**9)  # 0.6 s each: fewer sends
    with_breaker = measure(args.sends, failures=1)
    print(f"# {platform.node()} {platform.machine()} Python {platform.python_version()}")  # noqa: T201
    print("| breaker | sends | first send | median of the rest | p95 | max |")  # noqa: T201
    print("| --- | --- | --- | --- | --- | --- |")  # noqa: T201
    for label, timings in (("never opens (before)", never_opens), ("opens on 1 failure", with_breaker)):
        rest = sorted(timings[1:])
        p95 = rest[int(0.95 * (len(rest) - 1))]
        median = statistics.median(rest)
        print(  # noqa: T201 - the report
            f"| {label} | {len(timings)} | {timings[0] * 1000:.1f} ms | {median * 1000:.3f} ms"
            f" | {p95 * 1000:.3f} ms | {rest[-1] * 1000:.3f} ms |"
        )


if __name__ == "__main__":
    main()
