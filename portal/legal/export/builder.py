"""Build one export package: the ZIP is streamed to a temporary file, then renamed into place.

Order of the entries: ``records/`` (one chunk of studies at a time), ``audit/``, ``fhir/bundle.json``,
``report.pdf``, ``load_file.xml``, ``VERIFY.md``, ``verify_package.py``, then ``manifest.json`` and
``manifest.sig`` over the inventory gathered while writing. Memory holds one chunk of studies, the
inventory and the PDF's compact timelines, whatever the scope.

On any failure or cancellation the temporary file is deleted: a package either appears complete under
its final name or not at all.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from django.utils import timezone

import audit.verify_package as verifier_module
from audit import checkpoints as audit_checkpoints
from audit.models import LEAF_FIELDS, AuditEvent
from audit.signing import MANIFEST_DOMAIN, key_fingerprint, public_key_pem, sign_bytes
from portal.legal.export import auditlog, fhir, loadfile, pdf, records
from portal.legal.export.deid import Deidentifier, Identity
from portal.legal.export.scope import ExportScope, resolve
from portal.legal.export.timeline import study_timeline
from portal.legal.export.zipwriter import PackageWriter
from portal.legal.holds import hold_ids_covering
from portal.legal.models import ExportPackage

CHUNK = 200
VERIFY_MD = Path(__file__).with_name("VERIFY.md")
Heartbeat = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What was written."""

    path: Path
    sha256: str
    size: int
    studies: int
    events: int


def software_version() -> str:
    """The installed Concordance version (the package metadata), or "unknown" in a bare checkout."""
    try:
        return metadata.version("concordance")
    except metadata.PackageNotFoundError:
        return "unknown"


def temp_path_for(out_path: Path, attempt: int) -> Path:
    """The hidden temporary name a build writes before renaming (the reaper deletes leftovers)."""
    return out_path.with_name(f".{out_path.name}.{attempt}.partial")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def build_package(*, package: ExportPackage, out_path: Path, heartbeat: Heartbeat) -> BuildResult:
    """Write ``package`` to ``out_path`` atomically; ``heartbeat(done, total)`` may raise to stop."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out_path, package.attempts)
    tmp.unlink(missing_ok=True)
    writer = PackageWriter(tmp)
    try:
        studies, events = _write(package, writer, heartbeat)
        writer.close()
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out_path)
        _fsync_dir(out_path.parent)
    except BaseException:
        writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    return BuildResult(out_path, _sha256_file(out_path), out_path.stat().st_size, studies, events)


COUNTED = (
    "studies",
    "ai_outputs",
    "signed_reports",
    "comparisons",
    "discrepancies",
    "qa_reviews",
    "reinference_results",
)


@dataclasses.dataclass
class _Build:
    """One package being written: its inputs and what each step leaves for the next ones."""

    package: ExportPackage
    writer: PackageWriter
    heartbeat: Heartbeat
    deid: Identity
    study_ids: list[int]
    refs: auditlog.ScopeRefs
    created_at: dt.datetime = dataclasses.field(default_factory=timezone.now)
    counts: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    timelines: list[pdf.StudyTimeline] = dataclasses.field(default_factory=list)
    checkpoints: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    seqs: list[int] = dataclasses.field(default_factory=list)
    done: int = 0

    @property
    def total(self) -> int:
        """Progress steps: each study twice (records, FHIR), plus audit, report and manifest."""
        return 2 * len(self.study_ids) + 3

    def progress(self, done: int) -> None:
        """Record ``done`` steps and beat the heart (the job's liveness and progress)."""
        self.done = done
        self.heartbeat(done, self.total)

    @property
    def requested_by(self) -> str:
        """Who asked for the package, as printed in it."""
        user = self.package.requested_by
        return user.get_username() if user else "system (command line)"

    def chunks(self) -> Iterator[list[int]]:
        """The study ids in chunks of CHUNK (bounded memory whatever the scope)."""
        for start in range(0, len(self.study_ids), CHUNK):
            yield self.study_ids[start : start + CHUNK]


def _write(package: ExportPackage, writer: PackageWriter, heartbeat: Heartbeat) -> tuple[int, int]:
    """Write every file of the package in order; returns (studies, audit events) written."""
    deid: Identity = Deidentifier() if package.deidentified else Identity()
    study_ids = list(resolve(ExportScope.from_json(package.scope)).values_list("id", flat=True))
    build = _Build(package, writer, heartbeat, deid, study_ids, auditlog.ScopeRefs(study_ids=study_ids))
    build.refs.add("export_package", package.pk)
    build.progress(0)
    _write_records(build)
    build.checkpoints, build.seqs = auditlog.write_audit(writer, build.refs, redacted=deid.deidentified)
    build.progress(build.done + 1)
    _write_fhir(build)
    key = audit_checkpoints.signing_key()
    _write_report(build, key_fingerprint(key.public_key()))
    listed = list(writer.entries)
    with writer.open("load_file.xml", media_type="application/xml") as out:  # lists all written so far
        loadfile.write_load_file(
            out,
            package_id=str(package.package_id),
            matter=package.matter_reference,
            custodian=build.requested_by,
            entries=listed,
        )
    writer.write_bytes("VERIFY.md", VERIFY_MD.read_bytes(), media_type="text/markdown")
    writer.write_bytes(
        "verify_package.py", Path(verifier_module.__file__).read_bytes(), media_type="text/x-python"
    )
    _write_manifest(build, key)
    build.progress(build.total)
    return len(study_ids), len(build.seqs)


def _write_records(build: _Build) -> None:
    """records/<folder>/*.json per study, remembering what the audit trail and the report need."""
    taken: set[str] = set()
    for chunk in build.chunks():
        for bundle in records.load_chunk(chunk, build.deid):
            study = bundle.study
            # A study may be known only by its StudyInstanceUID until the RIS names its accession.
            accession = build.deid.accession(study.accession_number) if study.accession_number else ""
            bundle.folder = records.folder_name(accession, study.pk, taken)
            for name, value in records.sections_of(bundle):
                build.writer.write_json(
                    f"records/{bundle.folder}/{name}",
                    value,
                    metadata={"AccessionNumber": accession, "Section": name.removesuffix(".json")},
                )
            _remember(bundle, build.refs, build.counts)
            build.timelines.append(study_timeline(bundle))
        build.progress(build.done + len(chunk))
    # Released holds too: the package shows the matter's whole hold history (portal.legal.holds).
    for hold_id in sorted(hold_ids_covering(build.study_ids, include_released=True)):
        build.refs.add("legal_hold", hold_id)


def _write_fhir(build: _Build) -> None:
    """fhir/bundle.json: the studies' resources, then (identified packages) the audit events."""
    with build.writer.open("fhir/bundle.json", media_type="application/fhir+json") as out:
        stream = fhir.BundleStream(out, records.iso(build.created_at) or "")
        for chunk in build.chunks():
            for bundle in records.load_chunk(chunk, build.deid):
                for resource in fhir.study_resources(bundle):
                    stream.add(resource)
            build.progress(build.done + len(chunk))
        if not build.deid.deidentified:
            for start in range(0, len(build.seqs), 1000):
                rows = AuditEvent.objects.filter(seq__in=build.seqs[start : start + 1000]).order_by("seq")
                for resource in fhir.audit_resources(rows.values_list(*LEAF_FIELDS, "leaf_hash")):
                    stream.add(resource)
        stream.close()


def _write_report(build: _Build, fingerprint: str) -> None:
    """report.pdf: cover, one timeline per study, chain of custody."""
    package, deid = build.package, build.deid
    report = pdf.ReportPdf()
    report.cover(
        [
            ("Package", str(package.package_id)),
            ("Matter", package.matter_reference),
            ("Reason", package.reason),
            ("Requested by", build.requested_by),
            ("Requested at", records.iso(package.requested_at) or ""),
            ("Built at", records.iso(build.created_at) or ""),
            ("Signing key (Ed25519, SHA-256 fingerprint)", fingerprint),
            ("De-identified", deid.profile if deid.deidentified else "no (identified package)"),
        ],
        _shown_scope(package, deid),
        {**build.counts, "audit_events": len(build.seqs)},
    )
    for timeline in build.timelines:
        report.study(timeline)
    report.custody(_custody(package, build.checkpoints, build.seqs, deid))
    build.writer.write_bytes(
        "report.pdf", report.output(), media_type="application/pdf", metadata={"Section": "report"}
    )
    build.timelines.clear()


def _write_manifest(build: _Build, key: Any) -> None:
    """manifest.json (every file with its hash, the checkpoints, the public key) and manifest.sig."""
    package, deid = build.package, build.deid
    fingerprint = key_fingerprint(key.public_key())
    manifest = {
        "package_id": str(package.package_id),
        "format": "concordance-export-v1",
        "created_at": records.iso(build.created_at),
        "software": {"name": "concordance", "version": software_version()},
        "matter_reference": package.matter_reference,
        "reason": package.reason,
        "requested_by": build.requested_by,
        "requested_at": records.iso(package.requested_at),
        "scope": _shown_scope(package, deid),
        "deidentification": {"applied": deid.deidentified, "profile": deid.profile or None},
        "counts": {**build.counts, "audit_events": len(build.seqs)},
        "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in build.writer.entries],
        "checkpoints": build.checkpoints,
        "public_key_pem": public_key_pem(key),
        "public_key_fingerprint": fingerprint,
        "signature": {
            "algorithm": "Ed25519",
            "domain": MANIFEST_DOMAIN.decode().strip(),
            "file": "manifest.sig",
        },
    }
    manifest_bytes = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    build.writer.write_bytes("manifest.json", manifest_bytes, listed=False)
    build.writer.write_bytes(
        "manifest.sig", base64.b64encode(sign_bytes(key, manifest_bytes)) + b"\n", listed=False
    )


def _remember(bundle: records.StudyBundle, refs: auditlog.ScopeRefs, counts: dict[str, int]) -> None:
    refs.patient_ids.add(bundle.study.patient_id)
    refs.add("study", bundle.study.pk)
    refs.add("patient", bundle.study.patient_id)
    counts["studies"] += 1
    for o in bundle.ai_outputs:
        refs.add("ai_output", o.pk)
        refs.add("model_version", o.model_version_id)
        counts["ai_outputs"] += 1
    for r in bundle.reports:
        refs.add("signed_report", r.pk)
        counts["signed_reports"] += 1
    for c in bundle.comparisons:
        refs.add("comparison", c.pk)
        counts["comparisons"] += 1
        counts["discrepancies"] += len(c.discrepancies.all())
        for review in c.reviews.all():
            refs.add("review", review.pk)
            counts["qa_reviews"] += 1
        for feedback in c.feedback.all():
            refs.add("feedback", feedback.pk)
    for result in bundle.reinference:
        refs.add("reinference_run", result.run_id)
        counts["reinference_results"] += 1


def _shown_scope(package: ExportPackage, deid: Identity) -> dict[str, Any]:
    """The scope as printed in the package; a de-identified package names only the kinds of criteria."""
    if not deid.deidentified:
        return dict(package.scope)
    return {"criteria": sorted(package.scope)}


def _custody(
    package: ExportPackage, checkpoint_list: list[dict], seqs: list[int], deid: Identity
) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for event in AuditEvent.objects.filter(object_type="export_package", object_id=str(package.pk)).order_by(
        "seq"
    ):
        who = event.actor_username or event.actor_kind
        rows.append(
            (
                f"{event.action} (audit event {event.seq})",
                f"{records.iso(event.recorded_at)} by {who} via {event.channel or 'system'}",
            )
        )
    for cp in checkpoint_list:
        stamp = dt.datetime.fromtimestamp(cp["timestamp_ms"] / 1000, tz=dt.UTC)
        rows.append(
            (
                f"Signed checkpoint, tree size {cp['tree_size']}",
                f"root {cp['root_hash']} signed {records.iso(stamp)}",
            )
        )
    rows.append(
        (
            "Audit events in this package",
            f"{len(seqs)} events, each with an inclusion proof"
            + (
                " (contents withheld: de-identified package; see audit/redacted_events.jsonl)"
                if deid.deidentified
                else ""
            ),
        )
    )
    rows.append(
        (
            "After this package was sealed",
            "Its SHA-256 and size are recorded in the audit event 'export.build' of this package; every "
            "download is recorded as 'export.download'. Ask the organisation for those events and their "
            "inclusion proofs.",
        )
    )
    return rows
