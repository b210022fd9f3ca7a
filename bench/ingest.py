"""Ingestion benchmark: report pairs per second through HTTP (a real gunicorn process) and in bulk.

A "pair" is one study + its AI draft + its signed report (three POSTs through the API; one row each
plus audit events in bulk). Runs against the database named by DATABASE_URL, which it RESETS: point it
at a throwaway database, e.g.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/concordance_bench \
        .venv/bin/python bench/ingest.py --pairs 600 --bulk-pairs 5000 --clients 8

Prints a table; copy it into docs/benchmarks.md with the date, the machine and the command.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def reset_database(url: str) -> None:
    """Drop and recreate the benchmark database (PostgreSQL) or delete the SQLite file."""
    parsed = urlparse(url)
    if parsed.scheme.startswith("sqlite"):
        Path(parsed.path).unlink(missing_ok=True)
        return
    import psycopg

    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def prepare(env: dict[str, str]) -> str:
    """Migrate, create the integration account and radiologists; return the API token."""
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)  # noqa: S603
    code = (
        "from django.contrib.auth.models import User, Group\n"
        "from rest_framework.authtoken.models import Token\n"
        "from portal.demo.synthetic import generate_department\n"
        "u,_=User.objects.get_or_create(username='bench_ris')\n"
        "u.groups.add(Group.objects.get(name='integration'))\n"
        "g=Group.objects.get(name='radiologist')\n"
        "for r in {*generate_department(studies=1, seed=11).radiologists, "
        "*generate_department(studies=1, seed=12).radiologists}:\n"
        "    x,_=User.objects.get_or_create(username=r.username); x.groups.add(g)\n"
        "print(Token.objects.get_or_create(user=u)[0].key)\n"
    )
    out = subprocess.run(
        [python, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,  # noqa: S603
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def payloads(n: int, seed: int) -> list[tuple[dict, dict, dict]]:
    """n (study, ai output, signed report) request bodies from the synthetic department."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from portal.demo.management.commands.seed_demo import study_pairs
    from portal.demo.synthetic import generate_department

    def iso(value) -> str | None:  # noqa: ANN001
        return value.isoformat() if value is not None else None

    bodies = []
    for pair in study_pairs(generate_department(studies=n, seed=seed)):
        s, a, r = pair.study, pair.ai_output, pair.signed_report
        study = {
            "study_instance_uid": s.study_instance_uid,
            "accession_number": s.accession_number,
            "patient": {
                "mrn": s.patient.mrn,
                "family_name": s.patient.family_name,
                "given_name": s.patient.given_name,
                "birth_date": iso(s.patient.birth_date),
                "sex": s.patient.sex,
            },
            "modality": s.modality,
            "body_part": s.body_part,
            "specialty": s.specialty,
            "study_datetime": iso(s.study_datetime),
            "description": s.description,
            "priority": s.priority,
            "referring_physician": s.referring_physician,
            "dicom_header": s.dicom_header,
        }
        output = {
            "accession_number": a.accession_number,
            "kind": a.kind,
            "model_name": a.model_name,
            "model_version": a.model_version,
            "inputs": a.inputs,
            "generation_settings": a.generation_settings,
            "text": a.text,
            "generated_at": iso(a.generated_at),
        }
        report = {
            "accession_number": r.accession_number,
            "radiologist": r.radiologist_username,
            "sections": r.sections,
            "text": r.text,
            "signed_at": iso(r.signed_at),
            "status": r.status,
        }
        bodies.append((study, output, report))
    return bodies


def drive(
    port: int, token: str, bodies: list[tuple[dict, dict, dict]], clients: int
) -> tuple[float, list[float], int]:
    """Send every pair (three POSTs in order) from ``clients`` threads with keep-alive connections."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    chunks = [bodies[i::clients] for i in range(clients)]

    def client(chunk: list[tuple[dict, dict, dict]]) -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        for study, output, report in chunk:
            for path, body in (
                ("/api/v1/studies", study),
                ("/api/v1/ai-outputs", output),
                ("/api/v1/signed-reports", report),
            ):
                started = time.perf_counter()
                conn.request("POST", path, json.dumps(body), headers)
                response = conn.getresponse()
                response.read()
                with lock:
                    latencies.append(time.perf_counter() - started)
                    if response.status not in (200, 201):
                        errors += 1

    from bench.ingest_feeds import run_clients

    return run_clients(client, chunks), latencies, errors


def bulk(env: dict[str, str], n: int, seed: int) -> float:
    """Seconds to bulk-import n pairs with seed_demo's importer (generation excluded)."""
    code = (
        "import time\n"
        "from portal.records import bulk\n"
        "from portal.demo.management.commands.seed_demo import study_pairs\n"
        "from portal.demo.synthetic import generate_department\n"
        f"pairs=list(study_pairs(generate_department(studies={n}, seed={seed})))\n"
        "t=time.perf_counter(); c=bulk.import_pairs(pairs); print(time.perf_counter()-t, c.studies)\n"
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,  # noqa: S603
        check=True,
        capture_output=True,
        text=True,
    )
    seconds, count = out.stdout.strip().splitlines()[-1].split()
    assert int(count) == n, f"bulk import created {count} of {n} studies"
    return float(seconds)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _gunicorn(env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "portal.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            "4",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )


def _mllp_listener(env: dict[str, str], port: int) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "mllp_listen", "--port", str(port), "--account", "bench_ris"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def _wait_for_port(port: int, seconds: float = 90) -> None:
    """Wait until something listens on ``port`` (servers start slowly on a loaded machine)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"nothing listens on port {port}")


def _latency(latencies: list[float]) -> str:
    return " / ".join(f"{percentile(latencies, q) * 1000:.1f}" for q in (50, 95, 99)) + " ms"


def run_http(args: argparse.Namespace, env: dict[str, str], token: str) -> list[str]:
    """REST pairs and FHIR transaction Bundles through one gunicorn; the table rows."""
    from bench import ingest_feeds

    bodies = payloads(args.pairs, seed=11) if not args.only_bundles else []
    bundles = ingest_feeds.fhir_bundles(payloads(args.bundle_pairs, seed=13), args.bundle_reports)
    server = _gunicorn(env, args.port, args.workers)
    rows = []
    try:
        _wait_for_port(args.port)
        if not args.only_bundles:
            elapsed, latencies, errors = drive(args.port, token, bodies, args.clients)
            rows += [
                f"| API: pairs ingested | {args.pairs} ({3 * args.pairs} requests, {errors} errors) |",
                f"| API: pairs per second | {args.pairs / elapsed:.0f} |",
                f"| API: request latency p50 / p95 / p99 | {_latency(latencies)} ({args.clients} clients) |",
            ]
        ingest_feeds.warm_up(args.port, min(args.clients, 4))
        server_cpu, client_cpu = ingest_feeds.tree_cpu_seconds(server.pid), time.process_time()
        b_elapsed, b_latencies, b_errors = ingest_feeds.drive_bundles(
            args.port, token, bundles, min(args.clients, 4)
        )
        server_cpu = ingest_feeds.tree_cpu_seconds(server.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        server.terminate()
        server.wait(timeout=30)
    reports = sum(
        1 for b in bundles for e in b["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"
    )
    return rows + [
        f"| FHIR: transaction Bundles | {len(bundles)} of {args.bundle_reports} reports + their Patients, "
        f"{b_errors} errors |",
        f"| FHIR: pairs (draft + signed report) per second | {reports / 2 / b_elapsed:.0f} "
        f"({reports / b_elapsed:.0f} reports/s) |",
        f"| FHIR: Bundle latency p50 / p95 / p99 | {_latency(b_latencies)} |",
        f"| FHIR: CPU per Bundle, gunicorn / load generator | {server_cpu / len(bundles) * 1000:.0f} ms / "
        f"{client_cpu / len(bundles) * 1000:.0f} ms (PostgreSQL's own not counted) |",
    ]


def run_mllp(args: argparse.Namespace, env: dict[str, str]) -> list[str]:
    """ORU^R01 over one persistent MLLP connection to ``manage.py mllp_listen``; the table rows."""
    from bench import ingest_feeds

    messages = ingest_feeds.hl7_messages(payloads(args.mllp_pairs, seed=14))
    listener = _mllp_listener(env, args.port + 1)
    try:
        _wait_for_port(args.port + 1)
        elapsed, latencies, errors = ingest_feeds.drive_mllp(args.port + 1, messages)
    finally:
        listener.terminate()
        listener.wait(timeout=30)
    return [
        f"| MLLP: ORU^R01 messages | {len(messages)} (one connection), {errors} not AA |",
        f"| MLLP: messages per second | {len(messages) / elapsed:.0f} |",
        f"| MLLP: ACK latency p50 / p95 / p99 | {_latency(latencies)} |",
    ]


def run_sql_and_profile(token: str) -> tuple[list[str], str]:
    """SQL statements per request of each kind and a profile of HL7 requests, in-process."""
    from bench import ingest_feeds

    bodies = payloads(30, seed=15)
    bundle = ingest_feeds.fhir_bundles(payloads(50, seed=16), 100)[0]
    counts = ingest_feeds.sql_counts(token, bodies, bundle)
    rows = [f"| SQL statements: {label} | {n} |" for label, n in counts.items()]
    return rows, ingest_feeds.profile_hl7(token, ingest_feeds.hl7_messages(bodies[2:27]))


def main() -> None:
    """Run every measurement and print the table, then the profile."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--bulk-pairs", type=int, default=5000)
    parser.add_argument("--bundle-pairs", type=int, default=500, help="pairs sent as FHIR Bundles")
    parser.add_argument("--bundle-reports", type=int, default=100, help="DiagnosticReports per Bundle")
    parser.add_argument("--mllp-pairs", type=int, default=300, help="pairs sent as ORU^R01 over MLLP")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--only-bundles", action="store_true", help="only the FHIR Bundles (and the SQL counts)"
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("set DATABASE_URL to a throwaway database (it is reset)")
    # This process also runs Django (payloads, SQL counts, the profile): plain HTTP, no broker.
    os.environ["CONCORDANCE_TLS"] = "0"
    os.environ.setdefault("CELERY_BROKER_URL", "filesystem://")
    env = {
        **os.environ,
        "CONCORDANCE_TLS": "0",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "filesystem://"),
    }
    reset_database(url)
    token = prepare(env)
    if args.only_bundles:
        rows = run_http(args, env, token)
        sql_rows = [row for row in run_sql_and_profile(token)[0] if "Bundle" in row]
        print("\n".join(["| measure | value |", "| --- | --- |", *rows, *sql_rows]))
        return
    rows = run_http(args, env, token) + run_mllp(args, env)
    bulk_seconds = bulk(env, args.bulk_pairs, seed=12)
    sql_rows, profile = run_sql_and_profile(token)
    print(
        f"database: {urlparse(url).scheme}   clients: {args.clients}   "
        f"gunicorn workers: {args.workers}x4 threads"
    )
    print("| measure | value |")
    print("| --- | --- |")
    print("\n".join(rows))
    print(f"| bulk: pairs imported | {args.bulk_pairs} in {bulk_seconds:.2f} s |")
    print(f"| bulk: pairs per second | {args.bulk_pairs / bulk_seconds:.0f} |")
    print("\n".join(sql_rows))
    print("\nProfile of 50 HL7 ORU^R01 requests in-process (cumulative time):\n" + profile)


if __name__ == "__main__":
    main()
