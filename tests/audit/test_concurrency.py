"""Concurrent writers, an integrator and a checkpointer: the integrated log is gap-free and ordered,
and the tree never forks.

Every writer thread has its own database connection and appends events in separate transactions,
some of which roll back; an integrator thread and a checkpoint thread run meanwhile. On SQLite a
rolled-back number is taken again by the next writer; on PostgreSQL it becomes a void leaf once the
sequencer's fence proves it abandoned. PostgreSQL runs more threads; SQLite serialises writers.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from audit import checkpoints, integrator, log, verify
from audit.merkle import MerkleTree, verify_inclusion
from audit.models import AuditEvent, AuditLogHead, AuditNode, Checkpoint
from tests.audit.conftest import integrate_now

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    """Raised inside a writer's transaction to roll it back after its event was recorded."""


def _run_threads(targets: list) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(target) -> None:  # noqa: ANN001
        try:
            barrier.wait()
            target()
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)
        finally:
            connection.close()  # each thread opened its own connection

    threads = [threading.Thread(target=wrap, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    return errors


def test_concurrent_writers_get_gapless_seqs_and_one_tree():
    writers, per_writer = (8, 25) if connection.vendor == "postgresql" else (4, 10)
    committed: list[tuple[int, int]] = []  # (writer, seq) of each committed event
    lock = threading.Lock()
    done = threading.Event()

    def writer(number: int) -> None:
        for i in range(per_writer):
            try:
                with transaction.atomic():
                    event = log.record(f"writer.{number}", actor=None, object_id=i, details={"i": i})
                    if i % 5 == 4:  # every fifth transaction fails after recording its event
                        raise Rollback
            except Rollback:
                continue
            with lock:
                committed.append((number, event.seq))

    def checkpointer() -> None:
        while not done.wait(0.01):
            checkpoints.create_checkpoint()

    def integrator_loop() -> None:
        while not done.wait(0.005):
            integrator.integrate()

    def writers_then_stop(number: int):  # noqa: ANN202
        def run() -> None:
            try:
                writer(number)
            finally:
                with lock:
                    finished.append(number)
                    if len(finished) == writers:
                        done.set()

        return run

    finished: list[int] = []
    errors = _run_threads([writers_then_stop(n) for n in range(writers)] + [checkpointer, integrator_loop])

    assert errors == []
    expected = writers * (per_writer - per_writer // 5)
    size = integrate_now()
    # Gap-free and unique: the integrated log is exactly 0..size-1, every committed event is in it
    # once at the seq it was given, and every other number is a void leaf.
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(range(size))
    voids = set(AuditEvent.objects.filter(action=integrator.VOID_ACTION).values_list("seq", flat=True))
    assert sorted(seq for _, seq in committed) == sorted(set(range(size)) - voids)
    assert size == expected + len(voids)
    if connection.vendor == "sqlite":
        assert voids == set()  # the next writer took the rolled-back number again
    else:
        assert len(voids) == writers * (per_writer // 5)  # one per rolled-back transaction, no more
    # Each writer's own events keep their order (a later transaction never gets a smaller seq).
    for number in range(writers):
        mine = [seq for w, seq in committed if w == number]
        assert mine == sorted(mine)
    assert AuditEvent.objects.filter(object_id="4").count() == 0  # every rolled-back event is gone

    # One tree: the head, every stored node and every checkpoint agree with the events as stored.
    leaves = [
        bytes.fromhex(h) for h in AuditEvent.objects.order_by("seq").values_list("leaf_hash", flat=True)
    ]
    tree = MerkleTree.from_leaf_hashes(leaves)
    assert AuditLogHead.objects.get().size == size
    assert log.current_root() == (size, tree.root())
    for node in AuditNode.objects.all():
        assert tree.get_node(node.level, node.index).hex() == node.hash
    assert AuditNode.objects.count() == sum(size >> level for level in range(1, size.bit_length()))
    for checkpoint in Checkpoint.objects.all():
        assert bytes.fromhex(checkpoint.root_hash) == tree.root(checkpoint.tree_size)
        assert verify_inclusion(
            leaves[0],
            0,
            checkpoint.tree_size,
            checkpoints.inclusion_proof(0, checkpoint.tree_size),
            bytes.fromhex(checkpoint.root_hash),
        )
    verdict = verify.verify_log()
    assert verdict.ok, verdict.summary()
    assert verdict.checkpoints_checked == Checkpoint.objects.count()


def test_verification_while_writers_append_reports_no_false_alarm():
    """The nightly verification runs on a live system: appends racing it must not read as tampering."""
    writers, per_writer = (4, 20) if connection.vendor == "postgresql" else (2, 10)
    with transaction.atomic():
        log.record("seed", actor=None)
    checkpoints.create_checkpoint()
    verdicts: list[verify.Verdict] = []
    done = threading.Event()
    finished: list[int] = []

    def writer() -> None:
        try:
            for i in range(per_writer):
                with transaction.atomic():
                    log.record("live", actor=None, object_id=i)
                if i % 4 == 0:
                    checkpoints.create_checkpoint()
        finally:
            finished.append(1)
            if len(finished) == writers:
                done.set()

    def verifier() -> None:
        while not done.is_set():
            verdicts.append(verify.verify_log())

    def integrator_loop() -> None:
        while not done.wait(0.005):
            integrator.integrate()

    errors = _run_threads([writer] * writers + [verifier, integrator_loop])

    assert errors == []
    assert verdicts
    assert [v for v in verdicts if not v.ok] == []
    assert integrate_now() == 1 + writers * per_writer
    assert verify.verify_log().tree_size == 1 + writers * per_writer
