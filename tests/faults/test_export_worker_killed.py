"""A worker SIGKILLed while it builds a legal export package: no corrupt package, ever.

The builder writes to a temporary name and renames only a finished, hashed file; a dead worker's
heartbeat stops, the reaper requeues the job, and another worker builds it again. The package that
exists in the end must be the only file in the exports folder, match its recorded SHA-256 and pass
the standalone verifier.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.conftest import ROOT, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

STUDIES = 60
REQUEST = """
import datetime as dt
from audit.log import SYSTEM
from portal.legal import export_jobs
package = export_jobs.export_request(
    actor=None, context=SYSTEM, matter_reference="FAULT-1", reason="fault test",
    date_from=dt.date(2000, 1, 1), date_to=dt.date(2100, 1, 1),
)
print(package.pk)
"""
# What beat's reaper does once a build's heartbeat is older than EXPORT_LEASE_SECONDS (30 s): the
# test cannot wait that long, and the heartbeat of a SIGKILLed worker is stale by definition.
REAP_NOW = """
import datetime as dt
from portal.legal import export_jobs
print(export_jobs.export_reap_stale(stale_after=dt.timedelta(0)))
"""


def _package(stack, pk: int) -> tuple[str, int, str, str]:
    return stack.query(
        "SELECT status, attempts, sha256, file_path FROM legal_exportpackage WHERE id = %s", [pk]
    )[0]


def test_a_worker_killed_mid_build_leaves_no_corrupt_package(stack):
    stack.start_web()
    for n in range(STUDIES):
        assert stack.post_pair(n, prefix="E") == [201, 201, 201]
    package_pk = int(stack.shell(REQUEST).strip().splitlines()[-1])

    worker = stack.start_worker()
    assert wait_until(lambda: _package(stack, package_pk)[0] != "queued", timeout=120, interval=0.01)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=20)
    status, attempts, _, _ = _package(stack, package_pk)
    assert status == "building", f"the kill came too late: the package is already {status}"
    exports = stack.var_dir / "exports"
    assert not list(exports.glob("*.zip")), "a package file is visible while the build was unfinished"

    stack.shell(REAP_NOW)
    stack.start_worker()
    assert wait_until(lambda: _package(stack, package_pk)[0] == "ready", timeout=300), _package(
        stack, package_pk
    )

    status, attempts, sha256, file_path = _package(stack, package_pk)
    assert attempts >= 2
    files = sorted(p.name for p in exports.iterdir())
    assert files == [Path(file_path).name], files  # no partial file left behind
    data = Path(file_path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha256
    verified = subprocess.run(
        [sys.executable, str(ROOT / "audit" / "verify_package.py"), file_path],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    assert "audit log intact" in stack.verify_audit()
