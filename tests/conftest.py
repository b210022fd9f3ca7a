"""Shared fixtures: the personas every access test uses, and API clients signed in as them.

alice and bob are radiologists, carol reviews, dana chairs QA, lena is legal, otto audits, ris is the
RIS/PACS integration account and eve holds no role at all (she must see nothing).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

# Role names as strings, and Django imported inside the fixtures: the pure-Python rooms
# (inference.compare, audit.merkle, the adapters) are also tested with `-p no:django`.
PERSONAS = {
    "alice": "radiologist",
    "bob": "radiologist",
    "carol": "qa_reviewer",
    "dana": "qa_chair",
    "lena": "legal",
    "otto": "auditor",
    "ris": "integration",
    "eve": None,
}


def make_user(username: str, role: str | None) -> User:
    """A user holding ``role`` (groups are created by the post-migrate hook)."""
    from django.contrib.auth.models import Group, User

    # No password: API tests use tokens, and hashing eight passwords with PBKDF2 per test costs seconds.
    user = User.objects.create_user(username=username, password=None)
    if role is not None:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture(autouse=True)
def closed_broker_circuit():
    """Each test starts with this process's enqueue circuit closed (a broker failure opens it for 30 s)."""
    from portal.core.enqueue import broker_breaker

    broker_breaker().reset()
    yield
    broker_breaker().reset()


@pytest.fixture
def personas(db) -> dict[str, User]:
    """Every persona, by name."""
    return {name: make_user(name, role) for name, role in PERSONAS.items()}


@pytest.fixture
def client_for(personas):
    """``client_for("ris")``: an API client authenticated with that persona's token."""

    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    def build(name: str | None) -> APIClient:
        client = APIClient()
        if name is not None:
            token, _ = Token.objects.get_or_create(user=personas[name])
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return build


@pytest.fixture
def ris(client_for) -> APIClient:
    """The integration account's API client."""
    return client_for("ris")


@pytest.fixture
def now() -> dt.datetime:
    """A fixed aware timestamp."""
    return dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real Celery worker process on the configured broker, pointed at the test database.

    Integration tests using it must commit their data (``django_db(transaction=True)``) so that the
    worker, another process, can see it. Module-scoped, and the queue is purged first: a worker left
    running would race other tests' database flushes, and messages that other tests enqueued
    (without a worker) are stale.
    """
    import os
    import subprocess
    import time

    from django.db import connection

    from portal.celery import app
    from portal.core.workers import database_url, start_worker

    app.control.purge()
    env = os.environ.copy()
    env["DATABASE_URL"] = database_url(connection.settings_dict)
    process = start_worker(env=env)
    # Ready when it answers a ping: on a loaded machine a fixed pause is sometimes too short.
    deadline = time.monotonic() + 90
    while not app.control.ping(timeout=1):
        if process.poll() is not None:
            raise RuntimeError(f"the Celery worker exited at start with code {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the Celery worker did not answer a ping within 90 s")
    yield process
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(autouse=True)
def _audit_sequence_realigned(request):
    """PostgreSQL only: start each database test's audit numbering just past the stored events.

    A test's rolled-back transaction does not give back the sequence numbers it took (``nextval`` is
    not transactional), so without this every later test would begin with a run of abandoned numbers
    that the integrator fills with void leaves. Production never rolls back whole test databases.
    """
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(
        request.fixturenames
    )
    if not uses_db:
        return
    request.getfixturevalue("django_db_setup")
    blocker = request.getfixturevalue("django_db_blocker")
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    from audit import sequencer

    with blocker.unblock():
        sequencer.realign(connection)
