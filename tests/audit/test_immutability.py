"""The database itself refuses to change or remove audit rows, whatever SQL the application sends."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from audit import checkpoints
from audit.models import AuditEvent, AuditLogHead, AuditNode, Checkpoint

pytestmark = pytest.mark.django_db

TABLES = ("audit_auditevent", "audit_auditnode", "audit_checkpoint")


@pytest.fixture
def logged(append):
    """Four events (so level-1 and level-2 nodes exist) and a checkpoint."""
    append(4)
    checkpoints.create_checkpoint()
    return AuditEvent.objects.count(), AuditNode.objects.count(), Checkpoint.objects.count()


def _refused(sql: str) -> None:
    with (
        pytest.raises(IntegrityError, match="immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)


def _counts() -> tuple[int, int, int]:
    return AuditEvent.objects.count(), AuditNode.objects.count(), Checkpoint.objects.count()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET action = 'rewritten' WHERE seq = 1",
        "UPDATE audit_auditevent SET leaf_hash = leaf_hash",
        "DELETE FROM audit_auditevent WHERE seq = 3",
        "UPDATE audit_auditnode SET hash = '00'",
        "DELETE FROM audit_auditnode WHERE level = 1",
        "UPDATE audit_checkpoint SET tree_size = 3",
        "DELETE FROM audit_checkpoint WHERE tree_size = 4",
    ],
)
def test_raw_update_and_delete_are_refused(logged, sql):
    events_before = list(AuditEvent.objects.order_by("seq").values_list("action", "leaf_hash"))

    _refused(sql)

    assert _counts() == logged
    assert list(AuditEvent.objects.order_by("seq").values_list("action", "leaf_hash")) == events_before


@pytest.mark.parametrize("table", TABLES)
def test_emptying_a_table_is_refused(logged, table):
    # PostgreSQL has TRUNCATE (a statement-level trigger refuses it); SQLite has no TRUNCATE, and its
    # "truncate optimisation" applies to DELETE without WHERE, which the row trigger also refuses.
    if connection.vendor == "postgresql":
        _refused(f'TRUNCATE "{table}" CASCADE')
    else:
        _refused(f'DELETE FROM "{table}"')

    assert _counts() == logged


def test_the_orm_cannot_change_or_delete_events_either(logged):
    event = AuditEvent.objects.get(seq=0)
    event.action = "rewritten"
    with pytest.raises(IntegrityError), transaction.atomic():
        event.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.filter(seq=0).delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        Checkpoint.objects.update(root_hash="ff" * 32)

    assert _counts() == logged


def test_the_log_head_stays_writable(logged):
    """The head is bookkeeping (derivable from the events, checked by verify_log), not evidence."""
    assert AuditLogHead.objects.filter(pk=1).update(size=4) == 1
