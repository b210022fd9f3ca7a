"""Benchmark of the database-backed audit log (audit/log.py, audit/verify.py, audit/checkpoints.py).

Run from the repository root against PostgreSQL::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/concordance_bench \\
        .venv/bin/python bench/audit.py [--events 100000] [--append 2000] [--threads 8] [--proofs 200]

The script never touches the database named in DATABASE_URL: like the test runner, it creates a
throwaway ``test_<name>`` database next to it, migrates it, and drops it at the end. Measured:

(a) appends per second through :func:`audit.log.record`, one event per transaction (as one request
    records one change), with one writer and with ``--threads`` concurrent writer threads, each on its
    own connection. Every append locks the log head row, so writers serialise by design;
(b) :func:`audit.verify.verify_log` over ``--events`` events with a signed checkpoint every tenth of
    the log. To seed that many events quickly they are written in transactions of ``--chunk`` events
    by :func:`seed`, which computes each event, its leaf hash, the stored subtree hashes and the head
    with exactly the code path of ``record`` (``AuditEvent.leaf_document``, ``canonical_json``,
    ``CompactRange``), only inserting with ``bulk_create``; the verification at the end proves the
    seeded log is indistinguishable from one written by ``record``;
(c) inclusion and consistency proofs served from the database for random positions: size in hashes
    and bytes, time to build from the database and time to verify.

Prints one table. The SQLite default works too, but the figures are meant for PostgreSQL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("CONCORDANCE_TLS", "0")

Row = tuple[str, str, str]


def _fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def bench_appends(total: int, threads: int) -> float:
    """Append ``total`` events with ``record``, one per transaction, over ``threads`` writer threads;
    return events per second (wall clock)."""
    from django.db import connection, transaction

    from audit import log

    per_thread = total // threads
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with transaction.atomic():
                    log.record(
                        "bench.append",
                        actor=None,
                        object_type="study",
                        object_id=i,
                        patient_id=number,
                        details={"writer": number, "i": i},
                    )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return per_thread * threads / elapsed


def seed(count: int, chunk: int, checkpoint_every: int) -> None:
    """Append ``count`` events in transactions of ``chunk`` events through ``audit.bulk.record_many`` (the
    bulk path imports use: same lock, hashes and rows as ``record``), signing a checkpoint every
    ``checkpoint_every`` events."""
    from django.db import transaction

    from audit import checkpoints
    from audit.bulk import record_many
    from audit.log import AuditContext
    from audit.models import AuditLogHead

    context = AuditContext(
        client_address="10.0.0.1", user_agent="Mozilla/5.0 (bench)", channel="GET /studies/"
    )
    actions = ("study.view", "report.view", "ai_output.create", "export.create")
    written = 0
    while written < count:
        with transaction.atomic():
            head = AuditLogHead.objects.filter(pk=1).first()
            start = head.size if head else 0
            # Stop each batch at the next multiple of checkpoint_every of the whole log's size.
            size = min(chunk, count - written, checkpoint_every - start % checkpoint_every)
            entries = [
                {
                    "action": actions[seq % 4],
                    "object_type": "study",
                    "object_id": seq // 3,
                    "patient_id": seq // 30,
                    "study_id": seq // 3,
                    "details": {"page": "worklist", "n": seq},
                }
                for seq in range(start, start + size)
            ]
            record_many(entries, actor=None, context=context)
        written += size
        if (start + size) % checkpoint_every == 0:
            checkpoints.create_checkpoint()


def bench_proofs(size: int, count: int, rng: random.Random) -> list[Row]:
    """Inclusion and consistency proofs from the database at ``size``: sizes and times."""
    from audit import checkpoints
    from audit.merkle import HASH_SIZE, verify_consistency, verify_inclusion
    from audit.models import AuditEvent

    rows: list[Row] = []
    root = checkpoints.root_at(size)
    build, check, lengths = [], [], []
    for _ in range(count):
        seq = rng.randrange(size)
        leaf = bytes.fromhex(AuditEvent.objects.values_list("leaf_hash", flat=True).get(seq=seq))
        start = time.perf_counter()
        proof = checkpoints.inclusion_proof(seq, size)
        build.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert verify_inclusion(leaf, seq, size, proof, root)
        check.append(time.perf_counter() - start)
        lengths.append(len(proof))
    rows.append(_proof_row("inclusion proof", lengths, HASH_SIZE, build, check))

    build, check, lengths = [], [], []
    for _ in range(count):
        old = rng.randrange(1, size)
        old_root = checkpoints.root_at(old)
        start = time.perf_counter()
        proof = checkpoints.consistency_proof(old, size)
        build.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert verify_consistency(old, size, old_root, root, proof)
        check.append(time.perf_counter() - start)
        lengths.append(len(proof))
    rows.append(_proof_row("consistency proof", lengths, HASH_SIZE, build, check))

    times = []
    for _ in range(count):
        n = rng.randrange(1, size + 1)
        start = time.perf_counter()
        checkpoints.root_at(n)
        times.append(time.perf_counter() - start)
    rows.append(
        (
            "root_at(n) from stored nodes",
            f"{count} random n",
            f"median {_fmt_time(statistics.median(times))}, p95 {_fmt_time(_percentile(times, 0.95))}",
        )
    )
    return rows


def _proof_row(name: str, lengths: list[int], hash_size: int, build: list[float], check: list[float]) -> Row:
    return (
        f"{name} (DB build / verify)",
        f"{len(lengths)} random, {min(lengths)}-{max(lengths)} hashes (max {max(lengths) * hash_size} bytes)",
        f"build median {_fmt_time(statistics.median(build))}, p95 {_fmt_time(_percentile(build, 0.95))}; "
        f"verify median {_fmt_time(statistics.median(check))}",
    )


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall-clock seconds of one call, and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    """Parse the options, build a throwaway database, run the measurements and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="log size for verify_log and the proofs")
    parser.add_argument("--append", type=int, default=2_000, help="events appended per throughput run")
    parser.add_argument("--threads", type=int, default=8, help="concurrent writer threads")
    parser.add_argument("--chunk", type=int, default=20_000, help="events per seeding transaction")
    parser.add_argument("--proofs", type=int, default=200, help="proofs of each kind")
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

    from audit import verify
    from audit.models import AuditEvent, AuditNode, Checkpoint

    db_config = setup_databases(verbosity=0, interactive=False)
    rows: list[Row] = []
    try:
        vendor = connection.vendor
        server = connection.cursor().connection.info.server_version if vendor == "postgresql" else ""

        single = bench_appends(args.append, 1)
        rows.append(("append via record(), 1 writer", f"{args.append} events", f"{single:,.0f} events/s"))
        multi = bench_appends(args.append, args.threads)
        rows.append(
            (
                f"append via record(), {args.threads} writer threads",
                f"{args.append // args.threads * args.threads} events",
                f"{multi:,.0f} events/s",
            )
        )
        appended = AuditEvent.objects.count()

        seed_count = args.events - appended
        seconds, _ = timed(lambda: seed(seed_count, args.chunk, max(1, args.events // 10)))
        rows.append(
            (
                "seed via audit.bulk.record_many",
                f"{seed_count:,} events",
                f"{seconds:.1f} s ({seed_count / seconds:,.0f} events/s)",
            )
        )
        seconds, verdict = timed(verify.verify_log)
        assert verdict.ok, verdict.summary()
        rows.append(
            (
                "verify_log (every leaf, checkpoint, proof)",
                f"{verdict.tree_size:,} events, {verdict.checkpoints_checked} checkpoints",
                f"{seconds:.2f} s ({verdict.tree_size / seconds:,.0f} events/s)",
            )
        )
        rows += bench_proofs(verdict.tree_size, args.proofs, random.Random(args.seed))
        nodes = AuditNode.objects.count()
        checkpoints = Checkpoint.objects.count()
    finally:
        teardown_databases(db_config, verbosity=0)
        key_dir.cleanup()

    print(f"# Audit log benchmark, {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}")
    print(
        f"# python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs; "
        f"database {vendor} {server}"
    )
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# stored: {verdict.tree_size:,} events, {nodes:,} Merkle nodes, {checkpoints} checkpoints")
    print()
    widths = [max(len(r[i]) for r in [("measurement", "workload", "result"), *rows]) for i in range(3)]
    for i, row in enumerate([("measurement", "workload", "result"), *rows]):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("-+-".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
