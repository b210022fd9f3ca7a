"""Enqueueing with the broker down: the first failure opens the circuit, later sends skip the broker.

A real stopped broker throughout: a Redis URL on a port where nothing listens, or a listener that
accepts and hangs up at once and counts the attempts (what a crashing broker looks like to a client),
and then a real ``redis-server`` on that port for the recovery. The breaker is the production one,
with its production clock; only its cooldown is shortened.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from portal.core import enqueue
from portal.core.breaker import BreakerState, CircuitBreaker
from tests.core.brokers import HangingUpBroker, broker_at, free_port, wait_for_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def breaker(settings) -> Iterator[CircuitBreaker]:
    settings.ENQUEUE_BREAKER_FAILURES = 1
    settings.ENQUEUE_BREAKER_COOLDOWN_SECONDS = 1
    breaker = enqueue.broker_breaker()
    breaker.reset()
    yield breaker
    breaker.reset()


def test_a_refused_send_opens_the_circuit_and_later_sends_do_not_touch_the_broker(breaker):
    port = free_port()
    hanging_up = HangingUpBroker(port)
    try:
        with broker_at(port):
            assert enqueue.send_now("portal.review.tasks.compare_study", 1) is False
            tried = hanging_up.connections
            assert tried >= 1
            assert breaker.snapshot()["state"] == BreakerState.OPEN

            for object_id in range(2, 52):
                assert enqueue.send_now("portal.review.tasks.compare_study", object_id) is False
            assert hanging_up.connections == tried, "an open circuit must not reach for the broker"
    finally:
        hanging_up.close()


def test_after_the_cooldown_one_trial_send_closes_the_circuit_when_the_broker_is_back(breaker, tmp_path):
    port = free_port()
    with broker_at(port):
        assert enqueue.send_now("portal.review.tasks.compare_study", 1) is False  # nothing listens
        assert breaker.snapshot()["state"] == BreakerState.OPEN
        redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port)]
            + ["--save", "", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            # Still open: the broker is up but nobody tries before the cooldown ends.
            assert enqueue.send_now("portal.review.tasks.compare_study", 2) is False
            time.sleep(1.1)
            assert enqueue.send_now("portal.review.tasks.compare_study", 3) is True
            assert breaker.snapshot()["state"] == BreakerState.CLOSED
            assert enqueue.send_now("portal.review.tasks.compare_study", 4) is True
            queued = subprocess.run(
                ["redis-cli", "-p", str(port), "llen", "celery"], capture_output=True, text=True, check=True
            )
            assert queued.stdout.strip() == "2"  # ids 3 and 4; 1 and 2 are left to the sweeper
        finally:
            redis.kill()
            redis.wait(timeout=10)


def test_a_failed_trial_opens_the_circuit_for_another_cooldown(breaker):
    port = free_port()
    with broker_at(port):
        assert enqueue.send_now("x.task", 1) is False
        time.sleep(1.1)
        assert enqueue.send_now("x.task", 2) is False  # the trial, refused again
        snapshot = breaker.snapshot()
        assert snapshot["state"] == BreakerState.OPEN
        assert snapshot["consecutive_failures"] == 2
        assert 0 < snapshot["retry_in_seconds"] <= 1
        assert snapshot["last_error"] == "OperationalError"  # the class only: no broker URL in reports


def test_only_one_caller_gets_the_half_open_trial():
    now = [0.0]
    breaker = CircuitBreaker(name="t", failures=2, cooldown=10, clock=lambda: now[0])
    breaker.failed(ConnectionError())
    assert breaker.allow() is True  # one failure of two: still closed
    breaker.failed(ConnectionError())
    assert breaker.allow() is False
    now[0] = 10.0
    assert [breaker.allow() for _ in range(5)] == [True, False, False, False, False]
    breaker.succeeded()
    assert breaker.allow() is True


def test_a_batch_enqueued_during_an_outage_is_logged_once_with_ids_only(
    breaker, caplog, db, django_capture_on_commit_callbacks
):
    port = free_port()
    with (
        broker_at(port),
        caplog.at_level("WARNING", logger="portal.core.enqueue"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        enqueue.enqueue_on_commit("inference.tasks.run_chunk", [7, 8, 9], catch_up="the reaper")
    lines = [r.getMessage() for r in caplog.records if r.name == "portal.core.enqueue"]
    assert len(lines) == 1
    assert "3 id(s)" in lines[0] and "first 7" in lines[0] and "the reaper" in lines[0]
    assert "redis://" not in lines[0]
