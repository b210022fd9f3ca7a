"""Load run: mixed traffic (bench/load/locustfile.py) against gunicorn + a worker + beat on loopback.

Builds its own stack, so it never touches a database or broker in use: a scratch PostgreSQL database
(on the server of DATABASE_URL, else 127.0.0.1:5432), its own redis-server on a free port, gunicorn
(2 workers x 4 threads), one Celery worker, beat. Seeds a synthetic department (``seed_demo``), registers
the tiny test model and starts a re-inference run over the seeded cohort in the background, then runs
locust headless for ``--minutes``. Samples the broker backlog and the load average every 5 s; measures
the database before and after. Prints a JSON summary (and writes it with locust's CSVs to --out);
copy the figures into docs/benchmarks.md with the date and the command.

    .venv/bin/python bench/load/run.py --minutes 2 --users 12 --out var/load-smoke
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from portal.core.workers import worker_argv  # noqa: E402  (path set up above)

PREPARE = """
import json
from django.contrib.auth.models import Group, User
from django.test import Client
from rest_framework.authtoken.models import Token
tokens, sessions = {}, {}
ROLES = [("ris", "integration"), ("alice", "radiologist"), ("carol", "qa_reviewer"), ("dana", "qa_chair")]
for name, role in ROLES:
    user, _ = User.objects.get_or_create(username=name)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    tokens[name] = Token.objects.get_or_create(user=user)[0].key
    client = Client()
    client.force_login(user)
    sessions[name] = client.cookies["sessionid"].value
print(json.dumps({"tokens": tokens, "sessions": sessions}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_server() -> tuple[str, int, str]:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(url)
        return parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres"
    return "127.0.0.1", 5432, "postgres"


class Bench:
    """The stack of one load run, and what it measured."""

    def __init__(self, out: Path) -> None:
        self.host, self.port, self.user = pg_server()
        self.database = f"concordance_load_{secrets.token_hex(4)}"
        self.redis_port = free_port()
        self.web_port = free_port()
        self.out = out
        self.var_dir = out / "var"
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen] = []
        self.samples: list[dict] = []

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_"))}
        env.update(
            DATABASE_URL=f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}",
            CELERY_BROKER_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            CONCORDANCE_VAR_DIR=str(self.var_dir),
            CONCORDANCE_TLS="0",
            DJANGO_DEBUG="0",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SECRET_KEY_FILE=os.environ.get("SECRET_KEY_FILE", str(ROOT / "var" / "secret_key")),
            AUDIT_SIGNING_KEY_CREATE="1",
            LOG_LEVEL="ERROR",
        )
        return env

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        )

    def sql(self, statement: str) -> object:
        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=self.database) as conn:
            return conn.execute(statement).fetchone()[0]

    def manage(self, *args: str) -> str:
        result = subprocess.run(  # fixed argv
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            raise SystemExit(f"manage.py {args[0]} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def spawn(self, argv: list[str], **env: str) -> subprocess.Popen:
        log = (
            self.out / f"{Path(argv[2] if len(argv) > 2 else argv[0]).name}-{len(self.processes)}.log"
        ).open("w")
        process = subprocess.Popen(argv, cwd=ROOT, env={**self.env, **env}, stdout=log, stderr=log)
        self.processes.append(process)
        return process

    def start(self, seed_studies: int) -> dict:
        with self.admin() as admin:
            admin.execute(f'CREATE DATABASE "{self.database}"')
        self.spawn(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.var_dir),
            ]
        )
        self.manage("migrate", "--no-input", "-v", "0")
        started = time.monotonic()
        self.manage("seed_demo", "--studies", str(seed_studies), "--drafts", "template")
        seeded_s = time.monotonic() - started
        accounts = json.loads(self.manage("shell", "-c", PREPARE).strip().splitlines()[-1])
        from tests.model_fixtures import TINY_NAME, TINY_VERSION, build_tiny_model

        files = build_tiny_model()  # cached under $CONCORDANCE_VAR_DIR/model-cache
        self.manage("register_model", str(files.artifact_dir), "--specialty", "all")
        python = sys.executable
        self.spawn(
            [
                python,
                "-m",
                "gunicorn",
                "portal.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--timeout",
                "60",
                "--log-level",
                "warning",
            ]
        )
        self.spawn(worker_argv(python=python))
        self.spawn(
            [
                python,
                "-m",
                "celery",
                "-A",
                "portal",
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(self.var_dir / "celerybeat-schedule"),
            ]
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{self.web_port}/api/v1/health", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.5)
        # The bulk seed enqueues no comparisons: the sweeper (what beat runs) does, before the clock starts.
        self.manage(
            "shell", "-c", "from portal.review.tasks import sweep_uncompared; sweep_uncompared.delay()"
        )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and self.figures()["uncompared_drafts"]:
            time.sleep(2)
        run = self.manage("reinfer", "--model", f"{TINY_NAME}:{TINY_VERSION}", "--chunk-size", "16")
        return {"accounts": accounts, "seed_seconds": round(seeded_s, 1), "reinference": run.strip()}

    def backlog(self) -> int:
        out = subprocess.run(  # fixed argv
            ["redis-cli", "-p", str(self.redis_port), "llen", "celery"],
            capture_output=True,
            text=True,
            check=False,
        )
        return int(out.stdout.strip() or 0)

    def wait_for_backlog(self, level: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.backlog() > level:
            time.sleep(1)

    def sample(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.samples.append({"t": time.time(), "backlog": self.backlog(), "load1": os.getloadavg()[0]})
            stop.wait(5)

    def figures(self) -> dict:
        return {
            "db_bytes": self.sql("SELECT pg_database_size(current_database())"),
            "studies": self.sql("SELECT count(*) FROM records_study"),
            "audit_events": self.sql("SELECT count(*) FROM audit_auditevent"),
            "comparisons": self.sql("SELECT count(*) FROM review_comparison"),
            "reinference_results": self.sql("SELECT count(*) FROM inference_reinferenceresult"),
            "uncompared_drafts": self.sql(
                "SELECT count(*) FROM records_aioutput o "
                "WHERE o.kind = 'report_draft' AND o.origin = 'clinical' "
                "AND EXISTS (SELECT 1 FROM records_signedreport r WHERE r.study_id = o.study_id) "
                "AND NOT EXISTS (SELECT 1 FROM review_comparison c WHERE c.candidate_id = o.id)"
            ),
            "reinference_failures": self.sql(
                "SELECT coalesce(string_agg(DISTINCT left(error, 120), ' | '), '') "
                "FROM inference_reinferenceresult WHERE status <> 'ok'"
            ),
            "run_status": self.sql(
                "SELECT coalesce((SELECT status || ' ' || done || '/' || total || ', failed ' || failed "
                "FROM inference_reinferencerun ORDER BY id DESC LIMIT 1), 'no run')"
            ),
        }

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        with self.admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def per_endpoint(stats_csv: Path) -> list[dict]:
    rows = []
    with stats_csv.open() as fp:
        for row in csv.DictReader(fp):
            rows.append(
                {
                    "name": row["Name"],
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "rps": round(float(row["Requests/s"]), 2),
                    "p50_ms": row["50%"],
                    "p95_ms": row["95%"],
                    "p99_ms": row["99%"],
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2)
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--seed-studies", type=int, default=400)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "load")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    bench = Bench(options.out.resolve())
    stop = threading.Event()
    try:
        setup = bench.start(options.seed_studies)
        before = bench.figures()
        sampler = threading.Thread(target=bench.sample, args=(stop,), daemon=True)
        sampler.start()
        load_start = os.getloadavg()
        env = {
            **os.environ,
            "LOAD_TOKENS": json.dumps(setup["accounts"]["tokens"]),
            "LOAD_SESSIONS": json.dumps(setup["accounts"]["sessions"]),
        }
        started = time.monotonic()
        subprocess.run(  # fixed argv
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(ROOT / "bench" / "load" / "locustfile.py"),
                "--headless",
                "-u",
                str(options.users),
                "-r",
                str(max(1, options.users // 4)),
                "-t",
                f"{int(options.minutes * 60)}s",
                "--host",
                f"http://127.0.0.1:{bench.web_port}",
                "--csv",
                str(options.out / "locust"),
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            check=False,
        )
        elapsed = time.monotonic() - started
        after_load = bench.figures()
        drain_started = time.monotonic()
        bench.wait_for_backlog(0, timeout=600)
        drain_s = time.monotonic() - drain_started
        time.sleep(5)
        after = bench.figures()
        stop.set()
        studies_added = after["studies"] - before["studies"]
        summary = {
            "minutes": options.minutes,
            "users": options.users,
            "elapsed_s": round(elapsed, 1),
            "load_average_at_start": load_start,
            "load_average_at_end": os.getloadavg(),
            "setup": {k: v for k, v in setup.items() if k != "accounts"},
            "before": before,
            "after_load": after_load,
            "after_drain": after,
            "drain_s": round(drain_s, 1),
            "backlog_max": max((s["backlog"] for s in bench.samples), default=0),
            "backlog_mean": round(sum(s["backlog"] for s in bench.samples) / max(1, len(bench.samples)), 1),
            "load1_max": max((s["load1"] for s in bench.samples), default=0),
            "studies_added": studies_added,
            "db_bytes_per_1000_studies": round(
                (after["db_bytes"] - before["db_bytes"]) * 1000 / studies_added
            )
            if studies_added
            else None,
            "endpoints": per_endpoint(options.out / "locust_stats.csv"),
        }
        (options.out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))  # the benchmark's output
    finally:
        stop.set()
        bench.stop()


if __name__ == "__main__":
    main()
