"""The auditor's page: who may see it, what it shows, and that refusals are audited."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from audit.models import AuditEvent, VerificationRun
from audit.verify import verify_and_store

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("persona", ["otto", "lena", "dana"])
def test_auditors_legal_and_the_chair_see_the_log_status(personas, persona):
    verify_and_store()

    page = _client(personas[persona]).get("/audit/")

    assert page.status_code == 200
    assert "Audit log integrity" in page.content.decode()
    assert "Intact" in page.content.decode()


@pytest.mark.parametrize("persona", ["alice", "carol", "ris", "eve"])
def test_other_roles_are_refused_and_the_refusal_is_audited(personas, persona):
    response = _client(personas[persona]).get("/audit/")

    assert response.status_code == 403
    event = AuditEvent.objects.get(action="access.denied")
    assert event.actor_id == personas[persona].pk and event.channel == "GET /audit/"


def test_a_failed_verification_is_shown_as_failed(personas):
    from django.utils import timezone

    now = timezone.now()
    VerificationRun.objects.create(
        started_at=now,
        finished_at=now,
        tree_size=9,
        checkpoints_checked=1,
        ok=False,
        first_failure_seq=4,
        message="audit log FAILED verification at event 4: altered",
    )

    page = _client(personas["otto"]).get("/audit/").content.decode()

    assert "FAILED verification at event 4" in page


def test_an_auditor_can_ask_for_a_verification(personas, monkeypatch, django_capture_on_commit_callbacks):
    from audit import tasks
    from audit.models import VerificationJob

    sent = []
    monkeypatch.setattr(tasks.verify_log, "delay", lambda **kwargs: sent.append(kwargs))

    with django_capture_on_commit_callbacks(execute=True):
        response = _client(personas["otto"]).post("/audit/")

    assert response.status_code == 302 and response["Location"] == "/audit/"
    job = VerificationJob.objects.get()
    # The button says "the whole log"; beat verifies incrementally.
    assert sent == [{"full": True, "job_id": job.pk}] and job.full and job.requested_by == "otto"


def test_the_page_counts_events_waiting_for_the_integrator(personas, append):
    from tests.audit.conftest import integrate_now

    append(4)
    integrate_now()
    append(3)

    html = _client(personas["otto"]).get("/audit/").content.decode()

    assert "Events in the Merkle tree</dt><dd>4</dd>" in html
    waiting = re.search(r"Recorded, not yet in the tree: expected within 11 s</dt>\s*<dd>(\d+)</dd>", html)
    assert waiting is not None
    # The 3 appended, plus the page view's own audit event if it is recorded before rendering.
    assert int(waiting.group(1)) in (3, 4)
