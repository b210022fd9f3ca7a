"""A package built by the project before the sequencer/integrator change still verifies with today's
verify_package.py, with ``cryptography`` and on the standard library alone (see data/README.md)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from audit import verify_package as vp
from tests.audit_crypto.test_verify_package import run_alone

DATA = Path(__file__).parent / "data"
OLD_PACKAGE = DATA / "built-by-main-2063048.zip"
OLD_KEY = DATA / "built-by-main-2063048.pem"


def test_a_package_built_before_the_change_is_valid() -> None:
    report = vp.verify_package(OLD_PACKAGE, OLD_KEY.read_bytes())
    assert report.valid, report.reason
    assert report.event_count > 0 and report.checkpoint_count > 0


def test_it_is_valid_on_the_standard_library_alone_and_its_tampered_copy_is_not(tmp_path: Path) -> None:
    result = run_alone(tmp_path, str(OLD_PACKAGE), "--public-key", str(OLD_KEY), stdlib_only=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "VERDICT: VALID"

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(OLD_PACKAGE) as source, zipfile.ZipFile(tampered, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "audit/events.jsonl":
                data = data.replace(b'"patient.create"', b'"patient.delete"', 1)
            target.writestr(info, data)
    result = run_alone(tmp_path, str(tampered), "--public-key", str(OLD_KEY), stdlib_only=True)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith("VERDICT: INVALID")
