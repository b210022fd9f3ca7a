"""Nothing lost, nothing silent: the raw inbound-message log and the answer every channel gives.

Each channel's processor (:mod:`portal.records.ingest.channels`) turns raw bytes into an
:class:`Answer`: what to send back, and what became of the message. :func:`log_inbound` writes the
:class:`InboundMessage` row in its own transaction, after the ingestion transaction committed or
rolled back, so a refused message is logged even though none of its records are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, transaction

from portal.records.models import InboundMessage

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a channel answers (status, body, content type) and what became of the message."""

    status: int
    body: bytes
    content_type: str
    outcome: str  # an InboundOutcome value
    reason: str = ""
    location: str = ""
    records: tuple[tuple[str, int], ...] = ()
    message_id: str = ""


def log_inbound(
    *,
    channel: str,
    endpoint: str,
    body: bytes,
    content_type: str,
    answer: Answer,
    received_at: datetime,
    started: float,
    actor: AbstractBaseUser | None,
    replay_of: InboundMessage | None,
    size: int | None = None,
) -> None:
    """Write the message as received with its answer; ``started`` is the ``perf_counter`` at arrival.

    ``size`` is the declared size of a body refused unread (``body`` is then empty).
    """
    try:
        with transaction.atomic():
            InboundMessage.objects.create(
                channel=channel,
                endpoint=endpoint,
                received_at=received_at,
                latency_ms=(time.perf_counter() - started) * 1000,
                body=body,
                body_sha256=hashlib.sha256(body).hexdigest(),
                size=len(body) if size is None else size,
                content_type=content_type[:128],
                message_id=answer.message_id[:200],
                outcome=answer.outcome,
                status_code=answer.status,
                reason=answer.reason[:500],
                location=answer.location[:200],
                records=[{"type": kind, "id": pk} for kind, pk in answer.records],
                actor=actor if actor is not None and actor.is_authenticated else None,
                replay_of=replay_of,
            )
    except DatabaseError:
        # The store is down: the answer (an error, since ingestion needed the same store) still goes
        # back and the sender retries; the sha256 lets an operator match the retry to this gap.
        logger.warning(
            "inbound %s message (%s) could not be logged", channel, hashlib.sha256(body).hexdigest()
        )
