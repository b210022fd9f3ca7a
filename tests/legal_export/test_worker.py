"""End to end through a real Celery worker: request over the API, the worker builds, counsel downloads."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from django.conf import settings

from audit import checkpoints
from audit import verify_package as vp
from audit.models import AuditEvent
from audit.signing import load_or_create_private_key, public_key_pem
from portal.legal.models import ExportPackage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


def _wait_for(predicate, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_a_worker_builds_the_package(celery_worker_process, department, client_for, tmp_path: Path) -> None:
    # The worker signs with the key file of the configured var dir; make sure it exists for both.
    key = load_or_create_private_key(Path(settings.AUDIT_SIGNING_KEY_FILE), create=True)
    checkpoints._signing_key.cache_clear()
    client = client_for("lena")
    response = client.post(
        "/api/v1/legal/exports",
        {"matter_reference": "M-W", "reason": "worker path", "accession_numbers": ["ACC-7001", "ACC-8001"]},
        format="json",
    )
    assert response.status_code == 202
    pk = response.json()["id"]

    def finished() -> bool:
        return ExportPackage.objects.get(pk=pk).is_finished

    assert _wait_for(finished), "the worker did not finish the package"
    package = ExportPackage.objects.get(pk=pk)
    assert package.status == "ready", package.error
    try:
        download = client.get(f"/api/v1/legal/exports/{pk}/download")
        assert download.status_code == 200
        path = tmp_path / "downloaded.zip"
        with io.FileIO(path, "w") as fh:
            for chunk in download.streaming_content:
                fh.write(chunk)
        report = vp.verify_package(path, public_key_pem(key))
        assert report.valid, report.reason
        actions = set(AuditEvent.objects.filter(object_id=str(pk)).values_list("action", flat=True))
        assert {"export.request", "export.build_start", "export.build", "export.download"} <= actions
    finally:
        Path(package.file_path).unlink(missing_ok=True)
