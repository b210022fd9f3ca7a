"""Benchmark of the audit log at scale: sequencing, integration, verification, proofs, table growth.

Run from the repository root against PostgreSQL::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/concordance_audit \\
        .venv/bin/python bench/audit.py [--events 1000000] [--append 8000] [--writers 16] [--proofs 300]

The script never touches the database named in DATABASE_URL: like the test runner, it creates a
throwaway ``test_<name>`` database next to it, migrates it, and drops it at the end. Measured:

(a) appends per second through :func:`audit.log.record`, one event per transaction (as one request
    records one change), with 1 and with ``--writers`` writer *processes* (web workers are processes),
    each on its own connection, while the dedicated integrator runs beside them;
(b) integration delay: for every appended event, the time from its commit to the end of the
    integrator pass that put it in the tree (p50 / p95 / max);
(c) seeding ``--events`` events through :func:`audit.bulk.record_many` and integrating them, with a
    signed checkpoint every tenth of the log;
(d) ``verify_log(full=True)`` over all of them with one worker process per core, and an incremental
    ``verify_log()`` after 1% more events;
(e) inclusion proof look-ups (:func:`audit.inclusion.inclusion_lookup`, what the API calls) at random
    positions, and the audit timeline of one study (the indexed query the case page runs);
(f) on PostgreSQL, table and index sizes per event, for the projection in docs/benchmarks.md.

Prints one table. The SQLite default works too, but the figures are meant for PostgreSQL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("CONCORDANCE_TLS", "0")

Row = tuple[str, str, str]


def emit(rows: list[Row], row: Row) -> None:
    """Keep ``row`` for the final table and print it at once (a long run keeps what it measured)."""
    rows.append(row)
    print("  " + " | ".join(row), flush=True)


def _fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _spread(values: list[float]) -> str:
    return (
        f"p50 {_fmt_time(statistics.median(values))}, p95 {_fmt_time(_percentile(values, 0.95))}, "
        f"max {_fmt_time(max(values))}"
    )


def _writer(job: tuple[int, int]) -> list[tuple[int, float]]:
    """One writer process: ``count`` events, one per transaction; (seq, commit time) of each."""
    from django.db import connections, transaction

    from audit import log

    number, count = job
    connections.close_all()
    done = []
    for i in range(count):
        with transaction.atomic():
            event = log.record(
                "bench.append",
                actor=None,
                object_type="study",
                object_id=i,
                patient_id=number,
                study_id=number * 100_000 + i // 5,
                details={"writer": number, "i": i},
            )
        done.append((event.seq, time.time()))
    connections.close_all()
    return done


def _integrator_loop(stop: multiprocessing.synchronize.Event, passes: multiprocessing.Queue) -> None:
    """The dedicated integrator's loop (as ``manage.py audit_integrator``), reporting each pass."""
    from django.db import connections

    from audit import integrator

    connections.close_all()
    while not stop.is_set():
        step = integrator.integrate()
        passes.put((time.time(), step.size))
        if step.busy or step.integrated < integrator.DEFAULT_BATCH:
            time.sleep(integrator.INTERVAL_S)
    connections.close_all()


def bench_appends(total: int, writers: int) -> tuple[float, list[float]]:
    """Events/s of ``writers`` processes appending ``total`` events, and each event's integration delay."""
    from django.db import connections

    from audit import integrator

    context = multiprocessing.get_context("fork")
    connections.close_all()
    stop, passes = context.Event(), context.Queue()
    loop = context.Process(target=_integrator_loop, args=(stop, passes))
    loop.start()
    start = time.perf_counter()
    with context.Pool(writers) as pool:
        results = pool.map(_writer, [(n, total // writers) for n in range(writers)])
    elapsed = time.perf_counter() - start
    appended = [item for chunk in results for item in chunk]
    last = max(seq for seq, _ in appended)
    reports: list[tuple[float, int]] = []
    while not reports or reports[-1][1] <= last:
        reports.append(passes.get(timeout=120))
    stop.set()
    loop.join(30)
    delays = []
    for seq, committed in appended:
        integrated_at = next(moment for moment, size in reports if size > seq)
        delays.append(max(0.0, integrated_at - committed))
    integrator.integrate_all()
    return len(appended) / elapsed, delays


def seed(count: int, chunk: int, checkpoint_every: int) -> float:
    """Append ``count`` events through ``record_many`` in transactions of ``chunk``, integrating and
    signing a checkpoint every ``checkpoint_every``; the seconds spent integrating."""
    from django.db import transaction

    from audit import checkpoints, integrator
    from audit.bulk import record_many
    from audit.log import AuditContext

    context = AuditContext(
        client_address="10.0.0.1", user_agent="Mozilla/5.0 (bench)", channel="GET /studies/"
    )
    actions = ("study.view", "report.view", "ai_output.create", "export.create")
    integrating = 0.0
    written = 0
    while written < count:
        size = min(chunk, count - written, checkpoint_every - written % checkpoint_every)
        entries = [
            {
                "action": actions[n % 4],
                "object_type": "study",
                "object_id": n // 3,
                "patient_id": n // 30,
                "study_id": n // 3,
                "details": {"page": "worklist", "n": n},
            }
            for n in range(written, written + size)
        ]
        with transaction.atomic():
            record_many(entries, actor=None, context=context)
        written += size
        start = time.perf_counter()
        integrator.integrate_all()
        if written % checkpoint_every == 0:
            checkpoints.create_checkpoint()
        integrating += time.perf_counter() - start
    return integrating


def bench_lookups(size: int, count: int, rng: random.Random) -> list[Row]:
    """Inclusion proof look-ups and one study's timeline at log size ``size``."""
    from audit.inclusion import INTEGRATED, inclusion_lookup
    from audit.models import AuditEvent

    times, lengths = [], []
    for _ in range(count):
        seq = rng.randrange(size)
        start = time.perf_counter()
        answer = inclusion_lookup(seq)
        times.append(time.perf_counter() - start)
        assert answer.status == INTEGRATED, answer
        lengths.append(len(answer.proof))
    rows = [
        (
            "inclusion_lookup(seq) (the API's call)",
            f"{count} random seqs, {min(lengths)}-{max(lengths)} hashes (max {max(lengths) * 32} B)",
            _spread(times),
        )
    ]
    times = []
    for _ in range(count):
        study = rng.randrange(size // 3)
        start = time.perf_counter()
        list(AuditEvent.objects.filter(study_id=study).order_by("-seq")[:50])
        times.append(time.perf_counter() - start)
    rows.append(("timeline of one study (study_id, -seq)", f"{count} random studies", _spread(times)))
    return rows


def table_sizes() -> list[Row]:
    """PostgreSQL: bytes per event of the event table, its indexes and the node table."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_table_size('audit_auditevent'), pg_indexes_size('audit_auditevent'), "
            "pg_total_relation_size('audit_auditnode'), (SELECT count(*) FROM audit_auditevent)"
        )
        table, indexes, nodes, events = cursor.fetchone()
    return [
        (
            "PostgreSQL storage per event",
            f"{events:,} events",
            f"table {table / events:.0f} B, indexes {indexes / events:.0f} B, nodes {nodes / events:.0f} B "
            f"(total {(table + indexes + nodes) / 2**20:,.0f} MiB)",
        )
    ]


def run(args: argparse.Namespace) -> tuple[list[Row], str]:
    """All measurements on the throwaway database; the table rows and a one-line summary of what is stored."""
    from audit import verify
    from audit.models import AuditEvent, AuditNode, Checkpoint

    rows: list[Row] = []
    for writers in (1, args.writers):
        rate, delays = bench_appends(args.append if writers > 1 else args.append // 4, writers)
        emit(
            rows,
            (f"append via record(), {writers} writer processes", f"{len(delays)} events", f"{rate:,.0f}/s"),
        )
        emit(
            rows,
            (f"integration delay at that rate ({writers} writers)", "commit -> in the tree", _spread(delays)),
        )
    seed_count = args.events - AuditEvent.objects.count()
    start = time.perf_counter()
    integrating = seed(seed_count, args.chunk, max(1, args.events // 10))
    seconds = time.perf_counter() - start
    rate = f"{seed_count / integrating:,.0f} leaves/s"
    emit(
        rows,
        (
            "seed via record_many + integrate",
            f"{seed_count:,} events",
            f"{seconds:.1f} s, integration {integrating:.1f} s ({rate})",
        ),
    )
    start = time.perf_counter()
    verdict, _ = verify.verify_and_store(full=True, workers=args.workers)  # stored: the next run resumes
    seconds = time.perf_counter() - start
    assert verdict.ok, verdict.summary()
    workload = f"{verdict.tree_size:,} events, {verdict.checkpoints_checked} checkpoints"
    emit(
        rows,
        (
            f"verify_log(full=True), {args.workers or os.cpu_count()} processes",
            workload,
            f"{seconds:.2f} s ({verdict.tree_size / seconds:,.0f} events/s)",
        ),
    )
    seed(args.events // 100, args.chunk, max(1, args.events // 100))
    start = time.perf_counter()
    incremental = verify.verify_log(full=False)
    seconds = time.perf_counter() - start
    assert incremental.ok, incremental.summary()
    emit(
        rows,
        (
            "verify_log() incremental",
            f"{incremental.tree_size - (incremental.resumed_from or 0):,} new events",
            f"{seconds:.2f} s",
        ),
    )
    for row in bench_lookups(incremental.tree_size, args.proofs, random.Random(args.seed)) + table_sizes():
        emit(rows, row)
    stored = (
        f"{AuditEvent.objects.count():,} events, {AuditNode.objects.count():,} Merkle nodes, "
        f"{Checkpoint.objects.count()} checkpoints"
    )
    return rows, stored


def main() -> None:
    """Parse the options, build a throwaway database, run the measurements and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="log size for verification and proofs")
    parser.add_argument("--append", type=int, default=8_000, help="events appended in the multi-writer run")
    parser.add_argument("--writers", type=int, default=16, help="concurrent writer processes")
    parser.add_argument("--workers", type=int, default=None, help="verification processes (default: cores)")
    parser.add_argument("--chunk", type=int, default=20_000, help="events per seeding transaction")
    parser.add_argument("--proofs", type=int, default=300, help="look-ups of each kind")
    parser.add_argument("--seed", type=int, default=9162)
    args = parser.parse_args()

    import django
    from django.conf import settings

    django.setup()
    settings.DEBUG = False  # no query log: it would cost memory and time per statement
    key_dir = tempfile.TemporaryDirectory(prefix="concordance-bench-")
    settings.AUDIT_SIGNING_KEY_FILE = Path(key_dir.name) / "signing-key.pem"
    settings.AUDIT_SIGNING_KEY_CREATE = True

    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    db_config = setup_databases(verbosity=0, interactive=False)
    try:
        vendor = connection.vendor
        server = connection.cursor().connection.info.server_version if vendor == "postgresql" else ""
        rows, stored = run(args)
    finally:
        teardown_databases(db_config, verbosity=0)
        key_dir.cleanup()

    print(f"# Audit log benchmark, {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}")
    print(
        f"# python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs; "
        f"database {vendor} {server}"
    )
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# stored: {stored}")
    print()
    header = ("measurement", "workload", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for i, row in enumerate([header, *rows]):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("-+-".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
