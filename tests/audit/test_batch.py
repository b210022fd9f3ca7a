"""audit.log.batch: the events of one unit of work appended together, exactly as one append each."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit import log, verify
from audit.models import AuditEvent
from tests.audit.conftest import integrate_now


class Refused(RuntimeError):
    """A nested step refusing its part of the work."""


def _record(action: str, **fields) -> AuditEvent:  # noqa: ANN003
    return log.record(action, actor=None, context=log.SYSTEM, **fields)


@pytest.mark.django_db
def test_a_batch_appends_its_events_in_order_with_one_insert():
    with transaction.atomic():
        with CaptureQueriesContext(connection) as captured, log.batch():
            first = _record("patient.create", object_type="patient", object_id=1, patient_id=1)
            second = _record("study.create", object_type="study", object_id=2, patient_id=1, study_id=2)
            assert AuditEvent.objects.count() == 0  # collected, not yet written
        inserts = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    stored = list(AuditEvent.objects.order_by("seq"))
    assert [e.action for e in stored] == ["patient.create", "study.create"]
    assert [e.seq for e in stored] == [first.seq, second.seq] and first.seq < second.seq
    # Each keeps the time it was recorded at, and its leaf hash is the one record() would compute.
    assert stored[0].recorded_at == first.recorded_at <= stored[1].recorded_at == second.recorded_at
    for event in stored:
        assert event.leaf_hash == log.seal(event, event.seq).leaf_hash
    integrate_now()
    assert verify.verify_log().ok


@pytest.mark.django_db
def test_a_nested_batch_that_raises_drops_only_its_own_events():
    with transaction.atomic(), log.batch():
        _record("kept.before")
        with pytest.raises(Refused), transaction.atomic(), log.batch():
            _record("dropped")
            raise Refused
        _record("kept.after")
        assert log.batch_open()
    assert not log.batch_open()
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True)) == [
        "kept.before",
        "kept.after",
    ]


@pytest.mark.django_db
def test_a_batch_that_raises_appends_nothing_and_closes():
    with pytest.raises(Refused), transaction.atomic(), log.batch():
        _record("never")
        raise Refused
    assert not log.batch_open()
    with transaction.atomic():
        _record("plain")  # outside any batch: appended at once, as always
        assert AuditEvent.objects.filter(action="plain").exists()
    assert not AuditEvent.objects.filter(action="never").exists()
