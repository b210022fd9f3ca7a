"""Periodic audit work is scheduled: integration (so events reach the tree within seconds where no
dedicated integrator runs, as in the demo), checkpoints and verification; the demo's worker runs beat."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.utils import timezone

from audit import integrator
from audit.models import AuditLogHead
from portal.celery import app
from portal.core.workers import worker_argv


def _scheduled() -> dict[str, float]:
    return {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}


def test_beat_integrates_signs_and_verifies_the_log():
    scheduled = _scheduled()

    assert scheduled["audit.tasks.integrate_log"] == settings.AUDIT_INTEGRATE_SECONDS <= 30
    assert "audit.tasks.write_checkpoint" in scheduled and "audit.tasks.verify_log" in scheduled
    app.loader.import_default_modules()
    for task in scheduled:
        assert task in app.tasks, f"{task} is scheduled but no such task is registered"


def test_the_demo_worker_runs_beat(tmp_path):
    argv = worker_argv(solo=False, beat_schedule=tmp_path / "celerybeat-schedule")

    assert "--beat" in argv


@pytest.mark.django_db
@pytest.mark.parametrize(("idle_s", "expected"), [(1, 11), (25, 11), (31, None)])
def test_the_promised_delay_follows_the_schedule(idle_s, expected):
    head = AuditLogHead(size=0, integrated_at=timezone.now() - dt.timedelta(seconds=idle_s))

    assert integrator.expected_delay_s(head) == expected


@pytest.mark.django_db
def test_a_slower_schedule_is_not_reported_stalled_between_passes(settings):
    settings.AUDIT_INTEGRATE_SECONDS = 60
    head = AuditLogHead(size=0, integrated_at=timezone.now() - dt.timedelta(seconds=90))

    assert integrator.expected_delay_s(head) == 61


def test_the_integrate_task_runs_the_integrator(monkeypatch):
    from audit import tasks

    calls = []
    monkeypatch.setattr(integrator, "integrate_all", lambda **kw: calls.append(kw) or integrator.Pass(size=5))

    assert tasks.integrate_log() == 5 and calls == [{"max_seconds": 50}]
