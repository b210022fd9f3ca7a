"""``fhir/bundle.json``: a FHIR R4 ``collection`` Bundle of DiagnosticReport, Provenance and AuditEvent.

Streamed entry by entry (the Bundle is never held whole); each resource is validated with the R4B
models of ``fhir.resources`` (wire-compatible with R4 for these resources) before it is written.
AI outputs are ``preliminary`` DiagnosticReports carrying the model in the same extensions the FHIR
ingestion adapter reads (``portal.records.ingest.fhir``); signed reports are ``final`` / ``appended`` /
``corrected``. One Provenance per report says who (radiologist or model version) produced it, when,
and from what. De-identified packages carry no AuditEvents (actors and record ids are identifying).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.provenance import Provenance

from audit.interop import fhir_audit_event
from audit.models import LEAF_FIELDS, AuditEvent
from portal.legal.export.records import StudyBundle, iso, signer
from portal.records.ingest.fhir_ai import AI_KIND_URL, AI_MODEL_URL, REPLACES_URL

_LOINC_IMAGING = {"system": "http://loinc.org", "code": "18748-4", "display": "Diagnostic imaging study"}
_ACSN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]}
_REPORT_STATUS = {"final": "final", "addendum": "appended", "correction": "corrected"}
_PROVENANCE_AGENT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def _attachment(text: str) -> dict[str, Any]:
    return {"contentType": "text/plain; charset=utf-8", "data": base64.b64encode(text.encode()).decode()}


def _base(b: StudyBundle, resource_id: str, status: str) -> dict[str, Any]:
    d, key, s = b.deid, b.patient_key, b.study
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": resource_id,
        "status": status,
        "code": {"coding": [_LOINC_IMAGING], "text": d.text(s.description, key) or "Imaging study"},
        "subject": {"identifier": {"value": d.patient(key, s.patient.mrn)}},
    }
    if s.accession_number:  # a study known only by its StudyInstanceUID has none yet
        resource["identifier"] = [{"type": _ACSN, "value": d.accession(s.accession_number)}]
    if s.study_datetime is not None:
        resource["effectiveDateTime"] = iso(d.datetime(s.study_datetime, key))
    return resource


def _pseudonym(b: StudyBundle) -> str:
    """The study's name in a de-identified package's resource ids: its accession number's pseudonym,
    or its StudyInstanceUID's while it has no accession number."""
    return b.deid.accession(b.study.accession_number or b.study.study_instance_uid or "")


def study_resources(b: StudyBundle) -> Iterable[dict[str, Any]]:
    """The DiagnosticReports and Provenances of one study, validated."""
    d, key = b.deid, b.patient_key
    for n, o in enumerate(b.ai_outputs, 1):
        rid = f"ai-{o.pk}" if not d.deidentified else f"ai-{_pseudonym(b)}-{n}"
        report = _base(b, rid, "preliminary")
        version = o.model_version
        report["issued"] = iso(d.datetime(o.generated_at, key))
        report["extension"] = [
            {"url": AI_MODEL_URL, "valueString": f"{version.name}|{version.version}"},
            {"url": AI_KIND_URL, "valueCode": o.kind},
        ]
        report["presentedForm"] = [_attachment(d.text(o.text, key))]
        DiagnosticReport(**report)
        yield report
        provenance = {
            "resourceType": "Provenance",
            "id": f"prov-{rid}",
            "target": [{"reference": f"DiagnosticReport/{rid}"}],
            "recorded": report["issued"],
            "activity": {"text": f"AI {o.kind} generated ({o.origin})"},
            "agent": [
                {
                    "type": {"coding": [{"system": _PROVENANCE_AGENT, "code": "assembler"}]},
                    "who": {"display": f"{version.name} {version.version}"},
                }
            ],
            "entity": [
                {
                    "role": "source",
                    "what": {
                        "identifier": {
                            "system": "urn:concordance:model-artifact-sha256",
                            "value": version.artifact_sha256 or f"{version.name}|{version.version}",
                        },
                        "display": json.dumps(d.json(o.inputs, key), sort_keys=True, ensure_ascii=False)[
                            :4000
                        ],
                    },
                }
            ],
        }
        Provenance(**provenance)
        yield provenance
    for n, r in enumerate(b.reports, 1):
        rid = f"report-{r.pk}" if not d.deidentified else f"report-{_pseudonym(b)}-{n}"
        report = _base(b, rid, _REPORT_STATUS.get(r.status, "final"))
        report["issued"] = iso(d.datetime(r.signed_at, key))
        report["resultsInterpreter"] = [{"display": d.person(signer(r))}]
        report["presentedForm"] = [_attachment(d.text(r.text, key))]
        impression = (r.sections or {}).get("impression")
        if isinstance(impression, str) and impression:
            report["conclusion"] = d.text(impression, key)
        if r.amends_id is not None and not d.deidentified:
            report["extension"] = [
                {
                    "url": REPLACES_URL,
                    "valueReference": {"reference": f"DiagnosticReport/report-{r.amends_id}"},
                }
            ]
        DiagnosticReport(**report)
        yield report
        provenance = {
            "resourceType": "Provenance",
            "id": f"prov-{rid}",
            "target": [{"reference": f"DiagnosticReport/{rid}"}],
            "recorded": report["issued"],
            "activity": {"text": f"report signed ({r.status})"},
            "agent": [
                {
                    "type": {"coding": [{"system": _PROVENANCE_AGENT, "code": "author"}]},
                    "who": {"display": d.person(signer(r))},
                }
            ],
        }
        Provenance(**provenance)
        yield provenance


class BundleStream:
    """Writes ``{"resourceType": "Bundle", ..., "entry": [ ... ]}`` one entry at a time."""

    def __init__(self, out: Any, timestamp: str) -> None:
        Bundle(resourceType="Bundle", type="collection", timestamp=timestamp)  # the envelope is valid
        self._out = out
        self._first = True
        out.write(
            b'{"resourceType": "Bundle", "type": "collection", "timestamp": '
            + json.dumps(timestamp).encode()
            + b', "entry": [\n'
        )

    def add(self, resource: dict[str, Any]) -> None:
        """Append one (already validated) resource as an entry."""
        entry = {
            "fullUrl": f"urn:concordance:{resource['resourceType']}:{resource['id']}",
            "resource": resource,
        }
        self._out.write((b"" if self._first else b",\n") + json.dumps(entry, ensure_ascii=False).encode())
        self._first = False

    def close(self) -> None:
        """End the entry list and the Bundle."""
        self._out.write(b"\n]}\n")


def audit_resources(rows: Iterable[tuple]) -> Iterable[dict[str, Any]]:
    """FHIR AuditEvents (validated by ``audit.interop``) of events given as LEAF_FIELDS + leaf_hash rows."""
    for row in rows:
        event = AuditEvent(**dict(zip((*LEAF_FIELDS, "leaf_hash"), row, strict=True)))
        yield fhir_audit_event(event)
