"""Tampering with the stored log is detected by ``verify_log`` / ``manage.py verify_audit``, at the
right event and for the right reason.

Each test plays someone with raw SQL access: it lifts the immutability triggers with
:func:`audit.immutability.suspended` (as the tables' owner could), rewrites rows, and puts the triggers
back. The signing key stays out of reach, which is the whole point of the checkpoints.
"""

from __future__ import annotations

import base64
import io
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.db import connection, transaction

from audit import checkpoints, immutability, log, verify
from audit.canonical import canonical_json
from audit.merkle import CompactRange, leaf_hash
from audit.models import LEAF_FIELDS, AuditEvent, AuditLogHead, AuditNode, Checkpoint, VerificationRun
from audit.signing import sign_tree_head
from tests.audit.conftest import integrate_now

pytestmark = pytest.mark.django_db

EVENTS = ("audit_auditevent",)


def _sql(statement: str, params: list | None = None, tables: tuple[str, ...] = EVENTS) -> None:
    with immutability.suspended(connection, tables), connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def _rehash(event: AuditEvent) -> str:
    return leaf_hash(canonical_json(event.leaf_document())).hex()


def _rewrite(seq: int, **changes: object) -> None:
    """Change columns of event ``seq`` AND store the leaf hash of the new content (a careful forger)."""
    event = AuditEvent.objects.get(seq=seq)
    for name, value in changes.items():
        setattr(event, name, value)
    with immutability.suspended(connection, EVENTS):
        AuditEvent.objects.filter(seq=seq).update(leaf_hash=_rehash(event), **changes)


def _rebuild_nodes_and_head() -> None:
    """Recompute every stored subtree hash and the head from the events as they now are."""
    accumulator, nodes = CompactRange(), []
    for digest in AuditEvent.objects.order_by("seq").values_list("leaf_hash", flat=True):
        nodes += [n for n in accumulator.append(bytes.fromhex(digest)) if n.level]
    with immutability.suspended(connection, ("audit_auditnode",)):
        AuditNode.objects.all().delete()
        AuditNode.objects.bulk_create(
            AuditNode(level=n.level, index=n.index, hash=n.hash.hex()) for n in nodes
        )
    state = [list(item) for item in accumulator.to_state()]
    AuditLogHead.objects.filter(pk=1).update(size=accumulator.size, frontier=state)


def _verify_command() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def logged(append):
    """16 events with checkpoints at 4 and 12 (the last 4 events are integrated, not yet signed)."""
    append(4)
    checkpoints.create_checkpoint()
    append(8)
    checkpoints.create_checkpoint()
    append(4)
    integrate_now()
    assert verify.verify_log().ok


# --- intact logs ---------------------------------------------------------------------------------------


def test_empty_log_verifies():
    verdict = verify.verify_log()
    assert (verdict.ok, verdict.tree_size, verdict.checkpoints_checked) == (True, 0, 0)

    code, out, err = _verify_command()

    assert (code, err) == (0, "")
    assert out == "audit log intact: 0 events, 0 signed checkpoints verified (no signed checkpoint yet)\n"


def test_intact_log_verifies_with_a_one_line_summary(logged):
    code, out, err = _verify_command()

    assert (code, err) == (0, "")
    assert out == "audit log intact: 16 events, 2 signed checkpoints verified\n"
    run = VerificationRun.objects.get()
    assert (run.ok, run.tree_size, run.checkpoints_checked, run.first_failure_seq) == (True, 16, 2, None)


def test_events_appended_during_verification_are_left_for_the_next_run(logged, monkeypatch):
    """A writer and the integrator committing while the verifier reads must not look like tampering."""
    original = verify.verify_ranges.recompute

    def recompute_then_append(start: int, end: int, progress=None):  # noqa: ANN001, ANN202
        result = original(start, end, progress)
        with transaction.atomic():  # another request commits after the events were read...
            log.record("study.view", actor=None)
        integrate_now()  # ...and the integrator adds it to the tree
        return result

    monkeypatch.setattr(verify.verify_ranges, "recompute", recompute_then_append)

    assert verify.verify_log() == verify.Verdict(True, 16, 2)
    monkeypatch.undo()
    assert verify.verify_log() == verify.Verdict(True, 17, 2)


def test_events_not_yet_integrated_are_counted_not_verified(logged, append):
    append(3)

    verdict = verify.verify_log()

    assert (verdict.ok, verdict.tree_size, verdict.pending) == (True, 16, 3)
    assert verdict.summary().endswith("; 3 recorded events not yet integrated")


# --- tampering -----------------------------------------------------------------------------------------


def test_editing_an_event_is_detected_at_that_event(logged):
    _sql("UPDATE audit_auditevent SET details = %s WHERE seq = 5", ['{"n": 999}'])

    verdict = verify.verify_log()

    assert (verdict.ok, verdict.first_failure_seq) == (False, 5)
    assert "does not match its leaf hash (altered)" in verdict.message
    code, out, err = _verify_command()
    assert (code, out) == (1, "")
    assert err == f"audit log FAILED verification at event 5: {verdict.message}\n"
    assert VerificationRun.objects.get().first_failure_seq == 5


def test_editing_an_event_after_the_last_checkpoint_is_detected_too(logged):
    _sql("UPDATE audit_auditevent SET actor_username = 'mallory' WHERE seq = 14")

    verdict = verify.verify_log()

    assert (verdict.ok, verdict.first_failure_seq) == (False, 14)
    assert "altered" in verdict.message


def test_editing_an_event_and_its_leaf_hash_is_caught_by_the_checkpoint_root(logged):
    _rewrite(5, action="record.delete", details={"n": 5, "why": "never happened"})

    verdict = verify.verify_log()

    # The first checkpoint (4 events) still verifies; the second one's signed root does not.
    assert (verdict.ok, verdict.checkpoints_checked) == (False, 1)
    assert "do not hash to the signed root" in verdict.message
    # The subtree hash stored when events 4 and 5 were appended points at the pair.
    assert verdict.first_failure_seq == 4
    assert "events 4 and 5 no longer hash to their stored Merkle node" in verdict.message


def test_a_rewrite_of_events_nodes_and_head_is_still_caught_by_the_checkpoint(logged):
    _rewrite(9, patient_id=424242)
    _rebuild_nodes_and_head()  # nothing in the database disagrees with the new history any more

    verdict = verify.verify_log()

    assert (verdict.ok, verdict.checkpoints_checked) == (False, 1)
    # Events before the first checkpoint are vouched for by it; the rewrite is after it.
    assert verdict.first_failure_seq == 4
    assert "an event from 4 on was rewritten" in verdict.message


def test_deleting_an_event_leaves_a_gap_at_that_seq(logged):
    _sql("DELETE FROM audit_auditevent WHERE seq = 7")

    verdict = verify.verify_log()

    assert (verdict.ok, verdict.first_failure_seq) == (False, 7)
    assert verdict.message == "event 7 is missing (next stored event is 8)"


def test_swapping_two_events_is_detected_at_the_first(logged):
    columns = [name for name in LEAF_FIELDS if name != "seq"] + ["leaf_hash"]
    first, second = (AuditEvent.objects.filter(seq=seq).values(*columns).get() for seq in (3, 10))
    with immutability.suspended(connection, EVENTS):
        AuditEvent.objects.filter(seq=3).update(**second)
        AuditEvent.objects.filter(seq=10).update(**first)

    verdict = verify.verify_log()

    assert (verdict.ok, verdict.first_failure_seq) == (False, 3)
    assert "altered" in verdict.message


def test_truncating_the_tail_behind_a_checkpoint_is_detected(logged):
    """Events 10-15 removed, and the nodes and head made to agree: the checkpoint at 12 remembers."""
    _sql("DELETE FROM audit_auditevent WHERE seq >= 10")
    _rebuild_nodes_and_head()

    verdict = verify.verify_log()

    assert (verdict.ok, verdict.first_failure_seq, verdict.checkpoints_checked) == (False, 10, 1)
    assert "a signed checkpoint covers 12 events but the log holds only 10" in verdict.message


def test_truncating_events_after_the_last_checkpoint_is_caught_by_the_head(logged):
    _sql("DELETE FROM audit_auditevent WHERE seq >= 13")

    verdict = verify.verify_log()

    assert (verdict.ok, verdict.first_failure_seq) == (False, 13)
    assert "the log head counts 16 events but only 13 are stored" in verdict.message


def test_a_forged_checkpoint_is_detected(logged):
    """A checkpoint over a rewritten history, signed with a key that is not the portal's."""
    _rewrite(14, action="login.success")
    _rebuild_nodes_and_head()
    size, root = log.current_root()
    forger = Ed25519PrivateKey.generate()
    stamp = int(time.time() * 1000)
    Checkpoint.objects.create(
        tree_size=size,
        root_hash=root.hex(),
        timestamp_ms=stamp,
        signature=base64.b64encode(sign_tree_head(forger, size, root, stamp)).decode(),
        key_fingerprint="0" * 64,
    )

    verdict = verify.verify_log()

    assert (verdict.ok, verdict.first_failure_seq, verdict.checkpoints_checked) == (False, 15, 2)
    assert verdict.message == "checkpoint at size 16 has an invalid signature (forged)"


def test_editing_a_signed_root_breaks_its_signature(logged):
    _sql(
        "UPDATE audit_checkpoint SET root_hash = %s WHERE tree_size = 4",
        ["ab" * 32],
        tables=("audit_checkpoint",),
    )

    verdict = verify.verify_log()

    assert (verdict.ok, verdict.first_failure_seq, verdict.checkpoints_checked) == (False, 3, 0)
    assert "invalid signature (forged)" in verdict.message


def test_a_deleted_merkle_node_is_reported_not_raised(logged):
    _sql('DELETE FROM audit_auditnode WHERE level = 2 AND "index" = 1', tables=("audit_auditnode",))

    verdict = verify.verify_log()

    assert (verdict.ok, verdict.first_failure_seq) == (False, 11)
    assert "Merkle node (2, 1) is missing" in verdict.message


def test_a_rewritten_head_frontier_is_detected(logged):
    head = AuditLogHead.objects.get()
    head.frontier = [[4, "00" * 32]]
    head.save()

    verdict = verify.verify_log()

    assert not verdict.ok
    assert verdict.message == "the log head's Merkle frontier does not match the events"


def test_a_deleted_head_is_detected(logged):
    AuditLogHead.objects.all().delete()

    verdict = verify.verify_log()

    assert not verdict.ok
    assert "log head is missing" in verdict.message
