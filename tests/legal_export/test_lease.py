"""An export build's lease is renewed by the building process: a slow step keeps it, a dead one loses it.

The heartbeat thread writes through its own database connection, so these tests commit
(``transaction=True``); the builder's slowness is real time spent inside the ``with`` block.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from audit.log import AuditContext
from portal.legal import export_jobs
from portal.legal.export.lease import build_heartbeat
from portal.legal.models import ExportPackage, ExportStatus

pytestmark = pytest.mark.django_db(transaction=True)


def _building(department, personas) -> ExportPackage:
    package = export_jobs.export_request(
        actor=personas["lena"], context=AuditContext(channel="test"), matter_reference="M-1", reason="Claim",
        accession_numbers=["ACC-7001"],
    )  # fmt: skip
    claimed = export_jobs._claim(package.pk)
    assert claimed is not None
    return claimed


def test_a_slow_live_build_keeps_its_lease_and_a_silent_one_is_reaped(department, personas, settings):
    settings.EXPORT_LEASE_SECONDS = 2
    package = _building(department, personas)

    with build_heartbeat(package_pk=package.pk) as heartbeat:
        for _ in range(4):  # a step twice as long as the lease
            time.sleep(1)
            assert export_jobs.export_reap_stale() == []
    assert heartbeat.renewals >= 5
    assert ExportPackage.objects.get(pk=package.pk).status == ExportStatus.BUILDING

    ExportPackage.objects.filter(pk=package.pk).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=3))
    assert export_jobs.export_reap_stale() == [package.pk]  # silent for a lease: requeued
    assert ExportPackage.objects.get(pk=package.pk).status == ExportStatus.QUEUED


def test_the_heartbeat_stops_when_the_build_is_cancelled(department, personas, settings):
    settings.EXPORT_LEASE_SECONDS = 1
    package = _building(department, personas)

    with build_heartbeat(package_pk=package.pk) as heartbeat:
        export_jobs.export_cancel(
            package=package, actor=personas["lena"], context=AuditContext(channel="test")
        )
        deadline = time.monotonic() + 10
        while not heartbeat.lost and time.monotonic() < deadline:
            time.sleep(0.05)
    assert heartbeat.lost
