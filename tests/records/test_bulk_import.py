"""Bulk import (seed_demo, back-loads): the rows and audit events of the per-record services, written in
batches; on PostgreSQL by COPY, elsewhere by bulk_create, and both write the same rows (issue #15)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, connection, transaction

from audit import integrator, verify
from audit.models import AuditEvent
from portal.demo.management.commands.seed_demo import study_pairs
from portal.demo.synthetic import generate_department
from portal.records import bulk
from portal.records.models import AIOutput, GroundTruthLabel, Patient, SignedReport, Study

pytestmark = pytest.mark.django_db

# Columns that differ between two imports of the same pairs by construction: keys and clocks.
_VOLATILE = {"id", "created_at", "study", "patient", "model_version", "radiologist", "clinician"}


@pytest.fixture
def department():
    """Twelve synthetic pairs (with their ground-truth labels) and accounts for their radiologists."""
    dept = generate_department(studies=12, seed=5)
    group, _ = Group.objects.get_or_create(name="radiologist")
    for radiologist in dept.radiologists:
        User.objects.create_user(username=radiologist.username).groups.add(group)
    return list(study_pairs(dept))


def _snapshot() -> dict[str, list[tuple]]:
    """Every imported row by accession, without keys and clocks; the audit events without seq/time."""

    def rows(model, key) -> list[tuple]:  # noqa: ANN001
        fields = [f for f in model._meta.concrete_fields if f.name not in _VOLATILE]
        return sorted(
            (key(obj), *(getattr(obj, f.attname) for f in fields)) for obj in model.objects.select_related()
        )

    events = AuditEvent.objects.order_by("seq")
    return {
        "patients": rows(Patient, lambda p: p.mrn),
        "studies": rows(Study, lambda s: s.accession_number),
        "outputs": rows(AIOutput, lambda o: o.study.accession_number),
        "reports": rows(SignedReport, lambda r: (r.study.accession_number, r.radiologist.username)),
        "labels": rows(GroundTruthLabel, lambda g: g.study.accession_number),
        "events": sorted((e.action, e.object_type, e.channel, e.actor_kind) for e in events),
    }


class _Undo(Exception):
    pass


def _import_and_undo(pairs, *, copy: bool, monkeypatch) -> dict[str, list[tuple]]:  # noqa: ANN001
    """Import ``pairs`` with COPY or bulk_create, snapshot the tables, roll everything back."""
    monkeypatch.setattr(bulk, "_use_copy", lambda: copy)
    try:
        with transaction.atomic():
            bulk.import_pairs(pairs, batch_size=5)
            snapshot = _snapshot()
            raise _Undo
    except _Undo:
        return snapshot


def test_copy_writes_the_rows_bulk_create_writes(department, monkeypatch):
    generic = _import_and_undo(department, copy=False, monkeypatch=monkeypatch)
    assert len(generic["studies"]) == 12 and len(generic["labels"]) > 0
    assert len(generic["events"]) >= 12 * 3 + len(generic["patients"])
    if connection.vendor == "postgresql":
        assert _import_and_undo(department, copy=True, monkeypatch=monkeypatch) == generic


def test_every_row_has_its_audit_event_and_the_log_verifies(department):
    counts = bulk.import_pairs(department, batch_size=5)

    assert (counts.studies, counts.ai_outputs, counts.signed_reports, counts.skipped) == (12, 12, 12, 0)
    created = {
        "patient.create": Patient.objects.count(),
        "study.create": 12,
        "ai_output.create": 12,
        "signed_report.final": SignedReport.objects.filter(status="final").count(),
    }
    for action, count in created.items():
        assert AuditEvent.objects.filter(action=action).count() == count, action
    study = Study.objects.get(accession_number=department[0].study.accession_number)
    event = AuditEvent.objects.get(action="study.create", object_id=str(study.pk))
    assert (event.study_id, event.patient_id) == (study.pk, study.patient_id)
    integrator.integrate_all(hole_wait_s=2.0)
    assert verify.verify_log(full=True).ok


def test_importing_the_same_pairs_again_stores_nothing_twice(department):
    bulk.import_pairs(department, batch_size=5)
    before = (Study.objects.count(), AIOutput.objects.count(), SignedReport.objects.count())
    events = AuditEvent.objects.count()

    again = bulk.import_pairs(department, batch_size=5)

    assert (again.studies, again.skipped) == (0, 12)
    assert (Study.objects.count(), AIOutput.objects.count(), SignedReport.objects.count()) == before
    assert AuditEvent.objects.count() == events


def test_a_duplicate_accession_inside_a_batch_rolls_the_batch_back(department):
    clash = [department[0], department[1], department[0]]

    with pytest.raises(IntegrityError):
        bulk.import_pairs(clash, batch_size=10)

    assert (Study.objects.count(), AuditEvent.objects.count()) == (0, 0)


def test_imported_evidence_is_immutable(department):
    bulk.import_pairs(department[:2])

    for sql in ("UPDATE records_signedreport SET text = 'x'", "DELETE FROM records_aioutput"):
        with (
            pytest.raises(IntegrityError, match="immutable"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)


def _plain(value):  # noqa: ANN001, ANN202
    """psycopg's Jsonb wrapper compares by identity: its object instead."""
    return getattr(value, "obj", value)


def test_copy_rows_hold_exactly_what_each_field_would_prepare(department):
    """audit.bulk.copy_values skips get_db_prep_save only where it returns the value unchanged."""
    from audit.bulk import copy_values

    bulk.import_pairs(department)
    wrapper = connection
    for model in (Patient, Study, AIOutput, SignedReport, GroundTruthLabel, AuditEvent):
        fields = model._meta.concrete_fields
        values = copy_values(fields, wrapper)  # stored rows: pre_save would stamp a new created_at
        for obj in model.objects.all()[:20]:
            expected = [f.get_db_prep_save(getattr(obj, f.attname), wrapper) for f in fields]
            assert [_plain(v) for v in values(obj)] == [_plain(v) for v in expected], model
    # A value of another type than the column's plain one still goes through its field.
    study = Study.objects.first()
    study.patient_id = str(study.patient_id)  # a key given as text
    study.modality = None
    fields = Study._meta.concrete_fields
    row = copy_values(fields, wrapper)(study)
    assert row[[f.attname for f in fields].index("patient_id")] == int(study.patient_id)
    assert row[[f.attname for f in fields].index("modality")] is None
