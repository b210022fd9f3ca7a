"""The shared plumbing of portal/core: access denial, enqueue-on-commit and the worker command line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse
from django.test import RequestFactory

from audit.models import AuditEvent
from portal.core import enqueue
from portal.core.access import deny, require
from portal.core.workers import database_url, worker_argv
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def _request(user, path: str = "/legal/"):
    request = RequestFactory().get(path, HTTP_USER_AGENT="<script>alert(1)</script>")
    request.user = user
    return request


def test_deny_records_the_refusal_then_answers_403_or_404():
    bob = make_user("bob", "radiologist")
    with pytest.raises(PermissionDenied):
        deny(_request(bob), reason="legal.page")
    with pytest.raises(Http404):
        deny(_request(bob, "/review/cases/7/"), reason="case.view", not_found=True)
    events = list(AuditEvent.objects.filter(action="access.denied").order_by("seq"))
    assert [e.details["reason"] for e in events] == ["legal.page", "case.view"]
    assert {e.actor_username for e in events} == {"bob"}


def test_require_lets_the_right_accounts_through_and_refuses_the_others():
    lena, bob = make_user("lena", "legal"), make_user("bob", "radiologist")
    view = require(lambda user: user.username == "lena", reason="probe")(lambda request: HttpResponse("ok"))
    assert view(_request(lena)).content == b"ok"
    with pytest.raises(PermissionDenied):
        view(_request(bob))
    assert AuditEvent.objects.filter(action="access.denied", actor_username="bob").count() == 1


class _Broker:
    def __init__(self, *, down: bool) -> None:
        self.down, self.sent = down, []

    def send_task(self, name, args):
        if self.down:
            raise ConnectionError("broker unreachable")
        self.sent.append((name, args))


def test_enqueue_sends_after_commit_only(monkeypatch, django_capture_on_commit_callbacks):
    broker = _Broker(down=False)
    monkeypatch.setattr(enqueue, "current_app", broker)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        enqueue.enqueue_on_commit("app.tasks.job", [3, 4], catch_up="the sweeper")
        assert broker.sent == []
    assert len(callbacks) == 1
    assert broker.sent == [("app.tasks.job", [3]), ("app.tasks.job", [4])]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            enqueue.enqueue_on_commit("app.tasks.job", [5], catch_up="the sweeper")
            raise RuntimeError("rolled back")
    assert callbacks == []
    assert ("app.tasks.job", [5]) not in broker.sent


def test_a_broker_outage_is_logged_not_raised(monkeypatch, caplog, django_capture_on_commit_callbacks):
    monkeypatch.setattr(enqueue, "current_app", _Broker(down=True))
    with caplog.at_level(logging.WARNING, logger="portal.core.enqueue"):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            enqueue.enqueue_on_commit("app.tasks.job", [9], catch_up="the reaper")
    assert len(callbacks) == 1
    assert "app.tasks.job not enqueued for 1 id(s) (first 9; broker circuit open" in caplog.text
    assert "the reaper will send them" in caplog.text


def test_a_batch_task_gets_the_ids_in_chunks_and_a_lost_chunk_is_logged_by_its_ids(
    monkeypatch, caplog, django_capture_on_commit_callbacks
):
    broker = _Broker(down=False)
    monkeypatch.setattr(enqueue, "current_app", broker)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue.enqueue_on_commit("app.tasks.batch", [1, 2, 3, 4, 5], catch_up="the sweeper", batch=2)
    assert [args for _, args in broker.sent] == [[[1, 2]], [[3, 4]], [[5]]]
    monkeypatch.setattr(enqueue, "current_app", _Broker(down=True))
    with caplog.at_level(logging.WARNING, logger="portal.core.enqueue"):
        with django_capture_on_commit_callbacks(execute=True):
            enqueue.enqueue_on_commit("app.tasks.batch", [7, 8, 9], catch_up="the sweeper", batch=2)
    assert "app.tasks.batch not enqueued for 3 id(s) (first 7;" in caplog.text


def test_nothing_to_send_registers_nothing(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        enqueue.enqueue_on_commit("app.tasks.job", [], catch_up="the sweeper")
    assert callbacks == []


def test_the_worker_command_line_for_tests_benchmarks_and_the_demo():
    solo = worker_argv(python="py")
    assert solo == [
        "py", "-m", "celery", "-A", "portal", "worker", "--pool", "solo", "--loglevel", "WARNING",
        "--without-heartbeat", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    named = worker_argv(python="py", queues="exports", hostname="b1@%h", loglevel="INFO")
    assert named[9:13] == ["INFO", "--hostname", "b1@%h", "--without-heartbeat"]
    assert named[-2:] == ["-Q", "exports"]
    demo = worker_argv(python="py", solo=False, loglevel="INFO", concurrency=2, beat_schedule=Path("/v/s"))
    assert demo == [
        "py", "-m", "celery", "-A", "portal", "worker", "--loglevel", "INFO", "--concurrency", "2",
        "--beat", "--schedule", "/v/s",
    ]  # fmt: skip


def test_database_url_points_a_worker_at_the_same_database():
    assert (
        database_url({"ENGINE": "django.db.backends.sqlite3", "NAME": "/v/t.sqlite3"})
        == "sqlite:////v/t.sqlite3"
    )
    pg = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "db",
        "USER": "u",
        "PASSWORD": "p",
        "HOST": "h",
        "PORT": 5,
    }
    assert database_url(pg) == "postgresql://u:p@h:5/db"
    assert (
        database_url({"ENGINE": "django.db.backends.postgresql", "NAME": "db"}) == "postgresql://127.0.0.1/db"
    )
