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
(c) seeding ``--events`` events and integrating them with the real integrator, with a signed
    checkpoint every tenth of the log and one row per tenth (write and integration cost per event,
    table and index size: the evidence on partitioning in docs/audit.md). On PostgreSQL the events
    are exactly those :func:`audit.bulk.record_many` would write (its sequencer call and
    ``build_event``), written with COPY: 10 M events took 17 minutes here under load;
(d) ``verify_log(full=True)`` over all of them with one worker process per core, and an incremental
    ``verify_log()`` after 1% more events;
(e) inclusion proof look-ups (:func:`audit.inclusion.inclusion_lookup`, what the API calls) at random
    positions, with their CPU time and statements, and the audit timeline of one study (the indexed
    query the case page runs); CPU time and statements per ``record()``, and CPU per event of the leaf
    recomputation that verification does, in one process;
(f) on PostgreSQL, table and index sizes per event, for the projection in docs/benchmarks.md.

Prints one table. The SQLite default works too, but the figures are meant for PostgreSQL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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


def _seed_entries(first: int, size: int) -> list[dict]:
    """The entries of seeded events ``first .. first + size - 1`` (four actions, three events a study)."""
    actions = ("study.view", "report.view", "ai_output.create", "export.create")
    return [
        {
            "action": actions[n % 4],
            "object_type": "study",
            "object_id": n // 3,
            "patient_id": n // 30,
            "study_id": n // 3,
            "details": {"page": "worklist", "n": n},
        }
        for n in range(first, first + size)
    ]


SEED_CONTEXT = ("10.0.0.1", "Mozilla/5.0 (bench)", "GET /studies/")


def _write_copy(entries: list[dict]) -> None:
    """PostgreSQL: exactly the events ``record_many`` would write (its sequencer call, its
    ``build_event``, so the same numbers, columns and leaf hashes), written with one COPY."""
    from django.db import connection
    from django.utils import timezone

    from audit import sequencer
    from audit.log import AuditContext, actor_fields_of, build_event
    from audit.models import LEAF_FIELDS

    context = AuditContext(*SEED_CONTEXT)
    actor_fields, now = actor_fields_of(None), timezone.now()
    seqs = sequencer.allocate(len(entries))
    columns = (*LEAF_FIELDS, "leaf_hash")
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY audit_auditevent ({', '.join(columns)}) FROM STDIN") as copy:
            for seq, entry in zip(seqs, entries, strict=True):
                event = build_event(seq, now, actor_fields, context, entry)
                row = [getattr(event, name) for name in columns]
                row[LEAF_FIELDS.index("details")] = json.dumps(event.details)
                copy.write_row(row)


def seed(
    count: int, chunk: int, checkpoint_every: int, *, progress: list[Row] | None = None
) -> tuple[float, float]:
    """Append ``count`` events in transactions of ``chunk`` (COPY of ``record_many``'s rows on
    PostgreSQL, ``record_many`` itself elsewhere), integrating after each and signing a checkpoint
    every ``checkpoint_every``; the seconds spent writing and integrating. With ``progress``, one row
    per checkpoint: the write and integration cost per event at that size (insert cost vs size)."""
    from django.db import connection, transaction

    from audit import checkpoints, integrator
    from audit.bulk import record_many
    from audit.log import AuditContext

    context = AuditContext(*SEED_CONTEXT)
    writing = integrating = 0.0
    written = 0
    since = [0.0, 0.0, 0]  # write s, integrate s, events since the last progress row
    while written < count:
        size = min(chunk, count - written, checkpoint_every - written % checkpoint_every)
        entries = _seed_entries(written, size)
        start = time.perf_counter()
        with transaction.atomic():
            if connection.vendor == "postgresql":
                _write_copy(entries)
            else:
                record_many(entries, actor=None, context=context)
        middle = time.perf_counter()
        integrator.integrate_all(max_seconds=3600)
        if (written + size) % checkpoint_every == 0:
            checkpoints.create_checkpoint()
        end = time.perf_counter()
        written += size
        writing, integrating = writing + middle - start, integrating + end - middle
        since = [since[0] + middle - start, since[1] + end - middle, since[2] + size]
        if progress is not None and written % checkpoint_every == 0:
            _progress_row(progress, *since)
            since = [0.0, 0.0, 0]
    return writing, integrating


def _progress_row(rows: list[Row], writing: float, integrating: float, count: int) -> None:
    """One seeding row: wall time per event of the last ``count`` written and integrated, and the
    sizes the event table and its indexes have reached (the evidence on partitioning)."""
    from django.db import connection

    from audit.models import AuditEvent

    sizes = ""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_table_size('audit_auditevent'), pg_indexes_size('audit_auditevent')")
            table, indexes = cursor.fetchone()
        sizes = f"; table {table / 2**20:,.0f} MiB, indexes {indexes / 2**20:,.0f} MiB"
    per_write, per_integration = writing / count * 1e6, integrating / count * 1e6
    emit(
        rows,
        (
            f"seeding at {AuditEvent.objects.count():,} events",
            f"last {count:,}",
            f"write {per_write:.0f} us/event, integrate {per_integration:.0f} us/event (wall){sizes}",
        ),
    )


def bench_lookups(size: int, count: int, rng: random.Random) -> list[Row]:
    """Inclusion proof look-ups and one study's timeline at log size ``size``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from audit.inclusion import INTEGRATED, inclusion_lookup
    from audit.models import AuditEvent

    times, lengths = [], []
    cpu = time.process_time()
    for _ in range(count):
        seq = rng.randrange(size)
        start = time.perf_counter()
        answer = inclusion_lookup(seq)
        times.append(time.perf_counter() - start)
        assert answer.status == INTEGRATED, answer
        lengths.append(len(answer.proof))
    cpu = (time.process_time() - cpu) / count
    with CaptureQueriesContext(connection) as captured:
        for _ in range(10):
            inclusion_lookup(rng.randrange(size))
    rows = [
        (
            "inclusion_lookup(seq) (the API's call)",
            f"{count} random seqs at {size:,}, {min(lengths)}-{max(lengths)} hashes "
            f"(max {max(lengths) * 32} B)",
            f"{_spread(times)}; CPU {cpu * 1e3:.2f} ms, {len(captured) / 10:g} statements per proof",
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


def cpu_costs(size: int, appends: int = 500) -> list[Row]:
    """CPU time (this process) and statements per append, and CPU per event of recomputing leaves."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from audit import log, verify_ranges

    cpu = time.process_time()
    with CaptureQueriesContext(connection) as captured:
        for i in range(appends):
            with transaction.atomic():
                log.record("bench.append", actor=None, object_type="study", object_id=i, details={"i": i})
    cpu = (time.process_time() - cpu) / appends
    rows = [
        (
            "append via record(): per append, one process",
            f"{appends} appends",
            f"{len(captured) / appends:g} statements in the caller's transaction, CPU {cpu * 1e6:.0f} us "
            "(client side, ORM included)",
        )
    ]
    count = min(size, 100_000)
    cpu = time.process_time()
    result = verify_ranges.recompute(0, count)
    cpu = (time.process_time() - cpu) / count
    assert result.failure_seq is None, result
    rows.append(
        (
            "leaf recomputation (verify's work), one process",
            f"{count:,} events from 0",
            f"CPU {cpu * 1e6:.2f} us/event (row fetch + canonical JSON + SHA-256)",
        )
    )
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
    from django.db import connection

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
    writing, integrating = seed(seed_count, args.chunk, max(1, args.events // 10), progress=rows)
    seconds = time.perf_counter() - start
    how = "COPY of record_many's rows" if connection.vendor == "postgresql" else "record_many"
    emit(
        rows,
        (
            f"seed via {how} + integrate",
            f"{seed_count:,} events",
            f"{seconds:.1f} s: writing {writing:.1f} s ({seed_count / writing:,.0f} events/s), integration "
            f"{integrating:.1f} s ({seed_count / integrating:,.0f} leaves/s)",
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
    lookups = bench_lookups(incremental.tree_size, args.proofs, random.Random(args.seed))
    for row in lookups + cpu_costs(incremental.tree_size) + table_sizes():
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
