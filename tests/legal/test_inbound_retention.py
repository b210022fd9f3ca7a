"""The retention purge clears the raw bodies of old inbound messages (HL7, FHIR, DICOM as received:
PHI), except where an active legal hold covers a record the message produced."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import pytest
from django.core.management import call_command

from audit.log import SYSTEM
from audit.models import AuditEvent
from portal.legal import inbound_retention, services
from portal.legal.models import LegalHold
from portal.records.models import EMPTY_SHA256, InboundMessage, Patient, Study

pytestmark = pytest.mark.django_db
OLD = dt.datetime(2019, 3, 1, 9, 0, tzinfo=dt.UTC)
NEW = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
CUTOFF = dt.date(2024, 1, 1)


def _message(
    received_at: dt.datetime, records: list, body: bytes = b"MSH|^~\\&|RIS|PID|||Testperson^Ada"
) -> InboundMessage:
    return InboundMessage.objects.create(
        channel="hl7",
        received_at=received_at,
        latency_ms=1.0,
        body=body,
        body_sha256=hashlib.sha256(body).hexdigest(),
        size=len(body),
        outcome="stored" if records else "refused",
        status_code=200 if records else 400,
        records=records,
    )


@pytest.fixture
def studies() -> dict[str, Study]:
    patient = Patient.objects.create(mrn="MRN-IR1")
    other = Patient.objects.create(mrn="MRN-IR2")
    return {
        "held": Study.objects.create(accession_number="ACC-IR-H", patient=patient, study_datetime=OLD),
        "free": Study.objects.create(accession_number="ACC-IR-F", patient=other, study_datetime=NEW),
    }


def _hold(personas, accession: str) -> None:
    services.legal_hold_place(
        actor=personas["lena"],
        context=SYSTEM,
        matter_reference="M-1",
        reason="R",
        accession_numbers=[accession],
    )


def test_old_bodies_are_cleared_and_held_or_recent_ones_kept(personas, studies):
    _hold(personas, "ACC-IR-H")
    held = _message(OLD, [{"type": "study", "id": studies["held"].pk}])
    old_free = _message(OLD, [{"type": "study", "id": studies["free"].pk}])
    refused = _message(OLD, [])
    recent = _message(NEW, [])

    outcome = inbound_retention.inbound_purge(before=CUTOFF, dry_run=False)

    assert (outcome.cleared, outcome.kept_held, outcome.kept_unresolved) == (2, 1, 0)
    for message in (old_free, refused):
        message.refresh_from_db()
        assert bytes(message.body) == b"" and message.body_sha256 == EMPTY_SHA256
        assert message.size > 0 and not message.is_replayable  # the row stays; it cannot be replayed
    for message in (held, recent):
        message.refresh_from_db()
        assert bytes(message.body).startswith(b"MSH|")
    event = AuditEvent.objects.get(action="retention.purge_inbound")
    assert event.details["cleared"] == [[old_free.pk, refused.pk]] and event.details["kept_held"] == 1
    assert "Testperson" not in str(event.details)  # no PHI in the audit event


def test_a_message_whose_draft_is_held_is_kept(personas, studies):
    from portal.records.models import AIOutput, ModelVersion, sha256_text

    text = "FINDINGS: normal."
    version, _ = ModelVersion.objects.get_or_create(name="concordance-chest", version="1.0.0")
    draft = AIOutput.objects.create(
        study=studies["held"], kind="report_draft", model_version=version, text=text,
        text_sha256=sha256_text(text), payload_sha256="b" * 64, generated_at=OLD,
    )  # fmt: skip
    _hold(personas, "ACC-IR-H")
    message = _message(OLD, [{"type": "ai_output", "id": draft.pk}])
    gone = _message(OLD, [{"type": "ai_output", "id": draft.pk + 1000}])  # its draft was purged already

    outcome = inbound_retention.inbound_purge(before=CUTOFF, dry_run=False)

    message.refresh_from_db()
    gone.refresh_from_db()
    assert (outcome.kept_held, outcome.cleared) == (1, 1)
    assert bytes(message.body).startswith(b"MSH|") and bytes(gone.body) == b""


def test_a_released_hold_keeps_nothing(personas, studies):
    _hold(personas, "ACC-IR-H")
    services.legal_hold_release(
        actor=personas["lena"], context=SYSTEM, hold=LegalHold.objects.get(), reason="settled"
    )
    message = _message(OLD, [{"type": "study", "id": studies["held"].pk}])

    assert inbound_retention.inbound_purge(before=CUTOFF, dry_run=False).cleared == 1
    message.refresh_from_db()
    assert bytes(message.body) == b""


def test_an_unknown_record_kind_is_kept_to_be_safe(studies):
    message = _message(OLD, [{"type": "something_new", "id": 1}])

    outcome = inbound_retention.inbound_purge(before=CUTOFF, dry_run=False)

    message.refresh_from_db()
    assert (outcome.cleared, outcome.kept_unresolved) == (0, 1) and bytes(message.body).startswith(b"MSH|")


def test_a_dry_run_changes_nothing(studies):
    message = _message(OLD, [])

    outcome = inbound_retention.inbound_purge(before=CUTOFF, dry_run=True)

    message.refresh_from_db()
    assert outcome.cleared == 1 and bytes(message.body).startswith(b"MSH|")
    assert not AuditEvent.objects.filter(action="retention.purge_inbound").exists()


def test_the_purge_is_idempotent_and_batched(studies, monkeypatch):
    monkeypatch.setattr(inbound_retention, "BATCH", 2)
    for _ in range(5):
        _message(OLD, [])

    first = inbound_retention.inbound_purge(before=CUTOFF, dry_run=False)
    second = inbound_retention.inbound_purge(before=CUTOFF, dry_run=False)

    assert first.cleared == 5 and second.cleared == 0
    assert AuditEvent.objects.filter(action="retention.purge_inbound").count() == 3


def test_the_command_reports_the_inbound_purge(studies):
    _message(OLD, [])
    out = io.StringIO()

    call_command("retention_purge", "--before", "2024-01-01", stdout=out)

    assert "1 inbound message bodies cleared" in out.getvalue()
    assert not InboundMessage.objects.exclude(body_sha256=EMPTY_SHA256).filter(received_at__lt=NEW).exists()
