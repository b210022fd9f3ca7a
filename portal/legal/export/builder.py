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
from collections.abc import Callable
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


def _write(package: ExportPackage, writer: PackageWriter, heartbeat: Heartbeat) -> tuple[int, int]:
    deid: Identity = Deidentifier() if package.deidentified else Identity()
    scope = ExportScope.from_json(package.scope)
    study_ids = list(resolve(scope).values_list("id", flat=True))
    total = 2 * len(study_ids) + 3
    heartbeat(0, total)
    created_at = timezone.now()
    refs = auditlog.ScopeRefs(study_ids=study_ids)
    refs.add("export_package", package.pk)
    timelines: list[pdf.StudyTimeline] = []
    taken: set[str] = set()
    folders: dict[int, str] = {}
    counts = dict.fromkeys(
        (
            "studies",
            "ai_outputs",
            "signed_reports",
            "comparisons",
            "discrepancies",
            "qa_reviews",
            "reinference_results",
        ),
        0,
    )
    done = 0

    # 1. records/
    for start in range(0, len(study_ids), CHUNK):
        for bundle in records.load_chunk(study_ids[start : start + CHUNK], deid):
            study = bundle.study
            bundle.folder = folders[study.pk] = records.folder_name(
                deid.accession(study.accession_number), study.pk, taken
            )
            accession = deid.accession(study.accession_number)
            for name, value in records.sections_of(bundle):
                writer.write_json(
                    f"records/{bundle.folder}/{name}",
                    value,
                    metadata={"AccessionNumber": accession, "Section": name.removesuffix(".json")},
                )
            _remember(bundle, refs, counts)
            timelines.append(_timeline(bundle))
        done = min(len(study_ids), start + CHUNK)
        heartbeat(done, total)
    # Released holds too: the package shows the matter's whole hold history (portal.legal.holds).
    for hold_id in sorted(hold_ids_covering(study_ids, include_released=True)):
        refs.add("legal_hold", hold_id)

    # 2. audit/
    checkpoint_list, seqs = auditlog.write_audit(writer, refs, redacted=deid.deidentified)
    done += 1
    heartbeat(done, total)

    # 3. fhir/bundle.json
    with writer.open("fhir/bundle.json", media_type="application/fhir+json") as out:
        stream = fhir.BundleStream(out, records.iso(created_at) or "")
        for start in range(0, len(study_ids), CHUNK):
            for bundle in records.load_chunk(study_ids[start : start + CHUNK], deid):
                for resource in fhir.study_resources(bundle):
                    stream.add(resource)
            done += min(CHUNK, len(study_ids) - start)
            heartbeat(done, total)
        if not deid.deidentified:
            for start in range(0, len(seqs), 1000):
                rows = AuditEvent.objects.filter(seq__in=seqs[start : start + 1000]).order_by("seq")
                for resource in fhir.audit_resources(rows.values_list(*LEAF_FIELDS, "leaf_hash")):
                    stream.add(resource)
        stream.close()

    # 4. report.pdf
    key = audit_checkpoints.signing_key()
    fingerprint = key_fingerprint(key.public_key())
    requested_by = package.requested_by.get_username() if package.requested_by else "system (command line)"
    shown_scope = _shown_scope(package, deid)
    report = pdf.ReportPdf()
    report.cover(
        [
            ("Package", str(package.package_id)),
            ("Matter", package.matter_reference),
            ("Reason", package.reason),
            ("Requested by", requested_by),
            ("Requested at", records.iso(package.requested_at) or ""),
            ("Built at", records.iso(created_at) or ""),
            ("Signing key (Ed25519, SHA-256 fingerprint)", fingerprint),
            ("De-identified", deid.profile if deid.deidentified else "no (identified package)"),
        ],
        shown_scope,
        {**counts, "audit_events": len(seqs)},
    )
    for timeline in timelines:
        report.study(timeline)
    report.custody(_custody(package, checkpoint_list, seqs, deid))
    writer.write_bytes(
        "report.pdf", report.output(), media_type="application/pdf", metadata={"Section": "report"}
    )
    del timelines

    # 5. load_file.xml (lists everything written so far)
    listed = list(writer.entries)
    with writer.open("load_file.xml", media_type="application/xml") as out:
        loadfile.write_load_file(
            out,
            package_id=str(package.package_id),
            matter=package.matter_reference,
            custodian=requested_by,
            entries=listed,
        )

    # 6. the verifier and its instructions
    writer.write_bytes("VERIFY.md", VERIFY_MD.read_bytes(), media_type="text/markdown")
    writer.write_bytes(
        "verify_package.py", Path(verifier_module.__file__).read_bytes(), media_type="text/x-python"
    )

    # 7. manifest.json + manifest.sig
    manifest = {
        "package_id": str(package.package_id),
        "format": "concordance-export-v1",
        "created_at": records.iso(created_at),
        "software": {"name": "concordance", "version": software_version()},
        "matter_reference": package.matter_reference,
        "reason": package.reason,
        "requested_by": requested_by,
        "requested_at": records.iso(package.requested_at),
        "scope": shown_scope,
        "deidentification": {"applied": deid.deidentified, "profile": deid.profile or None},
        "counts": {**counts, "audit_events": len(seqs)},
        "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in writer.entries],
        "checkpoints": checkpoint_list,
        "public_key_pem": public_key_pem(key),
        "public_key_fingerprint": fingerprint,
        "signature": {
            "algorithm": "Ed25519",
            "domain": MANIFEST_DOMAIN.decode().strip(),
            "file": "manifest.sig",
        },
    }
    manifest_bytes = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    writer.write_bytes("manifest.json", manifest_bytes, listed=False)
    writer.write_bytes(
        "manifest.sig", base64.b64encode(sign_bytes(key, manifest_bytes)) + b"\n", listed=False
    )
    heartbeat(total, total)
    return len(study_ids), len(seqs)


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


def _when(value: dt.datetime | None, bundle: records.StudyBundle) -> str:
    shifted = bundle.deid.datetime(value, bundle.patient_key)
    return shifted.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if shifted else "(no time)"


def _timeline(bundle: records.StudyBundle) -> pdf.StudyTimeline:
    d, key, s = bundle.deid, bundle.patient_key, bundle.study
    entries: list[tuple[Any, pdf.TimelineEntry]] = []
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    entries.append(
        (
            s.study_datetime or epoch,
            pdf.TimelineEntry(
                _when(s.study_datetime, bundle), f"study acquired ({s.modality} {s.body_part})"
            ),
        )
    )
    for o in bundle.ai_outputs:
        v = o.model_version
        inputs = ", ".join(sorted(map(str, o.inputs))) if isinstance(o.inputs, dict) else "stored inputs"
        artifact = f", artifacts sha256 {v.artifact_sha256[:16]}" if v.artifact_sha256 else ""
        entries.append(
            (
                o.generated_at,
                pdf.TimelineEntry(
                    _when(o.generated_at, bundle),
                    f"AI {o.kind} generated by model {v.name} {v.version}{artifact} "
                    f"from inputs: {d.text(inputs, key)}",
                ),
            )
        )
    for r in bundle.reports:
        entries.append(
            (
                r.signed_at,
                pdf.TimelineEntry(
                    _when(r.signed_at, bundle),
                    f"report {r.status} signed by {d.person(r.radiologist.get_username())}",
                ),
            )
        )
    for c in bundle.comparisons:
        entries.append(
            (
                c.created_at,
                pdf.TimelineEntry(
                    _when(c.created_at, bundle),
                    f"engine compared AI output with signed report: RADPEER suggested {c.radpeer_suggested}, "
                    f"{c.significant_count} significant and {c.minor_count} minor differences",
                ),
            )
        )
        for x in c.discrepancies.all():
            entries.append(
                (
                    c.created_at,
                    pdf.TimelineEntry(
                        "",
                        f"{x.significance} {x.category} ({d.text(x.finding, key)}): "
                        f'AI "{d.text(x.candidate_text, key)}" vs signed "{d.text(x.reference_text, key)}"',
                        highlight=True,
                    ),
                )
            )
        for review in c.reviews.all():
            entries.append(
                (
                    review.submitted_at,
                    pdf.TimelineEntry(
                        _when(review.submitted_at, bundle),
                        f"QA review by {d.person(review.reviewer.get_username())}: RADPEER {review.radpeer}",
                    ),
                )
            )
        for feedback in c.feedback.all():
            acknowledged = _when(feedback.acknowledged_at, bundle) if feedback.acknowledged_at else "not yet"
            entries.append(
                (
                    feedback.created_at,
                    pdf.TimelineEntry(
                        _when(feedback.created_at, bundle),
                        f"feedback sent to {d.person(feedback.radiologist.get_username())}; "
                        f"acknowledged {acknowledged}",
                    ),
                )
            )
    for result in bundle.reinference:
        version = result.run.model_version
        entries.append(
            (
                result.created_at,
                pdf.TimelineEntry(
                    _when(result.created_at, bundle),
                    f"re-inference by {version.name} {version.version}: {result.status}, RADPEER suggested "
                    f"{result.radpeer_suggested or '-'} (original {result.original_radpeer or '-'})",
                ),
            )
        )
    entries.sort(key=lambda item: item[0])
    return pdf.StudyTimeline(
        d.accession(s.accession_number), d.text(s.description, key), [e for _, e in entries]
    )


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
