"""Cancelled, crashed, forbidden and abandoned builds: clear messages and never a partial package."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from audit.log import AuditContext
from audit.models import AuditEvent
from portal.legal import export_jobs
from portal.legal.export import records
from portal.legal.export.errors import ExportForbidden
from portal.legal.models import ExportPackage, ExportStatus

pytestmark = pytest.mark.django_db

CTX = AuditContext(channel="test")


def _request(personas, **scope) -> ExportPackage:
    scope = scope or {"accession_numbers": ["ACC-7001", "ACC-7002", "ACC-8001"]}
    return export_jobs.export_request(
        actor=personas["lena"], context=CTX, matter_reference="M-9", reason="Claim", **scope
    )


def _exports_contents() -> list[str]:
    return sorted(p.name for p in export_jobs.exports_dir().iterdir())


def test_scope_under_no_permission_is_refused(department, personas) -> None:
    for name in ("alice", "otto", "eve"):
        with pytest.raises(ExportForbidden, match="may not export"):
            export_jobs.export_request(
                actor=personas[name], context=CTX, matter_reference="M", reason="R", patient_mrn="MRN-ZX9041"
            )
    assert ExportPackage.objects.count() == 0


def test_cancel_during_build_leaves_no_file(department, personas, monkeypatch) -> None:
    package = _request(personas)
    real = records.load_chunk

    def cancel_then_load(ids, deid):
        export_jobs.export_cancel(actor=personas["lena"], context=CTX, package=package)
        return real(ids, deid)

    monkeypatch.setattr(records, "load_chunk", cancel_then_load)
    result = export_jobs.export_build(package_pk=package.pk)
    assert result.status == ExportStatus.CANCELLED
    assert result.error.startswith("Cancelled by lena")
    assert result.file_path == "" and result.sha256 == ""
    assert _exports_contents() == []
    assert AuditEvent.objects.filter(action="export.cancel", object_id=str(package.pk)).count() == 1


def test_crash_mid_build_fails_with_a_message_and_no_file(department, personas, monkeypatch) -> None:
    package = _request(personas)

    def explode(bundle):
        if bundle.study.accession_number == "ACC-7002":
            raise RuntimeError("disk on fire: Quillfeather")  # must not reach the job or the log
        return None

    monkeypatch.setattr(records, "SECTION_WRITERS", [*records.SECTION_WRITERS, explode])
    result = export_jobs.export_build(package_pk=package.pk)
    assert result.status == ExportStatus.FAILED
    assert result.error == "The package could not be built: Internal error (RuntimeError)."
    assert _exports_contents() == []
    failed = AuditEvent.objects.get(action="export.build_failed")
    assert "Quillfeather" not in str(failed.details)
    assert export_jobs.export_build(package_pk=package.pk) is None  # a failed job stays failed


def test_stale_build_is_reaped_requeued_then_failed(department, personas) -> None:
    package = _request(personas)
    claimed = export_jobs._claim(package.pk)  # a worker took it ... and died
    assert claimed is not None
    partial = export_jobs.exports_dir() / f".{package.package_id}.zip.1.partial"
    partial.write_bytes(b"PK half a zip")
    ExportPackage.objects.filter(pk=package.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))

    assert export_jobs.export_reap_stale() == [package.pk]
    package.refresh_from_db()
    assert package.status == ExportStatus.QUEUED
    assert not partial.exists()
    assert export_jobs.export_reap_stale() == []  # queued jobs are not reaped again

    # Two more dead workers: the job is failed for good, with a message.
    for _ in range(ExportPackage.MAX_ATTEMPTS - 1):
        export_jobs._claim(package.pk)
        ExportPackage.objects.filter(pk=package.pk).update(
            heartbeat_at=timezone.now() - dt.timedelta(hours=1)
        )
        export_jobs.export_reap_stale()
    package.refresh_from_db()
    assert package.status == ExportStatus.FAILED
    assert "stopped 3 times" in package.error
    assert AuditEvent.objects.filter(action="export.reap").count() == 3


def test_a_reaped_build_still_running_stops_at_its_next_heartbeat(department, personas, monkeypatch) -> None:
    package = _request(personas)
    real = records.load_chunk

    def reaped_meanwhile(ids, deid):
        ExportPackage.objects.filter(pk=package.pk).update(
            heartbeat_at=timezone.now() - dt.timedelta(hours=1)
        )
        export_jobs.export_reap_stale()
        return real(ids, deid)

    monkeypatch.setattr(records, "load_chunk", reaped_meanwhile)
    result = export_jobs.export_build(package_pk=package.pk)
    assert result.status == ExportStatus.QUEUED  # left for the re-sent task to build afresh
    assert _exports_contents() == []
    monkeypatch.setattr(records, "load_chunk", real)
    rebuilt = export_jobs.export_build(package_pk=package.pk)
    assert rebuilt.status == ExportStatus.READY and rebuilt.attempts == 2
    assert Path(rebuilt.file_path).exists()
    assert _exports_contents() == [Path(rebuilt.file_path).name]
