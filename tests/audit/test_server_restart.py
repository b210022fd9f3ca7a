"""A real PostgreSQL crash and restart under the audit log: a private server (initdb in a temporary
folder, its own port) is stopped with ``pg_ctl -m immediate`` (no shutdown checkpoint: WAL crash
recovery at the next start, sequences resuming ahead) while a writer holds a recorded event in an
open transaction and the integrator is in the middle of a batch. Afterwards: nothing committed is
lost, nothing uncommitted appears, every number is once in the tree, and the log verifies in full
against the checkpoint signed before the crash.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audit.test_crash_safety import INTEGRATOR_STOPPED_MID_BATCH, WRITER_STOPPED_IN_TRANSACTION

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

BEFORE = """
import json
from django.db import transaction
from audit import checkpoints
from audit.bulk import record_many
with transaction.atomic():
    record_many([{"action": "crash.test", "object_id": i} for i in range(50)], actor=None)
signed = checkpoints.create_checkpoint()
with transaction.atomic():
    record_many([{"action": "crash.test", "object_id": i} for i in range(2000)], actor=None)
print(json.dumps({"signed": signed.tree_size}))
"""

AFTER = """
import json
from django.db import transaction
from audit import checkpoints, integrator, log, verify
from audit.models import AuditEvent
for i in range(3):
    with transaction.atomic():
        log.record("after.restart", actor=None, object_id=i)
size = integrator.integrate_all(hole_wait_s=5.0).size
checkpoints.create_checkpoint()
verdict = verify.verify_log(full=True)
seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
counts = {a: AuditEvent.objects.filter(action=a).count()
          for a in ("crash.test", "crash.victim", "after.restart", integrator.VOID_ACTION)}
print(json.dumps({"size": size, "ok": verdict.ok, "summary": verdict.summary(),
                  "contiguous": seqs == list(range(len(seqs))), "stored": len(seqs), "counts": counts}))
"""


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb and the server refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, str]]:
    """A private PostgreSQL server with a migrated database; the environment to reach it."""
    bindir = Path(
        subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    )
    assert (bindir / "initdb").exists(), f"PostgreSQL server binaries are needed in {bindir}"
    # Not under pytest's tmp folder: the server runs as postgres, who cannot enter root's folders.
    home = Path(tempfile.mkdtemp(prefix="concordance-pg-restart-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    data, port = home / "data", _free_port()
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(home / "log")]
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    subprocess.run(_as_postgres([*ctl, "-o", options, "start"]), check=True, capture_output=True)
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/postgres",
        "CONCORDANCE_VAR_DIR": str(home / "var"),
        "AUDIT_SIGNING_KEY_FILE": str(home / "var" / "audit-signing-key.pem"),
        "AUDIT_SIGNING_KEY_CREATE": "1",
        "CONCORDANCE_TLS": "0",
    }
    try:
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        yield {"env": env, "ctl": ctl, "options": options}  # type: ignore[misc]
    finally:
        subprocess.run(_as_postgres([*ctl, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def _shell(script: str, env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _victim(script: str, env: dict[str, str], marker: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # noqa: S603
    for line in process.stdout:
        if marker in line:
            return process
    raise AssertionError(f"victim ended before {marker!r}: {process.stderr.read()[-2000:]}")


def test_a_crash_restart_of_postgresql_loses_duplicates_and_reorders_nothing(server):
    env = server["env"]
    signed = _shell(BEFORE, env)["signed"]
    writer = _victim(WRITER_STOPPED_IN_TRANSACTION, env, "RECORDED")
    batch = _victim(INTEGRATOR_STOPPED_MID_BATCH, env, "MID-BATCH")

    subprocess.run(
        _as_postgres([*server["ctl"], "-m", "immediate", "-o", server["options"], "restart"]),
        check=True,
        capture_output=True,
    )
    for process in (writer, batch):
        process.kill()
        process.wait(timeout=30)

    after = _shell(AFTER, env)

    assert after["ok"], after["summary"]
    assert after["contiguous"] and after["stored"] == after["size"]
    counts = after["counts"]
    assert (counts["crash.test"], counts["crash.victim"], counts["after.restart"]) == (2050, 0, 3)
    # The dead writer's number (and any the sequence skipped in recovery) are void leaves, no more.
    assert 1 <= counts["audit.sequence_void"] <= 1 + 32
    assert after["size"] == 2053 + counts["audit.sequence_void"]
    assert signed == 50
