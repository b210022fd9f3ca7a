"""Crash safety of sequencing and integration: kill -9 of the integrator mid-batch, a writer killed
inside its transaction, a rolled-back request, and (PostgreSQL) every connection dropped as a server
restart drops them, followed by the sequence jump PostgreSQL makes after crash recovery.

After each: no leaf is lost, duplicated or reordered, and the tree stays consistent with every
checkpoint signed before. The victims run as separate processes (``manage.py shell -c``) against the
test database, so the kill is a real ``SIGKILL`` of a process holding a database transaction.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection, transaction

from audit import checkpoints, integrator, log, verify
from audit.bulk import record_many
from audit.merkle import MerkleTree, verify_consistency
from audit.models import AuditEvent, AuditLogHead, AuditNode, Checkpoint
from portal.core.workers import database_url
from tests.audit.conftest import integrate_now

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]

# The integrator's batch is written, then the process stops inside the transaction and waits to be
# killed: the kill lands after the nodes and voids were inserted but before the commit.
INTEGRATOR_STOPPED_MID_BATCH = """
import sys, time
from audit import integrator
from audit.models import AuditNode
real = AuditNode.objects.bulk_create
def written_then_wait(*args, **kwargs):
    created = real(*args, **kwargs)
    print("MID-BATCH", flush=True)
    time.sleep(600)
    return created
AuditNode.objects.bulk_create = written_then_wait
integrator.integrate(max_batch=100000)
"""

WRITER_STOPPED_IN_TRANSACTION = """
import time
from django.db import transaction
from audit import log
with transaction.atomic():
    log.record("crash.victim", actor=None, details={"killed": True})
    print("RECORDED", flush=True)
    time.sleep(600)
"""


def _start(script: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict)}
    return subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_when(process: subprocess.Popen[str], marker: str) -> None:
    """Wait for ``marker`` on the victim's output, then SIGKILL it."""
    _wait_for(process, marker)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def _wait_for(process: subprocess.Popen[str], marker: str) -> None:
    """Read the victim's output up to ``marker`` (the shell prints a line of its own first)."""
    for line in process.stdout:
        if marker in line:
            return
    raise AssertionError(f"victim ended before {marker!r}: {process.stderr.read()[-2000:]}")


def _append(count: int, action: str = "crash.test") -> None:
    with transaction.atomic():
        record_many(
            [{"action": action, "object_id": i, "details": {"i": i}} for i in range(count)], actor=None
        )


def _assert_one_consistent_log(signed_before: list[Checkpoint]) -> int:
    """Every number 0..n-1 once, the tree and every earlier checkpoint agree; the size."""
    size = integrate_now()
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(size))
    leaves = [
        bytes.fromhex(h) for h in AuditEvent.objects.order_by("seq").values_list("leaf_hash", flat=True)
    ]
    tree = MerkleTree.from_leaf_hashes(leaves)
    assert AuditLogHead.objects.get().size == size
    assert AuditNode.objects.count() == sum(size >> level for level in range(1, size.bit_length()))
    latest = checkpoints.create_checkpoint()
    for old in signed_before:
        assert bytes.fromhex(old.root_hash) == tree.root(old.tree_size)
        proof = checkpoints.consistency_proof(old.tree_size, latest.tree_size)
        assert verify_consistency(
            old.tree_size,
            latest.tree_size,
            bytes.fromhex(old.root_hash),
            bytes.fromhex(latest.root_hash),
            proof,
        )
    verdict = verify.verify_log(full=True)
    assert verdict.ok, verdict.summary()
    return size


def test_kill_9_of_the_integrator_mid_batch_loses_duplicates_and_reorders_nothing():
    _append(300)
    signed = checkpoints.create_checkpoint()
    _append(3000)
    victim = _start(INTEGRATOR_STOPPED_MID_BATCH)

    _kill_when(victim, "MID-BATCH")

    # The killed batch left nothing: the head, the nodes and the signed checkpoint are as before.
    assert AuditLogHead.objects.get().size == 300
    assert not AuditNode.objects.filter(level=1, index__gte=150).exists()
    assert _assert_one_consistent_log([signed]) == 3300
    assert AuditEvent.objects.filter(action="crash.test").count() == 3300
    assert not AuditEvent.objects.filter(action=integrator.VOID_ACTION).exists()


def test_a_writer_killed_inside_its_transaction_leaves_no_event_and_no_gap():
    _append(10)
    signed = checkpoints.create_checkpoint()
    victim = _start(WRITER_STOPPED_IN_TRANSACTION)

    _kill_when(victim, "RECORDED")
    _append(5, "after.crash")

    size = _assert_one_consistent_log([signed])
    assert not AuditEvent.objects.filter(action="crash.victim").exists()
    voids = AuditEvent.objects.filter(action=integrator.VOID_ACTION).count()
    # SQLite gives the dead writer's number to the next writer; PostgreSQL voids it, provably.
    assert voids == (0 if connection.vendor == "sqlite" else 1)
    assert size == 15 + voids
    assert (
        list(
            AuditEvent.objects.exclude(action=integrator.VOID_ACTION)
            .order_by("seq")
            .values_list("action", flat=True)
        )
        == ["crash.test"] * 10 + ["after.crash"] * 5
    )


def test_a_rolled_back_request_between_checkpoints_keeps_the_log_consistent():
    _append(7)
    signed = checkpoints.create_checkpoint()
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        log.record("request.failed", actor=None)
        _ = 1 / 0
    _append(2, "after.rollback")

    _assert_one_consistent_log([signed])
    assert not AuditEvent.objects.filter(action="request.failed").exists()


def test_dropped_connections_and_the_sequence_jump_of_a_server_restart():
    """What a PostgreSQL restart does to this log: every session is cut (a writer's open transaction
    and an integrator's batch abort) and, after crash recovery, the sequence may resume up to 32
    numbers ahead. Both leave only holes, which become void leaves; nothing committed is lost."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no server to restart (see the kill -9 tests)")
    _append(20)
    signed = checkpoints.create_checkpoint()
    _append(2000)
    writer = _start(WRITER_STOPPED_IN_TRANSACTION)
    _wait_for(writer, "RECORDED")
    batch = _start(INTEGRATOR_STOPPED_MID_BATCH)
    _wait_for(batch, "MID-BATCH")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 2
        # Crash recovery replays the sequence from its WAL record, logged up to 32 values ahead.
        cursor.execute("SELECT setval('audit_event_seq', nextval('audit_event_seq') + 32)")
    for process in (writer, batch):
        process.kill()
        process.wait(timeout=30)
    _append(3, "after.restart")

    size = _assert_one_consistent_log([signed])
    assert not AuditEvent.objects.filter(action="crash.victim").exists()
    assert AuditEvent.objects.filter(action="crash.test").count() == 2020
    assert AuditEvent.objects.filter(action="after.restart").count() == 3
    assert AuditEvent.objects.filter(action=integrator.VOID_ACTION).count() == size - 2023
