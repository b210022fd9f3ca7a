"""The demo launcher supervises: a dead worker is restarted with a line in the log, the web keeps serving.

The first test runs ``manage.py run_demo`` itself (fresh var folder, 10 synthetic studies, gunicorn and
a prefork Celery worker with beat, as ``make demo`` does) and SIGKILLs its worker. The others drive
:class:`~portal.demo.supervisor.Supervisor` with small real processes to pin down the restart rules.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from portal.demo.supervisor import Supervisor, exit_description

ROOT = Path(__file__).resolve().parents[2]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.2):  # noqa: ANN001, ANN202 - test helper
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(interval)
    return predicate()


def children_of(pid: int) -> set[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(420)
def test_run_demo_restarts_a_sigkilled_worker_and_keeps_serving(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_"))}
    env.update(
        CONCORDANCE_VAR_DIR=str(tmp_path / "var"),
        CONCORDANCE_TLS="0",
        DJANGO_DEBUG="1",
        SECRET_KEY_FILE=os.environ.get("SECRET_KEY_FILE", str(ROOT / "var" / "secret_key")),
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as log:
        demo = subprocess.Popen(
            [sys.executable, "manage.py", "run_demo", "--studies", "10", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        started = re.compile(r"supervisor: worker started \(pid (\d+)\)")
        first = wait_for(lambda: started.findall(log_path.read_text()), timeout=240)
        assert first, log_path.read_text()[-3000:]
        worker_pid = int(first[0])
        token = json.loads((tmp_path / "var" / "demo-logins.json").read_text())["api_token"]["token"]
        health_url = f"http://127.0.0.1:{port}/api/v1/health/components"
        headers = {"Authorization": f"Token {token}"}

        def workers_answering() -> list[str]:
            try:
                report = requests.get(health_url, headers=headers, timeout=10).json()
            except requests.RequestException:
                return []
            return report["components"]["workers"]["facts"].get("workers", [])

        assert wait_for(workers_answering, timeout=120), log_path.read_text()[-3000:]
        pool = children_of(worker_pid)
        assert pool, "the prefork worker has pool processes"

        os.kill(worker_pid, signal.SIGKILL)  # as an OOM kill does
        killed_at = time.monotonic()

        restarted = wait_for(lambda: len(started.findall(log_path.read_text())) >= 2, timeout=60)
        assert restarted, log_path.read_text()[-3000:]
        text = log_path.read_text()
        died = rf"worker \(pid {worker_pid}\) died after \d+ s \(signal 9 \(SIGKILL\)\); its pool processes"
        assert re.search(died, text), text[-3000:]
        # The web server never stopped: pages and the API answer throughout.
        assert demo.poll() is None
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).status_code == 200
        # The new worker takes work again (it answers the ping), and the old pool did not linger on.
        assert wait_for(workers_answering, timeout=120)
        print(f"worker answering again {time.monotonic() - killed_at:.1f} s after SIGKILL")  # noqa: T201
        assert wait_for(lambda: not any(alive(pid) for pid in pool), timeout=30), "orphaned pool processes"
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(timeout=20)
    assert demo.returncode is not None
    new_pid = int(started.findall(log_path.read_text())[-1])
    assert wait_for(lambda: not alive(new_pid), timeout=20), "the worker outlived the demo"


def test_a_worker_that_keeps_dying_is_restarted_with_growing_pauses():
    log = io.StringIO()
    supervisor = Supervisor(
        start_web=lambda: subprocess.Popen(SLEEPER),
        start_worker=lambda: subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]),
        log=log,
        poll=0.02,
        min_backoff=0.1,
        max_backoff=0.4,
    )
    runner = threading.Thread(target=supervisor.run)
    runner.start()
    try:
        assert wait_for(lambda: supervisor.restarts >= 4, timeout=30)
    finally:
        supervisor.stop_requested.set()
        runner.join(timeout=30)
    pauses = [float(p) for p in re.findall(r"\(exit code 3\); restarting in ([\d.]+) s", log.getvalue())]
    assert pauses[:4] == [0.1, 0.2, 0.4, 0.4]  # doubled after each quick death, up to max_backoff
    assert supervisor.web is not None and supervisor.web.returncode == -signal.SIGTERM  # stopped, not crashed


def test_the_web_server_ending_ends_the_supervision_and_stops_the_worker():
    log = io.StringIO()
    supervisor = Supervisor(
        start_web=lambda: subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"]),
        start_worker=lambda: subprocess.Popen(SLEEPER),
        log=log,
        poll=0.02,
    )

    assert supervisor.run() == 4
    assert "web server ended (exit code 4); stopping" in log.getvalue()
    assert supervisor.worker is not None and supervisor.worker.poll() is not None


def test_exit_descriptions_name_the_signal():
    assert exit_description(0) == "exit code 0"
    assert exit_description(-9) == "signal 9 (SIGKILL)"
    assert exit_description(-15) == "signal 15 (SIGTERM)"
    assert exit_description(-200) == "signal 200 (unknown)"
