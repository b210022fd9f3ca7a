"""Nothing lost, nothing silent: the raw inbound-message log and the answer every channel gives.

Each channel's processor (:mod:`portal.records.ingest.channels`) turns raw bytes into an
:class:`Answer`: what to send back, and what became of the message. An accepted message's row is
written inside its ingestion transaction (:func:`log_accepted`: one commit per message); any other
answer's row is written by :func:`log_inbound` in a transaction of its own, after the ingestion
transaction rolled back, so a refused message is logged even though none of its records are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

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


@dataclasses.dataclass
class Reception:
    """A message being received: what its inbound-log row needs besides the answer."""

    fields: dict[str, Any]
    # The answer whose row an ingestion transaction wrote (see log_accepted); None until then.
    logged: Answer | None = None


_receiving = threading.local()


@contextmanager
def receiving(**fields: Any) -> Iterator[Reception]:
    """The message being processed on this thread (the keywords of :func:`log_inbound` but the answer)."""
    reception = Reception(fields)
    _receiving.current = reception
    try:
        yield reception
    finally:
        _receiving.current = None


def log_accepted(answer: Answer) -> None:
    """Write the inbound row of an accepted message inside its ingestion transaction, before the commit.

    The processor must return this very ``answer`` only once that transaction committed: the row is
    then stored with the records (one commit for both). If the transaction rolls back, or the
    processor answers otherwise (a retry, a refusal), the caller logs the answer it got on its own.
    Outside :func:`receiving` (a processor called directly) it does nothing.
    """
    reception: Reception | None = getattr(_receiving, "current", None)
    if reception is None:
        return
    _create_row(answer=answer, **reception.fields)
    reception.logged = answer


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
            _create_row(
                channel=channel,
                endpoint=endpoint,
                body=body,
                content_type=content_type,
                answer=answer,
                received_at=received_at,
                started=started,
                actor=actor,
                replay_of=replay_of,
                size=size,
            )
    except DatabaseError:
        # The store is down: the answer (an error, since ingestion needed the same store) still goes
        # back and the sender retries; the sha256 lets an operator match the retry to this gap.
        logger.warning(
            "inbound %s message (%s) could not be logged", channel, hashlib.sha256(body).hexdigest()
        )


def _create_row(
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
