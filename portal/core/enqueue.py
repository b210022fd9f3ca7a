"""Enqueue Celery tasks by name once the transaction commits, tolerating a broker outage.

Services enqueue by task name (they do not import the tasks modules, which import them). A broker that
is down must not fail work that already committed: the message is logged as not sent (ids only, no PHI)
and the app's periodic catch-up (sweeper or reaper) sends it later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_on_commit(task_name: str, ids: Iterable[int], *, catch_up: str) -> None:
    """After commit, send ``task_name`` once per id (the id is the task's only argument).

    ``catch_up`` names what re-sends a lost message (for the log line), e.g. "the sweeper".
    Outside a transaction Django runs the callback at once.
    """
    pending = list(ids)
    if not pending:
        return

    def send() -> None:
        for object_id in pending:
            try:
                current_app.send_task(task_name, args=[object_id])
            except Exception:  # any broker failure: the catch-up job re-sends
                logger.warning("%s for %s not enqueued; %s will re-send it", task_name, object_id, catch_up)

    transaction.on_commit(send)
