"""Packages built from the records, verified; then tampered with, and refused with a reason each time."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command

from audit import checkpoints
from audit import verify_package as vp
from audit.log import AuditContext
from audit.models import AuditEvent
from audit.signing import public_key_pem
from portal.legal import export_jobs
from portal.legal.export.records import folder_name
from portal.legal.models import ExportPackage, ExportStatus
from tests.legal_export.conftest import read_zip, write_zip

pytestmark = pytest.mark.django_db

CLI = AuditContext(channel="test")


def build(personas, out: Path | None = None, **scope) -> export_jobs.ExportPackage:
    package = export_jobs.export_request(
        actor=personas["lena"], context=CLI, matter_reference="M-2026-001", reason="Claim by patient", **scope
    )
    built = export_jobs.export_build(package_pk=package.pk, out_path=out)
    assert built is not None and built.status == ExportStatus.READY, built and built.error
    return built


def pinned() -> str:
    return public_key_pem(checkpoints.signing_key())


def test_single_study_package_verifies(department, personas) -> None:
    package = build(personas, accession_numbers=["ACC-7001"])
    path = Path(package.file_path)
    assert path.parent.name == "exports"
    report = vp.verify_package(path, pinned())
    assert report.valid, report.reason
    files = read_zip(path)
    assert {
        "manifest.json",
        "manifest.sig",
        "records/ACC-7001/study.json",
        "records/ACC-7001/ai_outputs.json",
        "records/ACC-7001/signed_reports.json",
        "records/ACC-7001/comparisons.json",
        "audit/events.jsonl",
        "audit/consistency.json",
        "fhir/bundle.json",
        "report.pdf",
        "load_file.xml",
        "VERIFY.md",
        "verify_package.py",
    } <= set(files)
    assert not any(name.startswith("records/ACC-7002") for name in files)
    manifest = json.loads(files["manifest.json"])
    assert manifest["matter_reference"] == "M-2026-001"
    assert manifest["requested_by"] == "lena"
    assert manifest["counts"]["studies"] == 1
    outputs = json.loads(files["records/ACC-7001/ai_outputs.json"])
    assert outputs[0]["model_version"]["name"] == "concordance-chest"
    comparisons = json.loads(files["records/ACC-7001/comparisons.json"])
    assert {d["category"] for d in comparisons[0]["discrepancies"]} >= {"location", "missed_finding"}
    # The events of this study, and the export's own request, are in the package with proofs.
    actions = [json.loads(line)["event"]["action"] for line in files["audit/events.jsonl"].splitlines()]
    assert {"study.create", "ai_output.create", "signed_report.final", "export.request"} <= set(actions)
    assert report.event_count == len(actions)
    assert files["report.pdf"].startswith(b"%PDF")
    bundle = json.loads(files["fhir/bundle.json"])
    types = {entry["resource"]["resourceType"] for entry in bundle["entry"]}
    assert types == {"DiagnosticReport", "Provenance", "AuditEvent"}
    assert package.sha256 and package.size == path.stat().st_size
    assert AuditEvent.objects.filter(action="export.build", object_id=str(package.pk)).count() == 1


def test_multi_study_package_by_patient_verifies(department, personas) -> None:
    package = build(personas, patient_mrn="MRN-ZX9041")
    report = vp.verify_package(package.file_path, pinned())
    assert report.valid, report.reason
    files = read_zip(Path(package.file_path))
    assert {"records/ACC-7001/study.json", "records/ACC-7002/study.json"} <= set(files)
    assert "records/ACC-8001/study.json" not in files
    assert report.checkpoint_count >= 1


def test_later_events_get_a_later_checkpoint_and_a_consistency_proof(department, personas) -> None:
    checkpoints.create_checkpoint()  # an older checkpoint covering the ingestion
    package = build(personas, date_from=dt.date(2024, 1, 1), date_to=dt.date(2025, 12, 31))
    report = vp.verify_package(package.file_path, pinned())
    assert report.valid, report.reason
    assert report.checkpoint_count == 2
    consistency = json.loads(read_zip(Path(package.file_path))["audit/consistency.json"])
    assert len(consistency) == 1


def test_package_by_model_version(department, personas) -> None:
    package = build(personas, model="concordance-chest:1.0.0")
    manifest = json.loads(read_zip(Path(package.file_path))["manifest.json"])
    assert manifest["counts"]["studies"] == 3


def test_command_line_builds_and_verifies(department, personas, tmp_path, capsys) -> None:
    out = tmp_path / "cli.zip"
    call_command(
        "export_package", "--accession", "ACC-7001", "--accession", "ACC-8001",
        "--matter", "M-7", "--reason", "court order", "--out", str(out),
    )  # fmt: skip
    key = tmp_path / "key.pem"
    key.write_text(pinned())
    capsys.readouterr()
    call_command("verify_package", str(out), "--public-key", str(key))  # valid: returns normally
    assert capsys.readouterr().out.splitlines()[-1] == "VERDICT: VALID"

    entries = read_zip(out)
    del entries["report.pdf"]
    broken = write_zip(tmp_path / "broken.zip", entries)
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_package", str(broken), "--public-key", str(key))
    assert exit_info.value.code == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "VERDICT: INVALID: file inventory: listed file report.pdf is missing from the package"


# --- Tampering: each gives INVALID and says why --------------------------------------------------------


@pytest.fixture
def package_path(department, personas) -> Path:
    return Path(build(personas, accession_numbers=["ACC-7001", "ACC-8001"]).file_path)


def _verdict(path: Path) -> vp.Report:
    report = vp.verify_package(path, pinned())
    assert not report.valid
    assert report.verdict.startswith("VERDICT: INVALID: ")
    return report


@pytest.mark.parametrize(
    "name",
    [
        "records/ACC-7001/signed_reports.json",
        "fhir/bundle.json",
        "report.pdf",
        "load_file.xml",
        "verify_package.py",
    ],
)
def test_one_altered_byte_in_any_file(package_path, tmp_path, name) -> None:
    entries = read_zip(package_path)
    data = bytearray(entries[name])
    data[len(data) // 2] ^= 0x01
    entries[name] = bytes(data)
    report = _verdict(write_zip(tmp_path / "t.zip", entries))
    assert report.reason == f"file digests: {name}: SHA-256 does not match the manifest"


def test_altered_audit_event(package_path, tmp_path) -> None:
    entries = read_zip(package_path)
    entries["audit/events.jsonl"] = entries["audit/events.jsonl"].replace(b"ris", b"eve", 1)
    report = _verdict(write_zip(tmp_path / "t.zip", entries))
    assert report.reason.startswith("file digests: audit/events.jsonl")
    assert any(c.name == "audit events" and not c.ok and "leaf_hash" in c.detail for c in report.checks)


def test_dropped_file(package_path, tmp_path) -> None:
    entries = read_zip(package_path)
    del entries["records/ACC-8001/ai_outputs.json"]
    report = _verdict(write_zip(tmp_path / "t.zip", entries))
    assert (
        report.reason
        == "file inventory: listed file records/ACC-8001/ai_outputs.json is missing from the package"
    )


def test_reordered_audit_lines(package_path, tmp_path) -> None:
    entries = read_zip(package_path)
    lines = entries["audit/events.jsonl"].splitlines(keepends=True)
    assert len(lines) > 2
    lines[0], lines[1] = lines[1], lines[0]
    entries["audit/events.jsonl"] = b"".join(lines)
    report = _verdict(write_zip(tmp_path / "t.zip", entries))
    assert report.reason.startswith("file digests: audit/events.jsonl")
    assert any(c.name == "audit events" and not c.ok and "must ascend" in c.detail for c in report.checks)


def test_swapped_signature(package_path, personas, tmp_path) -> None:
    other = Path(build(personas, accession_numbers=["ACC-7002"]).file_path)
    entries = read_zip(package_path)
    entries["manifest.sig"] = read_zip(other)["manifest.sig"]  # valid, same key, another manifest
    report = _verdict(write_zip(tmp_path / "t.zip", entries))
    assert report.reason == "manifest signature: signature does not verify for manifest.json"


def test_wrong_pinned_key(package_path, tmp_path) -> None:
    report = vp.verify_package(package_path, public_key_pem(Ed25519PrivateKey.generate()))
    assert not report.valid and report.reason.startswith("public key: package signed by key")


def test_command_line_refuses_a_bad_scope(department, tmp_path) -> None:
    out = tmp_path / "x.zip"
    with pytest.raises(CommandError, match="Unknown accession numbers: NOPE"):
        call_command(
            "export_package", "--accession", "NOPE", "--matter", "M", "--reason", "R", "--out", str(out)
        )
    with pytest.raises(CommandError, match="Give a scope"):
        call_command("export_package", "--matter", "M", "--reason", "R", "--out", str(out))
    assert not out.exists() and ExportPackage.objects.count() == 0


@pytest.mark.parametrize(
    ("accession", "folder"),
    [
        ("ACC-1", "ACC-1"),
        ("../etc/passwd", "_etc_passwd-5"),
        ("a b<script>", "a_b_script_-5"),
        ("..", "study-5"),
    ],
)
def test_folder_names_are_safe(accession, folder) -> None:
    assert folder_name(accession, 5, set()) == folder
    taken = {folder}
    assert folder_name(accession, 5, taken) != folder
