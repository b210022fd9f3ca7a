"""Enqueue Celery tasks by name once the transaction commits, tolerating a broker outage.

Services enqueue by task name (they do not import the tasks modules, which import them). A broker that
is down must not fail work that already committed, nor make every request wait on it: the first
failed send opens a circuit breaker (:mod:`.breaker`), and while it is open sends are skipped at once.
A message not sent is logged (task name and ids only, no PHI) and the app's periodic catch-up (sweeper
or reaper) sends it later from what the database holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import current_app
from django.conf import settings
from django.db import transaction

from portal.core.breaker import CircuitBreaker

logger = logging.getLogger(__name__)

#: The one breaker of this process around the broker (see :func:`broker_breaker`).
_BROKER_BREAKER = CircuitBreaker(name="broker")


def broker_breaker() -> CircuitBreaker:
    """This process's circuit breaker around sending to the broker, configured from settings."""
    _BROKER_BREAKER.failures = settings.ENQUEUE_BREAKER_FAILURES
    _BROKER_BREAKER.cooldown = settings.ENQUEUE_BREAKER_COOLDOWN_SECONDS
    return _BROKER_BREAKER


def send_now(task_name: str, object_id: int | list[int]) -> bool:
    """Send ``task_name(object_id)`` unless the broker's circuit is open; whether it was sent.

    ``object_id`` is one id, or a list of ids for a task that takes a batch.

    Never raises for a broker failure: the caller's work has committed, and its catch-up job re-sends.
    """
    breaker = broker_breaker()
    if not breaker.allow():
        return False
    try:
        current_app.send_task(task_name, args=[object_id])
    except Exception as error:  # any broker failure opens the circuit; the catch-up job re-sends
        breaker.failed(error)
        return False
    breaker.succeeded()
    return True


def enqueue_on_commit(
    task_name: str, ids: Iterable[int], *, catch_up: str, batch: int | None = None
) -> None:
    """After commit, send ``task_name`` once per id (the id is the task's only argument).

    With ``batch``, the ids go in chunks of at most ``batch``, one message per chunk whose only
    argument is the list of ids (a task that takes a batch): a message costs the sender ~0.5-1 ms of
    CPU, more than a small task's own share of the work. ``catch_up`` names what re-sends a lost
    message (for the log line), e.g. "the sweeper". Outside a transaction Django runs the callback at once.
    """
    pending = list(ids)
    if not pending:
        return
    messages: list[int | list[int]] = (
        [pending[i : i + batch] for i in range(0, len(pending), batch)] if batch else list(pending)
    )

    def send() -> None:
        unsent = [
            object_id
            for message in messages
            if not send_now(task_name, message)
            for object_id in (message if isinstance(message, list) else [message])
        ]
        if unsent:
            # One line per batch, ids only (no PHI); a run may enqueue hundreds of chunks at once.
            state = broker_breaker().snapshot()
            logger.warning(
                "%s not enqueued for %d id(s) (first %s; broker circuit %s, %s); %s will send them",
                task_name,
                len(unsent),
                unsent[0],
                state["state"],
                state["last_error"] or "no error recorded",
                catch_up,
            )

    transaction.on_commit(send)
