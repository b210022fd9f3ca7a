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

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.operationoutcome import OperationOutcome

from portal.records.payloads import (
    AI_OUTPUT_KINDS,
    CONFLICT,
    DUPLICATE,
    INVALID_VALUE,
    MALFORMED,
    MAX_DESCRIPTION_CHARS,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_REPORT_CHARS,
    MISSING_FIELD,
    NOT_FOUND,
    TOO_LARGE,
    UNSUPPORTED,
    AdapterError,
    AIOutputPayload,
    PatientPayload,
    SignedReportPayload,
    StudyPayload,
    clean_text,
    infer_body_part,
    infer_modality,
    infer_specialty,
    split_sections,
)

__all__ = [
    "AI_COMPLETION_TOKENS_URL",
    "AI_INPUTS_URL",
    "AI_KIND_URL",
    "AI_LATENCY_URL",
    "AI_MODEL_URL",
    "AI_PROMPT_TOKENS_URL",
    "AI_SETTINGS_URL",
    "ISSUE_CODES",
    "MAX_BODY_BYTES",
    "REPLACES_URL",
    "FhirReportResult",
    "operation_outcome",
    "parse_diagnostic_report",
]

MAX_BODY_BYTES = 1_048_576

_EXT = "http://concordance.local/fhir/StructureDefinition/"
AI_MODEL_URL = _EXT + "ai-model"
AI_KIND_URL = _EXT + "ai-kind"
AI_INPUTS_URL = _EXT + "ai-inputs"
AI_SETTINGS_URL = _EXT + "ai-generation-settings"
AI_PROMPT_TOKENS_URL = _EXT + "ai-prompt-tokens"
AI_COMPLETION_TOKENS_URL = _EXT + "ai-completion-tokens"
AI_LATENCY_URL = _EXT + "ai-latency-ms"
REPLACES_URL = _EXT + "replaces"

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
_GENDER = {"male": "M", "female": "F", "other": "O", "unknown": "U"}
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_ROOT = "DiagnosticReport"

# AdapterError.code -> FHIR R4 IssueType code (http://hl7.org/fhir/issue-type).
ISSUE_CODES: dict[str, str] = {
    MALFORMED: "invalid",
    MISSING_FIELD: "required",
    INVALID_VALUE: "value",
    UNSUPPORTED: "not-supported",
    TOO_LARGE: "too-long",
    CONFLICT: "conflict",
    DUPLICATE: "duplicate",
    NOT_FOUND: "not-found",
    # Codes of the record services' own errors (``portal.core.errors``) end up here too.
    "invalid": "invalid",
    "unavailable": "transient",
}


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
def parse_diagnostic_report(body: bytes | str | dict, *, max_bytes: int = MAX_BODY_BYTES) -> FhirReportResult:
    """Validate an R4 DiagnosticReport (JSON bytes, text or already decoded) and translate it.

    Raises :class:`AdapterError` (and only that) with a FHIRPath-like ``location`` such as
    ``"DiagnosticReport.status"`` for anything it cannot accept; see the module docstring.
    """
    data = _load_json(body, max_bytes)
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
    report = _validate(data)
    try:
        return _translate(report, status)
    except AdapterError:
        raise
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError):
        # A model shape this module did not anticipate must still surface as a client error.
        raise AdapterError(MALFORMED, "DiagnosticReport could not be interpreted", _ROOT) from None


def _load_json(body: bytes | str | dict, max_bytes: int) -> Any:
    if isinstance(body, dict):
        return body
    if isinstance(body, bytes | bytearray | memoryview):
        raw = bytes(body)
        if len(raw) > max_bytes:
            raise AdapterError(TOO_LARGE, f"body larger than {max_bytes} bytes", "")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise AdapterError(MALFORMED, "body is not UTF-8", "") from None
    elif isinstance(body, str):
        if len(body) > max_bytes:
            raise AdapterError(TOO_LARGE, f"body larger than {max_bytes} bytes", "")
        text = body
    else:
        raise AdapterError(MALFORMED, "body must be JSON text, bytes or an object", "")

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        # FHIR JSON forbids NaN and Infinity; Python's json would accept them silently.
        return json.loads(text, parse_constant=reject_constant)
    except (ValueError, RecursionError):
        raise AdapterError(MALFORMED, "body is not valid JSON", "") from None


def _validate(data: dict) -> DiagnosticReport:
    try:
        return DiagnosticReport.model_validate(data)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        errors = exc.errors() if hasattr(exc, "errors") else []
        first = errors[0] if errors else {}
        location = _pydantic_location(first.get("loc", ()))
        if first.get("type") == "missing":
            raise AdapterError(MISSING_FIELD, "required element is missing", location) from None
        # pydantic's message describes the rule, not the offending input, so it carries no PHI.
        reason = str(first.get("msg", "invalid element"))[:200]
        raise AdapterError(MALFORMED, f"invalid element: {reason}", location) from None
    except (TypeError, RecursionError, AttributeError):
        raise AdapterError(MALFORMED, "not a valid DiagnosticReport", _ROOT) from None


def _pydantic_location(loc: tuple | list) -> str:
    path = _ROOT
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("function-after", "function-before", "function-wrap"):
            path += f".{part}"
    return path


# --- translation --------------------------------------------------------------------------------
def _translate(report: DiagnosticReport, status: str) -> FhirReportResult:
    contained = _contained_by_id(report)
    accession = _accession(report, contained)
    uid = _study_uid(report, contained)
    patient = _patient(report, contained)
    text, sections = _text(report)
    effective = _effective(report)
    issued = _aware(report.issued)
    report_id = _short(report.id, f"{_ROOT}.id", MAX_ID_CHARS) or None

    payload: AIOutputPayload | SignedReportPayload
    if status == "preliminary":
        payload = _ai_output(report, accession, uid, text, issued)
    else:
        payload = _signed_report(report, status, accession, uid, text, sections, issued)

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


def _short(value: Any, location: str, max_len: int = MAX_DESCRIPTION_CHARS) -> str:
    if value is None:
        return ""
    return clean_text(str(value), max_len=max_len, location=location).strip()


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
                return _short(identifier.value, f"{_ROOT}.{element}", MAX_ID_CHARS)
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


def _patient(report: DiagnosticReport, contained: dict[str, Any]) -> PatientPayload:
    location = f"{_ROOT}.subject"
    subject = report.subject
    if subject is None:
        raise AdapterError(MISSING_FIELD, "subject (the patient) is required", location)
    ref = subject.reference or ""
    declared_type = subject.type or (ref.split("/", 1)[0] if "/" in ref else "")
    if declared_type and declared_type != "Patient":
        raise AdapterError(UNSUPPORTED, "subject must be a Patient", location)
    resource = _resolve(subject, contained, "Patient")
    if ref.startswith("#") and resource is None:
        raise AdapterError(MALFORMED, "subject names a contained Patient that is not there", location)
    if resource is not None:
        identifiers = resource.identifier or []
        typed = [
            i for i in identifiers if i.type and any((c.code or "") == "MR" for c in i.type.coding or [])
        ]
        chosen = next((i for i in typed + identifiers if i.value), None)
        mrn = _short(chosen.value if chosen else "", f"{location}.identifier", MAX_ID_CHARS)
        name = (resource.name or [None])[0]
        family = _short(name.family if name else "", f"{location}.name", MAX_NAME_CHARS)
        given = _short((name.given or [""])[0] if name else "", f"{location}.name", MAX_NAME_CHARS)
        birth = resource.birthDate if isinstance(resource.birthDate, date) else None
        sex = _GENDER.get(resource.gender or "unknown", "U")
    else:
        mrn = _short(
            subject.identifier.value if subject.identifier else "", f"{location}.identifier", MAX_ID_CHARS
        )
        family = given = ""
        birth, sex = None, "U"
    if not mrn:
        raise AdapterError(
            MISSING_FIELD, "subject must carry an identifier (MRN) or reference a contained Patient", location
        )
    return PatientPayload(mrn=mrn, family_name=family, given_name=given, birth_date=birth, sex=sex)


def _aware(value: Any) -> datetime | None:
    """FHIR dateTime/instant -> aware UTC datetime; a bare date -> midnight UTC; partial -> None."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=UTC)  # FHIR requires an offset with a time; be lenient
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0, 0), tzinfo=UTC)
    return None


def _effective(report: DiagnosticReport) -> datetime | None:
    if report.effectiveDateTime is not None:
        return _aware(report.effectiveDateTime)
    if report.effectivePeriod is not None:
        return _aware(report.effectivePeriod.start)
    return None


def _description(report: DiagnosticReport) -> str:
    code = report.code
    text = code.text or next((c.display for c in code.coding or [] if c.display), "") or ""
    return _short(text, f"{_ROOT}.code")


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


def _extensions(report: DiagnosticReport, url: str) -> list[Any]:
    return [ext for ext in report.extension or [] if ext.url == url]


def _extension_value(report: DiagnosticReport, url: str, *kinds: str) -> tuple[Any, str] | None:
    """The first value of extension ``url`` among ``kinds`` (e.g. ``valueString``), with a location."""
    for ext in _extensions(report, url):
        for kind in kinds:
            value = getattr(ext, kind, None)
            if value is not None:
                return value, f"{_ROOT}.extension('{url.rsplit('/', 1)[-1]}').{kind}"
    return None


def _json_object(report: DiagnosticReport, url: str) -> dict:
    found = _extension_value(report, url, "valueString")
    if found is None:
        return {}
    value, location = found
    try:
        obj = json.loads(value, parse_constant=lambda name: math.nan)
    except (ValueError, RecursionError):
        raise AdapterError(MALFORMED, "extension must hold a JSON object", location) from None
    if not isinstance(obj, dict):
        raise AdapterError(MALFORMED, "extension must hold a JSON object", location)
    if "NaN" in value or "Infinity" in value:
        _reject_non_finite(obj, location)
    return obj


def _reject_non_finite(obj: Any, location: str) -> None:
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise AdapterError(MALFORMED, "JSON numbers must be finite", location)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _count(report: DiagnosticReport, url: str) -> int | None:
    found = _extension_value(report, url, "valueInteger", "valueUnsignedInt", "valuePositiveInt")
    if found is None:
        return None
    value, location = found
    if int(value) < 0:
        raise AdapterError(MALFORMED, "count must not be negative", location)
    return int(value)


def _model(report: DiagnosticReport) -> tuple[str, str]:
    found = _extension_value(report, AI_MODEL_URL, "valueString")
    if found is not None:
        value, location = found
        name, sep, version = str(value).partition("|")
        if not sep or not name.strip() or not version.strip():
            raise AdapterError(MALFORMED, "ai-model must be 'name|version'", location)
        return _short(name, location, MAX_NAME_CHARS), _short(version, location, MAX_ID_CHARS)
    for index, performer in enumerate(report.performer or []):
        is_device = (performer.type or "") == "Device" or (performer.reference or "").startswith("Device/")
        display = (performer.display or "").strip()
        if is_device and display:
            location = f"{_ROOT}.performer[{index}].display"
            name, _, version = display.rpartition(" ")
            if not name.strip() or not version:
                raise AdapterError(MALFORMED, "Device display must be 'name version'", location)
            return _short(name, location, MAX_NAME_CHARS), _short(version, location, MAX_ID_CHARS)
    raise AdapterError(
        MISSING_FIELD,
        "preliminary reports are accepted only from an AI model: add the ai-model extension "
        "or a Device performer",
        f"{_ROOT}.extension",
    )


def _ai_output(
    report: DiagnosticReport, accession: str, uid: str | None, text: str, issued: datetime | None
) -> AIOutputPayload:
    name, version = _model(report)
    kind = "report_draft"
    found = _extension_value(report, AI_KIND_URL, "valueCode", "valueString")
    if found is not None:
        kind = str(found[0])
        if kind not in AI_OUTPUT_KINDS:
            raise AdapterError(INVALID_VALUE, "unknown AI output kind", found[1])
    latency: float | None = None
    found = _extension_value(report, AI_LATENCY_URL, "valueDecimal", "valueInteger")
    if found is not None:
        latency = float(found[0])
        if not math.isfinite(latency) or latency < 0:
            raise AdapterError(MALFORMED, "latency must be a non-negative number", found[1])
    return AIOutputPayload(
        accession_number=accession,
        study_instance_uid=uid,
        kind=kind,
        model_name=name,
        model_version=version,
        inputs=_json_object(report, AI_INPUTS_URL),
        generation_settings=_json_object(report, AI_SETTINGS_URL),
        text=text,
        prompt_tokens=_count(report, AI_PROMPT_TOKENS_URL),
        completion_tokens=_count(report, AI_COMPLETION_TOKENS_URL),
        latency_ms=latency,
        generated_at=issued,
    )


def _radiologist(report: DiagnosticReport) -> str:
    location = f"{_ROOT}.resultsInterpreter"
    interpreters = report.resultsInterpreter or []
    if interpreters:
        first = interpreters[0]
        value = (first.identifier.value if first.identifier else None) or first.display or ""
        username = _short(value, f"{location}[0]", MAX_NAME_CHARS).lower()
        if username:
            return username
    raise AdapterError(MISSING_FIELD, "resultsInterpreter (identifier or display) is required", location)


def _amends(report: DiagnosticReport) -> str | None:
    found = _extension_value(report, REPLACES_URL, "valueReference", "valueString", "valueId")
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
    return _short(target, location, MAX_ID_CHARS)


def _signed_report(
    report: DiagnosticReport,
    status: str,
    accession: str,
    uid: str | None,
    text: str,
    sections: dict[str, str],
    issued: datetime | None,
) -> SignedReportPayload:
    username = _radiologist(report)
    if issued is None:
        raise AdapterError(MISSING_FIELD, "issued (the signing time) is required", f"{_ROOT}.issued")
    kind = _SIGNED_STATUS[status]
    return SignedReportPayload(
        accession_number=accession,
        study_instance_uid=uid,
        radiologist_username=username,
        sections=sections,
        text=text,
        signed_at=issued,
        status=kind,
        # A first signature amends nothing, whatever extension came along with it.
        amends_report_id=None if kind == "final" else _amends(report),
    )


# --- errors out ---------------------------------------------------------------------------------
_SEVERITIES = frozenset({"fatal", "error", "warning", "information"})


def operation_outcome(errors: list[AdapterError] | AdapterError, *, severity: str = "error") -> dict:
    """Render adapter (or service) errors as a FHIR R4 OperationOutcome, as a JSON-ready dict.

    Each error becomes one ``issue``: ``code`` from :data:`ISSUE_CODES` (``processing`` for codes
    it does not know; ``structure`` for a body that is not JSON at all), ``diagnostics`` the error
    message, ``expression`` the location when there is one. An empty list gives a single
    informational issue, because an OperationOutcome must have at least one. The result is
    validated with ``fhir.resources.R4B`` before it is returned.
    """
    if severity not in _SEVERITIES:
        raise ValueError(f"severity must be one of {sorted(_SEVERITIES)}")
    items = [errors] if isinstance(errors, AdapterError) else list(errors)
    issues: list[dict[str, Any]] = []
    for error in items:
        code = ISSUE_CODES.get(error.code, "processing")
        if error.code == MALFORMED and not error.location:
            code = "structure"
        issue: dict[str, Any] = {
            "severity": severity,
            "code": code,
            "diagnostics": error.message or error.code,
        }
        if error.location:
            issue["expression"] = [error.location]
        issues.append(issue)
    if not issues:
        issues.append({"severity": "information", "code": "informational", "diagnostics": "No errors."})
    outcome = {"resourceType": "OperationOutcome", "issue": issues}
    OperationOutcome.model_validate(outcome)
    return outcome
