"""The ONE Celery worker command line, used by the demo, the tests and the benchmarks.

A worker is this interpreter running ``celery -A portal worker``. Tests and benchmarks run solo-pool
workers that do not talk to each other (no heartbeat, gossip or mingle: quicker to start, and a killed
worker leaves nothing for the others to wait on); the demo runs one prefork worker with beat.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any


def worker_argv(
    *,
    loglevel: str = "WARNING",
    solo: bool = True,
    concurrency: int | None = None,
    beat_schedule: Path | None = None,
    hostname: str | None = None,
    queues: str | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The argv of a worker process: solo and standalone by default, prefork with beat for the demo.

    ``beat_schedule`` runs beat inside the worker with its schedule file there; ``queues`` is Celery's
    comma-separated ``-Q`` list.
    """
    argv = [python, "-m", "celery", "-A", "portal", "worker"]
    if solo:
        argv += ["--pool", "solo"]
    argv += ["--loglevel", loglevel]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    if beat_schedule is not None:
        argv += ["--beat", "--schedule", str(beat_schedule)]
    if hostname:
        argv += ["--hostname", hostname]
    if solo:
        argv += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    if queues:
        argv += ["-Q", queues]
    return argv


def start_worker(
    *,
    env: Mapping[str, str],
    cwd: Path | str | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    own_process_group: bool = False,
    **options: Any,
) -> subprocess.Popen:
    """Start a worker process (``options`` as for :func:`worker_argv`) with its environment.

    ``own_process_group`` puts the worker and its pool processes in a group of their own (its id is
    the worker's pid), so that a supervisor can end the pool a killed worker leaves behind.
    """
    return subprocess.Popen(  # this interpreter, fixed argv: no shell
        worker_argv(**options),
        cwd=cwd,
        env=dict(env),
        stdout=stdout,
        stderr=stderr,
        start_new_session=own_process_group,
    )


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """The DATABASE_URL of a connection's settings, so that a worker process reaches the same database."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgresql://{auth}{host}{port}/{settings_dict['NAME']}"
