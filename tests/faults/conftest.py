"""A real, disposable stack for fault tests: PostgreSQL scratch database, own Redis, gunicorn, workers.

The fault tests do not use pytest-django's test database: they need PostgreSQL (connection kills,
roles) and a broker they may stop, whatever DATABASE_URL says, so they run the same under plain
``make test`` (SQLite) and under ``.ci/run`` (PostgreSQL + Redis). The PostgreSQL server is the one of
DATABASE_URL when that is PostgreSQL, else the local one at 127.0.0.1:5432 (trust authentication).
Each test gets a fresh database cloned from a template migrated once per session, its own
``redis-server`` on a free port (the shared Redis on 6379 is never touched), and starts gunicorn and
Celery workers as separate processes against them. Everything is stopped and dropped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import requests
from psycopg import sql

from portal.core.workers import start_worker
from tests.factories import ai_output_json, signed_report_json, study_json

ROOT = Path(__file__).resolve().parents[2]

SETUP_ACCOUNTS = """
import json
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
tokens = {}
for name, role in [("ris", "integration"), ("alice", "radiologist"), ("dana", "qa_chair")]:
    user = User.objects.create_user(username=name, password=None)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    tokens[name] = Token.objects.create(user=user).key
print(json.dumps(tokens))
"""


def pg_server() -> tuple[str, int, str]:
    """Host, port and superuser of the PostgreSQL server the fault tests use."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(url)
        return parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres"
    return "127.0.0.1", 5432, "postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _admin() -> psycopg.Connection:
    host, port, user = pg_server()
    return psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True)


def _drop_database(name: str) -> None:
    with _admin() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def manage(*args: str, env: dict[str, str], timeout: int = 240) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py`` in a separate process with ``env``; raises with its stderr when it fails."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(f"manage.py {args[0]} failed:\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="session")
def template_database(tmp_path_factory) -> Iterator[str]:
    """A migrated template database (one migrate per session; tests clone it in about a second)."""
    host, port, user = pg_server()
    name = f"concordance_faults_tmpl_{secrets.token_hex(4)}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        env = base_env(
            tmp_path_factory.mktemp("tmpl-var"), f"postgresql://{user}@{host}:{port}/{name}", "memory://"
        )
        manage("migrate", "--no-input", "-v", "0", env=env)
        yield name
    finally:
        _drop_database(name)


def base_env(var_dir: Path, database_url: str, broker_url: str) -> dict[str, str]:
    """The environment every process of the stack runs with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_"))}
    env.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        CONCORDANCE_VAR_DIR=str(var_dir),
        CONCORDANCE_TLS="0",
        DJANGO_DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECRET_KEY_FILE=os.environ.get("SECRET_KEY_FILE", str(ROOT / "var" / "secret_key")),
        AUDIT_SIGNING_KEY_CREATE="1",
        # Unacknowledged messages of a killed worker come back after this long (Redis visibility).
        CELERY_VISIBILITY_TIMEOUT="5",
        REINFERENCE_LEASE_SECONDS="5",
        DB_CONN_MAX_AGE="60",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


class RedisServer:
    """A redis-server of our own on a free port, without persistence, that a test may stop and start."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # fixed argv
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("our redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # an outage, not a clean shutdown
            self.process.wait(timeout=20)
        self.process = None


@dataclass
class Stack:
    """One test's stack: database, broker, and the processes started against them."""

    database: str
    database_url: str
    redis: RedisServer
    var_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)
    web_url: str = ""

    @property
    def env(self) -> dict[str, str]:
        return base_env(self.var_dir, self.database_url, self.redis.url)

    # --- processes -------------------------------------------------------------------------------
    def start_worker(self, *, queues: str | None = None) -> subprocess.Popen:
        worker = start_worker(env=self.env, cwd=ROOT, queues=queues)
        self.processes.append(worker)
        return worker

    def start_web(self, *, workers: int = 2, threads: int = 4) -> str:
        port = free_port()
        web = subprocess.Popen(  # fixed argv
            [
                sys.executable,
                "-m",
                "gunicorn",
                "portal.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--timeout",
                "60",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
        )
        self.processes.append(web)
        self.web_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.web_url}/api/v1/health", timeout=10).status_code in (
                    200,
                    401,
                    403,
                    503,
                ):
                    return self.web_url
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not come up")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.processes.clear()

    # --- database --------------------------------------------------------------------------------
    def query(self, statement: str, params: Any = None) -> list[tuple]:
        host, port, user = pg_server()
        with psycopg.connect(host=host, port=port, user=user, dbname=self.database, autocommit=True) as conn:
            return conn.execute(statement, params).fetchall()

    def scalar(self, statement: str, params: Any = None) -> Any:
        return self.query(statement, params)[0][0]

    def shell(self, code: str, timeout: int = 240) -> str:
        return manage("shell", "-c", code, env=self.env, timeout=timeout).stdout

    def verify_audit(self) -> str:
        return manage("verify_audit", env=self.env).stdout

    # --- traffic ---------------------------------------------------------------------------------
    def post_pair(self, n: int, session: requests.Session | None = None, prefix: str = "F") -> list[int]:
        """Study, AI draft and signed report ``n`` through REST; their status codes, up to a failure."""
        http = session or requests
        headers = {"Authorization": f"Token {self.tokens['ris']}"}
        accession = f"{prefix}{n:06d}"
        bodies = [
            (
                "/api/v1/studies",
                study_json(
                    accession=accession,
                    mrn=f"MRN{prefix}{n:06d}",
                    study_instance_uid=f"1.2.826.0.1.3680043.10.777.{n}",
                ),
            ),
            ("/api/v1/ai-outputs", ai_output_json(accession=accession)),
            (
                "/api/v1/signed-reports",
                signed_report_json(
                    accession=accession,
                    sections={
                        "findings": "No pleural effusion. Right pneumothorax.",
                        "impression": "Pneumothorax.",
                    },
                ),
            ),
        ]
        codes = []
        for url, body in bodies:
            response = http.post(
                f"{self.web_url}{url}",
                data=json.dumps(body),
                headers={**headers, "Content-Type": "application/json"},
                timeout=60,
            )
            codes.append(response.status_code)
            if response.status_code >= 300:
                break  # like a real sender: no draft or report for a study that was not stored
        return codes


@contextlib.contextmanager
def make_stack(template_database: str, directory: Path) -> Iterator[Stack]:
    """A fresh database cloned from the template, our own Redis (started), no processes yet."""
    host, port, user = pg_server()
    name = f"concordance_faults_{secrets.token_hex(4)}"
    with _admin() as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_database)
            )
        )
    redis = RedisServer(directory)
    redis.start()
    box = Stack(name, f"postgresql://{user}@{host}:{port}/{name}", redis, directory / "var")
    box.var_dir.mkdir()
    try:
        box.tokens = json.loads(box.shell(SETUP_ACCOUNTS).strip().splitlines()[-1])
        yield box
    finally:
        box.stop_all()
        redis.stop()
        _drop_database(name)


@pytest.fixture
def stack(template_database, tmp_path) -> Iterator[Stack]:
    """One test's own stack (see :func:`make_stack`)."""
    with make_stack(template_database, tmp_path) as box:
        yield box


def wait_until(predicate, *, timeout: float, interval: float = 0.5) -> bool:  # a callable
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
