"""The health report: database, broker and workers as they really are, for monitoring and for admins.

Real parts only: the test database, the configured (file) broker with a real worker process, a Redis
URL on a closed port for a broker that is down.
"""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.test import Client

from portal.core import enqueue, health
from portal.core.breaker import BreakerState
from portal.core.health import health_report
from tests.core.brokers import broker_at, free_port

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def closed_circuit(monkeypatch):
    enqueue.broker_breaker().reset()
    monkeypatch.setattr(health, "_last_ping", None)  # each test asks the workers afresh
    yield
    enqueue.broker_breaker().reset()


@pytest.fixture
def admin_client(db) -> Client:
    root = User.objects.create_user(username="root")
    root.groups.add(Group.objects.get_or_create(name="admin")[0])
    client = Client()
    client.force_login(root)
    return client


def test_without_a_worker_the_report_says_no_worker_is_taking_work(db, client_for):
    response = client_for("ris").get("/api/v1/health/components")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["components"]["database"]["state"] == "ok"
    assert body["components"]["broker"]["state"] == "ok"
    transport = settings.CELERY_BROKER_URL.split("://", 1)[0]  # filesystem here, redis in CI
    assert body["components"]["broker"]["facts"]["transport"] == transport
    assert body["components"]["workers"] == {
        **body["components"]["workers"],
        "state": "down",
        "detail": "no worker is taking work",
    }


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_with_a_worker_running_everything_is_ok(celery_worker_process, client_for):
    deadline = time.monotonic() + 60
    report = health_report()
    while report["components"]["workers"]["state"] != "ok" and time.monotonic() < deadline:
        report = health_report()  # the worker may still be connecting

    assert report["status"] == "ok", report
    assert len(report["components"]["workers"]["facts"]["workers"]) >= 1
    response = client_for("ris").get("/api/v1/health/components")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_a_broker_that_is_down_is_reported_and_opens_the_enqueue_circuit(db, client_for):
    with broker_at(free_port(), password="s3cret-broker-pw"):
        response = client_for("ris").get("/api/v1/health/components")
        again = client_for("ris").get("/api/v1/health/components")

    assert response.status_code == 503
    broker = response.json()["components"]["broker"]
    assert broker["state"] == "down"
    assert broker["detail"] == "no connection (OperationalError)"
    assert response.json()["components"]["workers"]["state"] == "unknown"
    # The probe's failure spares the next request its own failed send ...
    assert enqueue.broker_breaker().snapshot()["state"] == BreakerState.OPEN
    # ... and the next report says so without trying again.
    paused = again.json()["components"]["broker"]["detail"]
    assert paused.startswith("enqueueing paused after OperationalError")
    for answer in (response, again):
        assert "s3cret-broker-pw" not in answer.content.decode()
        assert "127.0.0.1" not in answer.content.decode()


def test_the_admin_page_shows_each_part_and_why(admin_client):
    with broker_at(free_port()):
        response = admin_client.get("/health/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "System health" in page
    assert "no connection (OperationalError)" in page
    assert "cannot ask the workers while the broker is down" in page
    assert "circuit around the broker is <strong>open</strong>" in page


@pytest.mark.parametrize("persona", ["alice", "carol", "dana", "lena", "otto", "eve"])
def test_other_roles_may_not_read_the_report(persona, client_for):
    response = client_for(persona).get("/api/v1/health/components")

    assert response.status_code == 403
    assert "components" not in json.dumps(response.json())


def test_the_integration_account_gets_the_json_but_not_the_page(personas):
    client = Client()
    client.force_login(personas["ris"])

    assert client.get("/health/").status_code == 403


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_report_is_read_only(method, client_for):
    response = getattr(client_for("ris"), method)(
        "/api/v1/health/components", data="<script>alert(1)</script>' OR 1=1 --", content_type="text/plain"
    )

    assert response.status_code in {405, 415}


def test_a_ping_answer_is_reused_for_a_few_seconds(db, settings, monkeypatch):
    settings.HEALTH_PING_CACHE_SECONDS = 30
    broadcasts = []
    ping = health._ping_workers
    monkeypatch.setattr(health, "_ping_workers", lambda: broadcasts.append(1) or ping())
    first = health_report()["components"]["workers"]
    second = health_report()["components"]["workers"]

    assert len(broadcasts) == 1  # no second broadcast
    assert second["state"] == first["state"] == "down"
    assert "age_s" in second["facts"] and "age_s" not in first["facts"]
