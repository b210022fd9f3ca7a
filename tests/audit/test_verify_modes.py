"""``verify_audit``: incremental from the last verified checkpoint by default, ``--full`` over every
event in worker processes, and a log with no checkpoint (or no key file) yet (issue #13)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection

from audit import checkpoints, immutability, verify
from audit.models import AuditNode, VerificationRun
from tests.audit.conftest import append_events, integrate_now


def _command(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def _alter_event(seq: int) -> None:
    with immutability.suspended(connection, ("audit_auditevent",)), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET details = %s WHERE seq = %s", ['{"n": -1}', seq])


@pytest.fixture
def no_key_file(settings, tmp_path):
    """A new installation: no signing key file, and none may be created."""
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "not-yet" / "audit-signing-key.pem"
    settings.AUDIT_SIGNING_KEY_CREATE = False
    checkpoints._signing_key.cache_clear()
    yield
    checkpoints._signing_key.cache_clear()


@pytest.mark.django_db
def test_a_log_without_checkpoint_or_key_file_is_verified_leaf_by_leaf(no_key_file):
    append_events(9)
    integrate_now()

    code, out, err = _command()

    assert (code, err) == (0, "")
    assert out == "audit log intact: 9 events, 0 signed checkpoints verified (no signed checkpoint yet)\n"


@pytest.mark.django_db
def test_tampering_without_a_checkpoint_still_exits_1(no_key_file):
    append_events(9)
    integrate_now()
    _alter_event(4)

    code, out, err = _command("--full")

    assert (code, out) == (1, "")
    assert "FAILED verification at event 4" in err


@pytest.mark.django_db
def test_checkpoints_without_their_key_cannot_be_verified(settings, tmp_path):
    append_events(3)
    checkpoints.create_checkpoint()
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "gone.pem"
    settings.AUDIT_SIGNING_KEY_CREATE = False
    checkpoints._signing_key.cache_clear()

    with pytest.raises(Exception, match="cannot verify") as raised:
        call_command("verify_audit")
    assert raised.value.returncode == 2


@pytest.mark.django_db
@pytest.mark.parametrize("workers", ["0", "-3", "999", "many"])
def test_bad_worker_counts_are_refused(workers):
    with pytest.raises(Exception, match="workers|invalid int"):
        call_command("verify_audit", "--full", "--workers", workers)


@pytest.fixture
def verified(append):
    """20 events, checkpoints at 8 and 16, all verified once in full."""
    append(8)
    checkpoints.create_checkpoint()
    append(8)
    checkpoints.create_checkpoint()
    append(4)
    integrate_now()
    verdict, run = verify.verify_and_store(full=True)
    assert verdict.ok and run.checkpoint_size == 16 and run.full


@pytest.mark.django_db
def test_the_next_run_resumes_from_the_last_verified_checkpoint(verified, append):
    append(5)
    checkpoints.create_checkpoint()

    code, out, _ = _command()

    assert code == 0
    assert "25 events, 2 signed checkpoints verified, events from 16 on recomputed (incremental" in out
    run = VerificationRun.objects.order_by("-pk").first()
    assert (run.ok, run.full, run.checkpoint_size) == (True, False, 25)


@pytest.mark.django_db
def test_incremental_catches_what_follows_the_checkpoint_and_full_catches_the_rest(verified):
    _alter_event(3)  # before the last verified checkpoint: only a full run rereads it
    assert verify.verify_log(full=False).ok
    full = verify.verify_log(full=True)
    assert (full.ok, full.first_failure_seq) == (False, 3)

    _alter_event(18)
    incremental = verify.verify_log(full=False)
    assert (incremental.ok, incremental.first_failure_seq) == (False, 18)


@pytest.mark.django_db
def test_incremental_refuses_stored_nodes_that_disagree_with_its_starting_checkpoint(verified):
    with immutability.suspended(connection, ("audit_auditnode",)):
        AuditNode.objects.filter(level=4, index=0).update(hash="ab" * 32)

    verdict = verify.verify_log(full=False)

    assert not verdict.ok
    assert "stored Merkle nodes disagree with the signed checkpoint at size 16" in verdict.message


@pytest.mark.django_db(transaction=True)
def test_full_verification_in_worker_processes_agrees_and_finds_the_first_failure():
    append_events(600)
    checkpoints.create_checkpoint()
    append_events(300)
    integrate_now()
    sequential = verify.verify_log(full=True, workers=1)
    parallel = verify.verify_log(full=True, workers=3, parallel_min=1)
    assert sequential.ok and parallel == sequential

    _alter_event(850)
    _alter_event(420)

    verdict = verify.verify_log(full=True, workers=3, parallel_min=1)
    assert (verdict.ok, verdict.first_failure_seq) == (False, 420)
    assert "does not match its leaf hash" in verdict.message
