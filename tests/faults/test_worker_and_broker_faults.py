"""Workers killed mid-task and a broker outage: every comparison exists exactly once in the end.

Real processes throughout: gunicorn answers the ingestion requests, Celery workers consume from our
own Redis, PostgreSQL is the system of record (see conftest.py).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.conftest import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

COMPARISONS = "SELECT count(*) FROM review_comparison"
DUPLICATES = "SELECT candidate_id FROM review_comparison GROUP BY candidate_id HAVING count(*) > 1"
UNCOMPARED = """
SELECT count(*) FROM records_aioutput o
WHERE o.kind = 'report_draft' AND NOT EXISTS (SELECT 1 FROM review_comparison c WHERE c.candidate_id = o.id)
"""


def test_a_worker_killed_mid_comparison_loses_and_duplicates_nothing(stack):
    stack.start_web()
    pairs = 40
    for n in range(pairs):
        assert stack.post_pair(n) == [201, 201, 201]
    # No worker yet: the comparison messages wait in Redis.
    worker = stack.start_worker()
    assert wait_until(lambda: stack.scalar(COMPARISONS) >= 2, timeout=120, interval=0.02)
    os.kill(worker.pid, signal.SIGKILL)  # with a message taken and not acknowledged (acks_late)
    worker.wait(timeout=20)
    at_kill = stack.scalar(COMPARISONS)
    assert at_kill < pairs, "the kill came too late to interrupt anything"

    # A replacement worker gets the unacknowledged message back (visibility timeout) and the rest.
    stack.start_worker()
    assert wait_until(lambda: stack.scalar(COMPARISONS) == pairs, timeout=180), stack.scalar(COMPARISONS)
    time.sleep(6)  # past the visibility timeout: a redelivered duplicate would land now
    assert stack.scalar(COMPARISONS) == pairs
    assert stack.query(DUPLICATES) == []
    assert stack.scalar(UNCOMPARED) == 0


def test_ingestion_survives_a_broker_outage_and_the_sweeper_catches_up(stack):
    stack.start_web()
    stack.start_worker()
    assert stack.post_pair(0) == [201, 201, 201]
    assert wait_until(lambda: stack.scalar(COMPARISONS) == 1, timeout=120)

    stack.redis.stop()
    started = time.monotonic()
    during = [stack.post_pair(n) for n in range(1, 11)]
    outage_seconds = time.monotonic() - started
    # The database is the system of record: every ingestion during the outage succeeded.
    assert during == [[201, 201, 201]] * 10, during
    print(f"10 pairs during the broker outage took {outage_seconds:.1f} s")  # for the report
    assert stack.scalar(UNCOMPARED) == 10

    # The broker comes back empty (no persistence): the messages of the outage never existed.
    stack.redis.start()
    assert stack.post_pair(11) == [201, 201, 201]  # traffic after the outage is compared as usual
    # What beat does every REVIEW_SWEEP_SECONDS: enqueue the sweeper, which re-enqueues the missed ones.
    stack.shell("from portal.review.tasks import sweep_uncompared; sweep_uncompared.delay()")
    assert wait_until(lambda: stack.scalar(UNCOMPARED) == 0, timeout=180), stack.scalar(UNCOMPARED)
    assert stack.scalar(COMPARISONS) == 12
    assert stack.query(DUPLICATES) == []
