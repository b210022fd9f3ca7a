"""Inclusion proof look-up: a proof for every integrated event, "not yet integrated, expected
within N s" for a newer one, "unknown" for a number nobody committed, and refusals of bad input."""

from __future__ import annotations

import datetime as dt
import io
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from audit import checkpoints, integrator
from audit.inclusion import INTEGRATED, PENDING, UNKNOWN, inclusion_lookup
from audit.merkle import verify_inclusion
from audit.models import AuditLogHead, Checkpoint
from tests.audit.conftest import integrate_now

pytestmark = pytest.mark.django_db


def test_every_integrated_event_has_a_proof_against_the_latest_covering_checkpoint(append):
    append(6)
    checkpoints.create_checkpoint()
    append(5)
    integrate_now()
    signed = Checkpoint.objects.get()

    for seq in range(11):
        answer = inclusion_lookup(seq)
        assert answer.status == INTEGRATED
        expected_size = 6 if seq < 6 else 11  # the signed checkpoint first, else the integrated tree
        assert answer.tree_size == expected_size
        root = bytes.fromhex(signed.root_hash) if seq < 6 else checkpoints.root_at(11)
        proof = [bytes.fromhex(h) for h in answer.proof]
        assert verify_inclusion(bytes.fromhex(answer.leaf_hash), seq, answer.tree_size, proof, root)
        assert answer.to_dict()["proof"] == list(answer.proof)


def test_a_recorded_event_not_yet_integrated_says_when_to_come_back(append):
    append(3)
    integrate_now()
    [seq] = append(1)

    answer = inclusion_lookup(seq)

    assert (answer.status, answer.proof, answer.retry_after_s) == (PENDING, (), 11)
    assert "not yet integrated" in answer.message and "expected within 11 s" in answer.message
    # A tree size beyond the integrated one is pending too, even for an old event.
    assert inclusion_lookup(0, tree_size=4).status == PENDING
    integrate_now()
    assert inclusion_lookup(seq).status == INTEGRATED


def test_a_stalled_integrator_is_reported_instead_of_a_promise(append):
    append(2)
    integrate_now()
    AuditLogHead.objects.update(integrated_at=timezone.now() - dt.timedelta(minutes=5))
    [seq] = append(1)

    answer = inclusion_lookup(seq)

    assert (answer.status, answer.retry_after_s) == (PENDING, None)
    assert answer.message.endswith("the integrator is not running")


def test_a_number_nobody_committed_is_unknown(append):
    append(2)
    assert inclusion_lookup(99).status == UNKNOWN


@pytest.mark.parametrize(
    ("seq", "tree_size"),
    [(-1, None), (True, None), ("3", None), (3.0, None), (2, 2), (5, 1), (1, "9"), (1, False)],
)
def test_bad_arguments_are_refused(append, seq, tree_size):
    append(3)
    with pytest.raises(ValueError):
        inclusion_lookup(seq, tree_size)


def test_the_integrator_command_runs_once_and_refuses_bad_options(append):
    append(4)
    out = io.StringIO()
    call_command("audit_integrator", "--once", stdout=out)
    assert out.getvalue() == "integrated 4 leaves (0 void); tree size 4\n"
    for bad in (["--interval", "0"], ["--batch", "0"], ["--checkpoint-seconds", "-1"]):
        with pytest.raises(Exception, match="must be"):
            call_command("audit_integrator", "--once", *bad)


@pytest.mark.django_db(transaction=True)
def test_two_integrators_never_run_a_pass_at_the_same_time(append):
    """The lease: on PostgreSQL a second pass skips at once (busy); on SQLite it waits for the
    first to commit (one writer at a time), then finds nothing left to do."""
    append(2)
    integrate_now()
    append(1)
    held, released = threading.Event(), threading.Event()
    moments: dict[str, float] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                integrator.lease(wait=False)
                held.set()
                time.sleep(0.5)
                moments["released"] = time.monotonic()
        finally:
            released.set()
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    second = integrator.integrate()
    moments["second"] = time.monotonic()
    thread.join(10)

    if connection.vendor == "postgresql":
        assert second.busy  # skipped at once, without waiting for the first pass
    else:
        assert not second.busy and moments["second"] >= moments["released"]
    assert integrate_now() == 3


def test_a_proof_takes_two_queries_whatever_the_size(append, django_assert_num_queries):
    # The head with the covering checkpoint, then the leaf and every node in one UNION ALL.
    append(37)
    checkpoints.create_checkpoint()
    append(20)
    integrate_now()
    for seq in (0, 12, 36, 37, 56):
        with django_assert_num_queries(2):
            answer = inclusion_lookup(seq)
        root = checkpoints.root_at(answer.tree_size)
        proof = [bytes.fromhex(h) for h in answer.proof]
        assert verify_inclusion(bytes.fromhex(answer.leaf_hash), seq, answer.tree_size, proof, root)
    with django_assert_num_queries(2):
        assert inclusion_lookup(5, tree_size=40).status == INTEGRATED
