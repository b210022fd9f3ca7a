"""A worker's lease on an export build: ``heartbeat_at``, renewed by a heartbeat while the worker lives.

See :mod:`portal.core.leases`: a build whose process died stops renewing, so the reaper requeues it one
lease later; a slow build (one large PDF) keeps its lease however long a step takes.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from portal.core.leases import LeaseHeartbeat, renew_interval
from portal.legal.models import ExportPackage, ExportStatus


def export_lease() -> dt.timedelta:
    """How long a build stays its worker's without a heartbeat (EXPORT_LEASE_SECONDS)."""
    return dt.timedelta(seconds=settings.EXPORT_LEASE_SECONDS)


def export_lease_renew(*, package_pk: int) -> bool:
    """Renew a building job's lease; False once it is no longer building (cancelled or reaped)."""
    building = ExportPackage.objects.filter(pk=package_pk, status=ExportStatus.BUILDING)
    return bool(building.update(heartbeat_at=timezone.now()))


def build_heartbeat(*, package_pk: int) -> LeaseHeartbeat:
    """The heartbeat that keeps a build's lease while the ``with`` block runs."""
    return LeaseHeartbeat(
        lambda: export_lease_renew(package_pk=package_pk),
        every=renew_interval(export_lease().total_seconds()),
        what=f"export {package_pk}",
    )
