"""Appending events: one transaction with the change, sequence numbers at insert, and the tree the
integrator builds from them (gap-free, every perfect subtree stored).

The failure-injection tests use real transactions (``transaction=True``), so that a rollback is the
database's own, not a savepoint inside the test's wrapping transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.db import IntegrityError, connection, transaction

from audit import integrator, log, verify
from audit.canonical import canonical_json
from audit.merkle import MerkleTree, leaf_hash
from audit.models import ActorKind, AuditEvent, AuditLogHead, AuditNode
from portal.records import services
from portal.records.ingest.payloads import PatientPayload, StudyPayload
from portal.records.models import Patient, Study
from tests.audit.conftest import integrate_now


class InjectedFailure(RuntimeError):
    """Raised by the tests in the middle of a write, where a crash or a bug could strike."""


def _study_payload(accession: str = "ACC9001") -> StudyPayload:
    return StudyPayload(
        study_instance_uid=f"1.2.826.0.1.3680043.10.9.{accession[3:]}",
        accession_number=accession,
        patient=PatientPayload(
            mrn=f"MRN-{accession}", family_name="Testperson", given_name="Ada", birth_date=None, sex="F"
        ),
        modality="CR",
        body_part="CHEST",
        specialty="chest",
        study_datetime=dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC),
        description="XR CHEST 2 VIEWS",
        priority="routine",
        referring_physician="Grey, Meredith",
    )


def _ingest(accession: str = "ACC9001") -> services.Ingested:
    return services.study_ingest(payload=_study_payload(accession), actor=None, context=log.SYSTEM)


def _head_size() -> int:
    head = AuditLogHead.objects.filter(pk=1).first()
    return head.size if head is not None else 0


def _real_actions() -> list[str]:
    """The actions of the integrated log in seq order, void leaves left out."""
    return list(
        AuditEvent.objects.exclude(action=integrator.VOID_ACTION)
        .order_by("seq")
        .values_list("action", flat=True)
    )


# --- the change and its event commit together --------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_change_and_its_events_commit_together():
    ingested = _ingest()

    actions = list(AuditEvent.objects.order_by("seq").values_list("action", "object_id"))
    assert actions == [
        ("patient.create", str(ingested.record.patient_id)),
        ("study.create", str(ingested.record.pk)),
    ]
    assert _head_size() == 0  # recorded, not yet integrated: the request took no lock on the tree
    assert integrate_now() == 2


@pytest.mark.django_db(transaction=True)
def test_no_change_without_its_event(monkeypatch):
    """The study's event is inserted, then the request crashes: nothing of it is kept, and the
    integrated log stays gap-free (SQLite reuses the numbers; PostgreSQL voids them, provably)."""
    _ingest("ACC9000")  # an earlier, committed change: the log is not empty
    before = list(AuditEvent.objects.values_list("seq", "leaf_hash"))
    original = log.insert_events

    # Every append (one record(), or an ingest unit's batch) ends in insert_events: crash right after it.
    def fail_on_study(events):  # noqa: ANN001, ANN202
        original(events)
        if any(event.action == "study.create" for event in events):
            raise InjectedFailure("crash after the study's event was written")

    monkeypatch.setattr(log, "insert_events", fail_on_study)
    with pytest.raises(InjectedFailure):
        _ingest("ACC9001")

    # Neither the patient, nor the study, nor either of their events survive.
    assert not Study.objects.filter(accession_number="ACC9001").exists()
    assert not Patient.objects.filter(mrn="MRN-ACC9001").exists()
    assert list(AuditEvent.objects.values_list("seq", "leaf_hash")) == before

    monkeypatch.setattr(log, "insert_events", original)
    _ingest("ACC9001")
    size = integrate_now()
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(range(size))
    assert _real_actions() == ["patient.create", "study.create"] * 2
    if connection.vendor == "sqlite":
        assert size == 4  # the rolled-back numbers were taken again
    assert verify.verify_log().ok


@pytest.mark.django_db(transaction=True)
def test_no_event_without_its_change(monkeypatch):
    """The patient's event is written, then inserting the study fails: the event goes with it."""
    _ingest("ACC9000")
    before = AuditEvent.objects.count()

    def broken_create(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise InjectedFailure("the study insert fails after patient.create was recorded")

    # The study row is built by services.study_row and saved by the service (since the set-based
    # Bundle writer shares the row builders): fail there, after patient.create was recorded.
    monkeypatch.setattr(services, "study_row", broken_create)

    with pytest.raises(InjectedFailure):
        _ingest("ACC9001")

    assert not Patient.objects.filter(mrn="MRN-ACC9001").exists()
    assert AuditEvent.objects.count() == before
    assert not AuditEvent.objects.filter(action="patient.create", seq__gte=before).exists()


@pytest.mark.django_db(transaction=True)
def test_an_event_recorded_in_a_failed_transaction_leaves_no_trace(append):
    append(3)
    with pytest.raises(InjectedFailure), transaction.atomic():
        log.record("study.view", actor=None, object_type="study", object_id=7)
        raise InjectedFailure("the view failed after it was logged")

    assert list(AuditEvent.objects.values_list("seq", flat=True).order_by("seq")) == [0, 1, 2]
    later = append(1)
    integrate_now()
    assert _real_actions() == ["test.event.0", "test.event.1", "test.event.2", "test.event.0"]
    if connection.vendor == "sqlite":
        assert later == [3]
    assert verify.verify_log().ok


@pytest.mark.django_db(transaction=True)
def test_record_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match="transaction.atomic"):
        log.record("study.view", actor=None)
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_events_cannot_be_inserted_twice_under_one_seq(append):
    append(1)
    event = AuditEvent.objects.get(seq=0)
    event.action = "forged"
    with pytest.raises(IntegrityError), transaction.atomic():
        event.save(force_insert=True)


@pytest.mark.django_db
def test_an_append_is_one_statement_on_postgresql_and_two_elsewhere(django_assert_num_queries):
    # PostgreSQL: one INSERT that takes its number from audit_allocate(1) (the sequencer's table
    # lock, xid and nextval) and hashes the leaf; elsewhere the number, then the INSERT. The
    # caller's transaction is the caller's.
    with transaction.atomic():
        log.record("test.append", actor=None)  # a first call may set the session up
        single = connection.vendor == "postgresql"
        with django_assert_num_queries(1 if single else 2) as captured:
            event = log.record("test.append", actor=None, details={"n": 1})
    if single:
        assert "FROM audit_allocate(1)" in captured.captured_queries[0]["sql"]
    stored = AuditEvent.objects.get(seq=event.seq)
    assert stored.leaf_hash == event.leaf_hash == leaf_hash(canonical_json(stored.leaf_document())).hex()


@pytest.mark.django_db
def test_the_leaf_hash_is_the_same_whoever_computes_it(append):
    """Awkward values through record(): the hash the row gets (computed by the server around the
    number on PostgreSQL) is the hash of the event as stored and as returned, and the log verifies.
    A details object that repeats the leaf's number member takes the two-statement path."""
    append(1)
    values = [
        {"text": 'quote " backslash \\ tab \t nul-free \u2028 \U0001f600 é', "seq": 3, "n": -(2**53 - 1)},
        {"seq": 9007199254740991, "study_id": 1},  # the stand-in number: ambiguous, two statements
        {"nested": {"seq": 9007199254740991}, "list": [1.5, None, True, "x"]},
        {},
    ]
    events = []
    for details in values:
        context = log.AuditContext("10.0.0.1", '"seq":9007199254740991,"study_id":1', "GET /é")
        with transaction.atomic():
            event = log.record("test.odd", actor=None, context=context, object_id="ö", details=details)
            events.append(event)
    for event in events:
        stored = AuditEvent.objects.get(seq=event.seq)
        assert stored.leaf_hash == event.leaf_hash == leaf_hash(canonical_json(stored.leaf_document())).hex()
    assert [event.seq for event in events] == sorted(event.seq for event in events)
    integrate_now()
    assert verify.verify_log(full=True).ok


@pytest.mark.django_db(transaction=True)
def test_a_leaf_hashed_differently_by_the_database_is_refused_and_not_kept(monkeypatch):
    """If the server's hash of a single append ever differed from the leaf's, the append fails and
    its row cannot commit, even when the caller swallows the error."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: elsewhere the leaf is hashed here and the row inserted after")
    from django.db import DataError

    before = AuditEvent.objects.count()
    monkeypatch.setattr(log, "sha256", lambda data: hashlib.sha256(data + b"!"))
    with transaction.atomic():
        with pytest.raises(DataError, match="hashed its leaf differently"):
            log.record("test.mismatch", actor=None)
    assert AuditEvent.objects.count() == before


# --- the stored tree ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_leaf_hash_covers_the_event_as_stored(append):
    append(5)
    for event in AuditEvent.objects.order_by("seq"):
        assert event.leaf_hash == leaf_hash(canonical_json(event.leaf_document())).hex()
        assert event.leaf_document()["recorded_at"].endswith("Z")


@pytest.mark.django_db
def test_stored_nodes_are_every_perfect_subtree_of_the_log(append):
    size = 21
    append(size)
    assert integrate_now() == size
    leaves = [
        bytes.fromhex(h) for h in AuditEvent.objects.order_by("seq").values_list("leaf_hash", flat=True)
    ]
    tree = MerkleTree.from_leaf_hashes(leaves)

    stored = {(n.level, n.index): n.hash for n in AuditNode.objects.all()}
    expected = {
        (level, index): tree.get_node(level, index).hex()
        for level in range(1, size.bit_length())
        for index in range(size >> level)
    }
    assert stored == expected
    size_now, root = log.current_root()
    assert (size_now, root) == (size, tree.root())


def test_actor_kinds_and_context_are_recorded(personas, rf):
    request = rf.get("/studies/7", HTTP_USER_AGENT="x" * 400, REMOTE_ADDR="10.1.2.3")
    request.user = personas["alice"]
    context = log.AuditContext.from_request(request)
    with transaction.atomic():
        user_event = log.record("study.view", actor=personas["alice"], context=context, study_id=7)
        service_event = log.record("study.create", actor=personas["ris"])
        system_event = log.record("checkpoint.sign", actor=None)

    assert (user_event.actor_kind, user_event.actor_username) == (ActorKind.USER, "alice")
    assert (user_event.client_address, user_event.channel) == ("10.1.2.3", "GET /studies/7")
    assert len(user_event.user_agent) == log.MAX_USER_AGENT
    assert service_event.actor_kind == ActorKind.SERVICE
    assert (system_event.actor_kind, system_event.actor_id) == (ActorKind.SYSTEM, None)


def test_a_connection_lost_while_taking_a_number_reads_as_an_outage(monkeypatch):
    """psycopg reports a killed connection as InterfaceError, which `except DatabaseError` misses:
    the sequencer turns it into the OperationalError callers answer with a NAK or a 503."""
    from django.db import DatabaseError, InterfaceError

    from audit import sequencer

    def lost(count: int) -> list[int]:
        raise InterfaceError("the connection is closed")

    monkeypatch.setattr(sequencer, "_allocate", lost)
    with pytest.raises(DatabaseError, match="connection was lost"):
        sequencer.allocate(1)
    with pytest.raises(ValueError):
        sequencer.allocate(0)
