"""FHIR R4 DiagnosticReport in, neutral payloads out; errors out as an R4 OperationOutcome.

The resource is validated structurally with ``fhir.resources.R4B`` (R4 and R4B share
DiagnosticReport); value sets such as ``status`` are checked here because the library does not.

Conventions (what a sender must put where):

* **status**: ``preliminary`` -> AI output (the model must be identified, below); ``final`` ->
  signed report ``final``; ``amended`` / ``corrected`` -> ``correction``; ``appended`` ->
  ``addendum``. ``registered``, ``partial``, ``cancelled``, ``entered-in-error`` and ``unknown``
  are refused as ``unsupported``; anything else as ``invalid_value``.
* **accession number**: the first ``identifier`` whose ``type`` has the v2-0203 code ``ACSN``
  (or whose ``system`` contains "accession"); else the same rule on the identifiers of
  ``basedOn`` references (``Reference.identifier`` or a contained ServiceRequest), then on
  ``imagingStudy`` references.
* **Study Instance UID** (optional): an ``imagingStudy`` reference identifier (or contained
  ImagingStudy identifier) with system ``urn:dicom:uid``; a ``urn:oid:`` prefix is removed.
* **patient**: ``subject`` is either a reference to a contained Patient (``"#p1"``: MRN from its
  identifier typed ``MR``, else its first identifier; name, birthDate and gender are read) or a
  reference carrying ``identifier.value`` = MRN (names are then empty).
* **times**: ``effectiveDateTime`` (or ``effectivePeriod.start``) = study time (a date alone
  becomes midnight UTC; year or year-month precision is ignored); ``issued`` = signing time
  (required for signed reports) and generation time of AI output.
* **text**: ``presentedForm`` attachments with inline base64 ``data`` and ``contentType``
  ``text/plain`` (charset, if given, ``utf-8``/``us-ascii``) are the report text, joined with a
  blank line; ``conclusion`` is the impression. With only a conclusion, the text is the conclusion.
* **AI model**: extension :data:`AI_MODEL_URL` with ``valueString`` ``"name|version"``; or else a
  ``performer`` that is a Device reference (``reference`` ``"Device/..."`` or ``type`` ``Device``)
  whose ``display`` is ``"name version"`` (split at the last space). Optional extensions:
  :data:`AI_KIND_URL` (``valueCode``, default ``report_draft``), :data:`AI_INPUTS_URL` and
  :data:`AI_SETTINGS_URL` (``valueString`` holding a JSON object), :data:`AI_PROMPT_TOKENS_URL`
  and :data:`AI_COMPLETION_TOKENS_URL` (``valueInteger``/``valueUnsignedInt``),
  :data:`AI_LATENCY_URL` (``valueDecimal``, milliseconds).
* **radiologist**: ``resultsInterpreter[0].identifier.value``, else its ``display``; lower-cased.
* **amendments**: extension :data:`REPLACES_URL` whose ``valueReference`` is
  ``"DiagnosticReport/<id>"`` (or carries ``identifier.value``), or ``valueString``/``valueId``;
  without it ``amends_report_id`` is None and the service layer matches by accession number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from portal.records.ingest.fhir_ai import REPLACES_URL, ai_output, extension_value
from portal.records.ingest.fhir_common import MAX_BODY_BYTES, aware, load_json, short, validate
from portal.records.ingest.fhir_people import Resolver, interpreter, subject
from portal.records.ingest.payloads import (
    INVALID_VALUE,
    MALFORMED,
    MAX_ID_CHARS,
    MAX_REPORT_CHARS,
    MISSING_FIELD,
    TOO_LARGE,
    UNSUPPORTED,
    AdapterError,
    AIOutputPayload,
    ClinicianPayload,
    PatientPayload,
    SignedReportPayload,
    StudyPayload,
    clean_text,
    infer_body_part,
    infer_modality,
    infer_specialty,
    split_sections,
)

__all__ = ["FhirReportResult", "parse_diagnostic_report"]

_ALL_STATUSES = frozenset(
    {
        "registered",
        "partial",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "appended",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)
_SIGNED_STATUS = {
    "final": "final",
    "amended": "correction",
    "corrected": "correction",
    "appended": "addendum",
}
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_ROOT = "DiagnosticReport"


@dataclass(frozen=True)
class FhirReportResult:
    """A parsed DiagnosticReport.

    ``payload`` is the AI output (preliminary) or signed report (final and amendments);
    ``patient`` the subject; ``study`` the study it describes, built from the accession number,
    subject, ``code`` (description, modality, body part) and effective time, so that the service
    layer can create the study when the report arrives before any other message about it.
    ``report_id`` is the resource ``id`` (the sender's id, what later amendments will name) and
    ``fhir_status`` the status as sent.
    """

    payload: AIOutputPayload | SignedReportPayload
    patient: PatientPayload
    study: StudyPayload
    report_id: str | None
    fhir_status: str


# --- entry point --------------------------------------------------------------------------------
def parse_diagnostic_report(
    body: bytes | str | dict, *, max_bytes: int = MAX_BODY_BYTES, resolve: Resolver | None = None
) -> FhirReportResult:
    """Validate an R4 DiagnosticReport (JSON bytes, text or already decoded) and translate it.

    ``resolve`` finds the Patient or Practitioner a literal reference names (the entries of the
    Bundle the report came in, then resources posted earlier); without it such references are refused.

    Raises :class:`AdapterError` (and only that) with a FHIRPath-like ``location`` such as
    ``"DiagnosticReport.status"`` for anything it cannot accept; see the module docstring.
    """
    data = load_json(body, max_bytes)
    if not isinstance(data, dict):
        raise AdapterError(MALFORMED, "body must be a JSON object", "")
    resource_type = data.get("resourceType")
    if resource_type != _ROOT:
        if not resource_type:
            raise AdapterError(MISSING_FIELD, "resourceType is required", "resourceType")
        raise AdapterError(UNSUPPORTED, "only DiagnosticReport resources are accepted", "resourceType")
    # Check the status before the structure: a report in a status we refuse is refused for that
    # reason, whatever else is wrong with it.
    status = data.get("status")
    if not isinstance(status, str) or not status:
        raise AdapterError(MISSING_FIELD, "status is required", f"{_ROOT}.status")
    if status not in _ALL_STATUSES:
        raise AdapterError(INVALID_VALUE, "status is not a DiagnosticReport status code", f"{_ROOT}.status")
    if status != "preliminary" and status not in _SIGNED_STATUS:
        raise AdapterError(
            UNSUPPORTED,
            "only preliminary, final, amended, corrected and appended reports are accepted",
            f"{_ROOT}.status",
        )
    report = validate(DiagnosticReport, data, _ROOT)
    try:
        return _translate(report, status, resolve)
    except AdapterError:
        raise
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError):
        # A model shape this module did not anticipate must still surface as a client error.
        raise AdapterError(MALFORMED, "DiagnosticReport could not be interpreted", _ROOT) from None


# --- translation --------------------------------------------------------------------------------
def _translate(report: DiagnosticReport, status: str, resolve: Resolver | None) -> FhirReportResult:
    contained = _contained_by_id(report)
    accession = _accession(report, contained)
    uid = _study_uid(report, contained)
    patient = subject(report, contained, resolve)
    text, sections = _text(report)
    effective = _effective(report)
    issued = aware(report.issued)
    report_id = short(report.id, f"{_ROOT}.id", MAX_ID_CHARS) or None

    payload: AIOutputPayload | SignedReportPayload
    if status == "preliminary":
        payload = ai_output(report, accession, uid, text, issued)
    else:
        signer = interpreter(report, contained, resolve)
        payload = _signed_report(report, status, accession, uid, text, sections, issued, signer)

    description = _description(report)
    modality = infer_modality(description)
    body_part = infer_body_part(description)
    study = StudyPayload(
        study_instance_uid=uid,
        accession_number=accession,
        patient=patient,
        modality=modality,
        body_part=body_part,
        specialty=infer_specialty(body_part, modality, description),
        study_datetime=effective,
        description=description,
        priority="routine",  # DiagnosticReport has no priority; the order (ServiceRequest) does
        referring_physician="",
        dicom_header={},
    )
    return FhirReportResult(
        payload=payload, patient=patient, study=study, report_id=report_id, fhir_status=status
    )


def _contained_by_id(report: DiagnosticReport) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for resource in report.contained or []:
        resource_id = getattr(resource, "id", None)
        if resource_id:
            found[str(resource_id)] = resource
    return found


def _resolve(reference: Any, contained: dict[str, Any], resource_type: str) -> Any | None:
    """A contained resource of ``resource_type`` named by a ``"#id"`` reference, else None."""
    ref = getattr(reference, "reference", None) or ""
    if ref.startswith("#"):
        resource = contained.get(ref[1:])
        if resource is not None and resource.get_resource_type() == resource_type:
            return resource
    return None


def _is_accession(identifier: Any) -> bool:
    system = (identifier.system or "").lower()
    if "accession" in system:
        return True
    id_type = identifier.type
    if id_type is None:
        return False
    if (id_type.text or "").strip().upper() in ("ACSN", "ACCESSION", "ACCESSION NUMBER"):
        return True
    return any((coding.code or "").upper() == "ACSN" for coding in id_type.coding or [])


def _identifiers_of(references: list[Any] | None, contained: dict[str, Any], resource_type: str) -> list[Any]:
    found: list[Any] = []
    for reference in references or []:
        if reference.identifier is not None:
            found.append(reference.identifier)
        target = _resolve(reference, contained, resource_type)
        if target is not None:
            found.extend(target.identifier or [])
    return found


def _accession(report: DiagnosticReport, contained: dict[str, Any]) -> str:
    candidates = [
        ("identifier", report.identifier or []),
        ("basedOn", _identifiers_of(report.basedOn, contained, "ServiceRequest")),
        ("imagingStudy", _identifiers_of(report.imagingStudy, contained, "ImagingStudy")),
    ]
    for element, identifiers in candidates:
        for identifier in identifiers:
            if _is_accession(identifier) and identifier.value:
                return short(identifier.value, f"{_ROOT}.{element}", MAX_ID_CHARS)
    raise AdapterError(
        MISSING_FIELD,
        "accession number is required: an identifier typed ACSN (or with an accession system)",
        f"{_ROOT}.identifier",
    )


def _study_uid(report: DiagnosticReport, contained: dict[str, Any]) -> str | None:
    for identifier in _identifiers_of(report.imagingStudy, contained, "ImagingStudy"):
        if (identifier.system or "") == "urn:dicom:uid" and identifier.value:
            value = str(identifier.value).strip().removeprefix("urn:oid:")
            if len(value) > MAX_ID_CHARS or not _UID.fullmatch(value):
                raise AdapterError(
                    MALFORMED, "Study Instance UID is not a DICOM UID", f"{_ROOT}.imagingStudy"
                )
            return value
    return None


def _effective(report: DiagnosticReport) -> datetime | None:
    if report.effectiveDateTime is not None:
        return aware(report.effectiveDateTime)
    if report.effectivePeriod is not None:
        return aware(report.effectivePeriod.start)
    return None


def _description(report: DiagnosticReport) -> str:
    code = report.code
    text = code.text or next((c.display for c in code.coding or [] if c.display), "") or ""
    return short(text, f"{_ROOT}.code")


def _text(report: DiagnosticReport) -> tuple[str, dict[str, str]]:
    parts: list[str] = []
    for index, attachment in enumerate(report.presentedForm or []):
        location = f"{_ROOT}.presentedForm[{index}]"
        parts.append(_attachment_text(attachment, location))
    conclusion = clean_text(report.conclusion or "", max_len=MAX_REPORT_CHARS, location=f"{_ROOT}.conclusion")
    conclusion = conclusion.strip()
    text = "\n\n".join(part.strip("\n") for part in parts if part.strip())
    if not text:
        text = conclusion
    if not text.strip():
        raise AdapterError(
            MISSING_FIELD, "report text is required (presentedForm or conclusion)", f"{_ROOT}.conclusion"
        )
    if len(text) > MAX_REPORT_CHARS:
        raise AdapterError(
            TOO_LARGE, f"report text longer than {MAX_REPORT_CHARS} characters", f"{_ROOT}.presentedForm"
        )
    sections = split_sections(text)
    if conclusion and text == conclusion and list(sections) == ["findings"]:
        # A bare conclusion is by definition the impression, not findings.
        sections = {"impression": conclusion}
    elif conclusion and "impression" not in sections:
        sections["impression"] = conclusion
    return text, sections


def _attachment_text(attachment: Any, location: str) -> str:
    content_type = (attachment.contentType or "").strip()
    if not content_type:
        raise AdapterError(MISSING_FIELD, "contentType is required", f"{location}.contentType")
    mime, _, params = content_type.partition(";")
    if mime.strip().lower() != "text/plain":
        raise AdapterError(
            UNSUPPORTED, "only text/plain report forms are accepted", f"{location}.contentType"
        )
    charset = ""
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if charset not in ("", "utf-8", "utf8", "us-ascii"):
        raise AdapterError(UNSUPPORTED, "only UTF-8 report forms are accepted", f"{location}.contentType")
    data = attachment.data
    if data is None:
        raise AdapterError(UNSUPPORTED, "report forms must be sent inline as base64 data", f"{location}.data")
    if isinstance(data, str):  # defensive: the model normally hands over decoded bytes
        raise AdapterError(MALFORMED, "data is not base64", f"{location}.data")
    try:
        decoded = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise AdapterError(MALFORMED, "data is not UTF-8 text", f"{location}.data") from None
    return clean_text(decoded, max_len=MAX_REPORT_CHARS, location=f"{location}.data")


def _amends(report: DiagnosticReport) -> str | None:
    found = extension_value(report, REPLACES_URL, "valueReference", "valueString", "valueId")
    if found is None:
        return None
    value, location = found
    if isinstance(value, str):
        target = value
    else:
        target = value.reference or (value.identifier.value if value.identifier else "") or ""
    target = target.strip().removeprefix(f"{_ROOT}/")
    if not target:
        raise AdapterError(MISSING_FIELD, "replaces must name the amended report", location)
    return short(target, location, MAX_ID_CHARS)


def _signed_report(
    report: DiagnosticReport,
    status: str,
    accession: str,
    uid: str | None,
    text: str,
    sections: dict[str, str],
    issued: datetime | None,
    signer: ClinicianPayload,
) -> SignedReportPayload:
    if issued is None:
        raise AdapterError(MISSING_FIELD, "issued (the signing time) is required", f"{_ROOT}.issued")
    kind = _SIGNED_STATUS[status]
    return SignedReportPayload(
        accession_number=accession,
        study_instance_uid=uid,
        radiologist_username="",
        signer=signer,
        sections=sections,
        text=text,
        signed_at=issued,
        status=kind,
        # A first signature amends nothing, whatever extension came along with it.
        amends_report_id=None if kind == "final" else _amends(report),
    )
