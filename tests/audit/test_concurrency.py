"""Concurrent writers: sequence numbers stay gapless and the tree never forks.

Every writer thread has its own database connection and appends events in separate transactions,
some of which roll back; a checkpoint thread signs tree heads meanwhile. PostgreSQL runs more
threads (row locks, READ COMMITTED); SQLite serialises whole write transactions and runs fewer.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from audit import checkpoints, log, verify
from audit.merkle import MerkleTree, verify_inclusion
from audit.models import AuditEvent, AuditLogHead, AuditNode, Checkpoint

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
    errors = _run_threads([writers_then_stop(n) for n in range(writers)] + [checkpointer])

    assert errors == []
    expected = writers * (per_writer - per_writer // 5)
    # Gapless and unique: the committed seqs are exactly 0..n-1, and rolled-back ones were reused.
    assert sorted(seq for _, seq in committed) == list(range(expected))
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(range(expected))
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
    assert AuditLogHead.objects.get().size == expected
    assert log.current_root() == (expected, tree.root())
    for node in AuditNode.objects.all():
        assert tree.get_node(node.level, node.index).hex() == node.hash
    assert AuditNode.objects.count() == sum(expected >> level for level in range(1, expected.bit_length()))
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

    errors = _run_threads([writer] * writers + [verifier])

    assert errors == []
    assert verdicts
    assert [v for v in verdicts if not v.ok] == []
    assert verify.verify_log().tree_size == 1 + writers * per_writer
