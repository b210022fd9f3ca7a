"""Retention of the raw inbound messages: their bodies (HL7, FHIR, DICOM as received, PHI) are
cleared once past retention, unless a legal hold covers a record the message produced.

The row itself stays (channel, time, outcome, status, the references to what it produced): it is
the interface's operational history and holds no clinical text. Clearing sets the body to nothing
and its digest to that of nothing, which the inbound log already reads as "body not kept" (the
message can no longer be replayed; the sender must resend it). A message is kept whole when any
record it names (a study, an AI output, a signed report, a patient) still exists and an active
hold covers it, or when it names a kind of record this module cannot place (kept, to be safe). A
refused message names no record, so no hold can reach it: it is cleared by its date alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit import log as audit
from portal.legal.holds import active_holds, holds_covering
from portal.legal.models import HoldScope
from portal.records.models import EMPTY_SHA256, AIOutput, InboundMessage, SignedReport, Study

#: Messages per transaction: keeps each lock and each audit event small.
BATCH = 500
#: How each kind of record named in ``InboundMessage.records`` finds its study.
_STUDY_OF = {"ai_output": AIOutput, "signedreport": SignedReport}


@dataclasses.dataclass
class InboundPurgeOutcome:
    """What the purge did (or would do) with the inbound messages received before the cut-off."""

    cleared: int = 0
    kept_held: int = 0
    kept_unresolved: int = 0
    bytes_cleared: int = 0


def messages_due(before: dt.date) -> QuerySet[InboundMessage]:
    """Messages received before the start of ``before`` (portal time zone) that still hold a body."""
    cutoff = timezone.make_aware(dt.datetime.combine(before, dt.time.min))
    return (
        InboundMessage.objects.filter(received_at__lt=cutoff).exclude(body_sha256=EMPTY_SHA256).order_by("id")
    )


def _held(messages: list[InboundMessage]) -> tuple[set[int], set[int]]:
    """(ids of messages an active hold keeps, ids naming a record kind that cannot be placed)."""
    study_ids: dict[int, set[int]] = {}
    patient_ids: dict[int, set[int]] = {}
    unresolved: set[int] = set()
    for message in messages:
        for ref in message.records or []:
            kind, pk = (ref.get("type"), ref.get("id")) if isinstance(ref, dict) else (None, None)
            if kind == "study":
                study_ids.setdefault(message.pk, set()).add(pk)
            elif kind == "patient":
                patient_ids.setdefault(message.pk, set()).add(pk)
            elif kind in _STUDY_OF:
                study = _STUDY_OF[kind].objects.filter(pk=pk).values_list("study_id", flat=True).first()
                if study is not None:
                    study_ids.setdefault(message.pk, set()).add(study)
            else:
                unresolved.add(message.pk)
    every_study = {pk for ids in study_ids.values() for pk in ids}
    studies = list(Study.objects.filter(pk__in=every_study).only("id", "patient_id", "study_datetime"))
    held_studies = {pk for pk, holds in holds_covering(studies).items() if holds}
    every_patient = {pk for ids in patient_ids.values() for pk in ids}
    held_patients = set(
        active_holds()
        .filter(scope=HoldScope.PATIENT, patient_id__in=every_patient)
        .values_list("patient_id", flat=True)
    )
    held = {pk for pk, ids in study_ids.items() if ids & held_studies}
    held |= {pk for pk, ids in patient_ids.items() if ids & held_patients}
    return held, unresolved - held


def inbound_purge(*, before: dt.date, dry_run: bool) -> InboundPurgeOutcome:
    """Clear the bodies of messages received before ``before`` that no active hold keeps; one
    transaction and one ``retention.purge_inbound`` audit event per batch."""
    outcome = InboundPurgeOutcome()
    after_id = 0
    while True:
        batch = list(messages_due(before).filter(id__gt=after_id).only("id", "records", "size")[:BATCH])
        if not batch:
            return outcome
        after_id = batch[-1].pk
        _purge_batch(batch, dry_run, outcome)


def _purge_batch(batch: list[InboundMessage], dry_run: bool, outcome: InboundPurgeOutcome) -> None:
    with transaction.atomic():
        # Holds are re-read inside the transaction that clears: a hold placed meanwhile is seen.
        held, unresolved = _held(batch)
        clear = [m for m in batch if m.pk not in held and m.pk not in unresolved]
        outcome.kept_held += len(held)
        outcome.kept_unresolved += len(unresolved)
        outcome.cleared += len(clear)
        outcome.bytes_cleared += sum(m.size for m in clear)
        if dry_run or not clear:
            return
        ids = [m.pk for m in clear]
        InboundMessage.objects.filter(pk__in=ids).update(body=b"", body_sha256=EMPTY_SHA256)
        audit.record(
            "retention.purge_inbound",
            actor=None,
            object_type="inbound_message",
            object_id=f"{ids[0]}-{ids[-1]}",
            details={"cleared": _ranges(ids), "kept_held": len(held), "kept_unresolved": len(unresolved)},
        )


def _ranges(ids: Iterable[int]) -> list[list[int]]:
    """``[1, 2, 3, 7]`` -> ``[[1, 3], [7, 7]]``: the cleared ids, compactly, for the audit event."""
    spans: list[list[int]] = []
    for pk in sorted(ids):
        if spans and spans[-1][1] == pk - 1:
            spans[-1][1] = pk
        else:
            spans.append([pk, pk])
    return spans
