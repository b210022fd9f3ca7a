"""DICOM files as they reach the record: image headers become studies, Structured Reports become reports.

Structured Reports (Basic Text, Enhanced, Comprehensive, Comprehensive 3D, and the TID 1500
measurement reports AI vendors send) carry a content tree. Its text is rendered in document order:
a named CONTAINER becomes a heading line (``FINDINGS:``), TEXT its value, CODE ``Name: meaning``, NUM
``Name: value unit``, DATE/TIME/PNAME/UIDREF ``Name: value``; observation and acquisition context,
images, coordinates and references are left out. What the SR becomes:

* **an AI output** when its author is a device: an observation-context ``Observer Type`` (121005) of
  ``Device`` (121007), or any ``Algorithm Name`` (111001, TID 4019 in TID 1500 measurement groups).
  The model is the algorithm name (else the device observer's model name, name, or the file's
  ManufacturerModelName / Manufacturer), its version the ``Algorithm Version`` (111003) else
  SoftwareVersions; device and algorithm identification are kept in the output's ``inputs`` as
  provenance. Its generation time is ContentDate + ContentTime.
* **a signed report** when it is ``VERIFIED`` by a person: the first VerifyingObserverSequence item
  gives the signer (key: its identification code's CodeValue under its CodingSchemeDesignator, else
  the observer's name under the verifying organisation) and VerificationDateTime the signing time; a
  PredecessorDocumentsSequence makes it a ``correction``.
* **nothing stored** (acknowledged) when it is an unverified report by a person: a draft.

Without PatientID the SR still names its study by StudyInstanceUID; the study must then exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from portal.records.ingest.dicom import (
    DEFAULT_MAX_BYTES,
    Source,
    datetime_value,
    dicom_datetime,
    person_name,
    read_file,
    study_payload,
    text_value,
)
from portal.records.ingest.payloads import (
    MALFORMED,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_REPORT_CHARS,
    MISSING_FIELD,
    TOO_LARGE,
    AdapterError,
    AIOutputPayload,
    ClinicianPayload,
    SignedReportPayload,
    StudyPayload,
    split_sections,
)

__all__ = ["DicomResult", "read_dicom", "sr_text"]

SR_MODALITY = "SR"
MAX_DEPTH = 50
MAX_ITEMS = 20_000
_SKIPPED_RELATIONS = frozenset({"HAS OBS CONTEXT", "HAS ACQ CONTEXT"})
_DEVICE_CODES = {
    "121012": "uid",
    "121013": "name",
    "121014": "manufacturer",
    "121015": "model",
    "121016": "serial",
}
_ALGORITHM_CODES = {"111001": "name", "111003": "version", "111002": "parameters"}


@dataclass(frozen=True)
class DicomResult:
    """What one DICOM file brings: its study (None for an SR without PatientID) and maybe a report."""

    study_instance_uid: str
    sop_instance_uid: str
    study: StudyPayload | None
    report: SignedReportPayload | AIOutputPayload | None = None
    ignored: str = ""


def read_dicom(source: Source, *, max_bytes: int = DEFAULT_MAX_BYTES) -> DicomResult:
    """Read one DICOM file: the study of any object, and the report of a Structured Report."""
    return read_file(source, max_bytes=max_bytes, convert=_result)


def _result(ds: Dataset) -> DicomResult:
    is_sr = text_value(ds, "Modality", 16).upper() == SR_MODALITY and "ContentSequence" in ds
    study: StudyPayload | None
    try:
        study = study_payload(ds)
    except AdapterError as exc:
        # An SR may reference a study already stored by its UID; an image must describe its patient.
        if not (is_sr and exc.code == MISSING_FIELD and "PatientID" in exc.location):
            raise
        study = None
    uid = text_value(ds, "StudyInstanceUID", MAX_ID_CHARS)
    sop_uid = text_value(ds, "SOPInstanceUID", MAX_ID_CHARS)
    if not is_sr:
        return DicomResult(uid, sop_uid, study)
    accession = study.accession_number if study else text_value(ds, "AccessionNumber", MAX_ID_CHARS)
    text = sr_text(ds)
    context = _Context()
    _collect_context(ds.ContentSequence, context, 0)
    if context.is_device:
        return DicomResult(uid, sop_uid, study, _ai_output(ds, context, accession, uid, text))
    if text_value(ds, "VerificationFlag", 16).upper() == "VERIFIED" and ds.get("VerifyingObserverSequence"):
        return DicomResult(uid, sop_uid, study, _signed_report(ds, accession, uid, text))
    return DicomResult(uid, sop_uid, study, ignored="unverified report by a person: a draft, not stored")


# --- the text tree -------------------------------------------------------------------------------------
def sr_text(ds: Dataset) -> str:
    """The SR content tree as report text (see the module docstring); ``missing_field`` when empty."""
    lines: list[str] = []
    _render(ds.get("ContentSequence") or [], lines, 0, [0])
    text = "\n".join(line for line in lines if line.strip()).strip()
    if not text:
        raise AdapterError(MISSING_FIELD, "the Structured Report has no text", "(0040,A730) ContentSequence")
    if len(text) > MAX_REPORT_CHARS:
        raise AdapterError(TOO_LARGE, f"report text longer than {MAX_REPORT_CHARS} characters")
    return text


def _concept(item: Dataset, keyword: str = "ConceptNameCodeSequence") -> tuple[str, str]:
    codes = item.get(keyword) or []
    if not codes:
        return "", ""
    code = codes[0]
    return str(code.get("CodeValue", "") or ""), " ".join(str(code.get("CodeMeaning", "") or "").split())


def _clean(value: Any) -> str:
    return "".join(ch for ch in str(value) if ch.isprintable() or ch in "\n\t").strip()


def _value(item: Dataset, value_type: str) -> str:
    if value_type == "TEXT":
        return _clean(item.get("TextValue", ""))
    if value_type == "CODE":
        return _concept(item, "ConceptCodeSequence")[1]
    if value_type == "NUM":
        measured = (item.get("MeasuredValueSequence") or [None])[0]
        if measured is None:
            return ""
        unit = _concept(measured, "MeasurementUnitsCodeSequence")[1]
        return f"{_clean(measured.get('NumericValue', ''))} {unit}".strip()
    keyword = {"DATE": "Date", "TIME": "Time", "DATETIME": "DateTime", "PNAME": "PersonName", "UIDREF": "UID"}
    return _clean(item.get(keyword[value_type], "")) if value_type in keyword else ""


def _render(items: Any, lines: list[str], depth: int, count: list[int]) -> None:
    if depth > MAX_DEPTH:
        raise AdapterError(MALFORMED, "Structured Report content is nested too deeply")
    for item in items:
        count[0] += 1
        if count[0] > MAX_ITEMS:
            raise AdapterError(TOO_LARGE, f"Structured Report has more than {MAX_ITEMS} content items")
        if str(item.get("RelationshipType", "")).upper() in _SKIPPED_RELATIONS:
            continue
        value_type = str(item.get("ValueType", "")).upper()
        name = _concept(item)[1]
        if value_type == "CONTAINER":
            if name:
                lines.append(f"{name.upper()}:")
        else:
            value = _value(item, value_type)
            if value:
                generic = value_type == "TEXT" or not name
                lines.append(value if generic else f"{name}: {value}")
        _render(item.get("ContentSequence") or [], lines, depth + 1, count)


# --- who wrote it --------------------------------------------------------------------------------------
@dataclass
class _Context:
    is_device: bool = False
    device: dict = field(default_factory=dict)
    algorithm: dict = field(default_factory=dict)


def _collect_context(items: Any, context: _Context, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise AdapterError(MALFORMED, "Structured Report content is nested too deeply")
    for item in items:
        code, _ = _concept(item)
        value_type = str(item.get("ValueType", "")).upper()
        if code == "121005" and _concept(item, "ConceptCodeSequence")[0] == "121007":
            context.is_device = True
        elif code in _DEVICE_CODES:
            context.device[_DEVICE_CODES[code]] = _value(item, value_type)[:MAX_NAME_CHARS]
        elif code in _ALGORITHM_CODES:
            context.algorithm[_ALGORITHM_CODES[code]] = _value(item, value_type)[:MAX_NAME_CHARS]
            context.is_device = context.is_device or code == "111001"
        _collect_context(item.get("ContentSequence") or [], context, depth + 1)


def _ai_output(ds: Dataset, context: _Context, accession: str, uid: str, text: str) -> AIOutputPayload:
    device, algorithm = context.device, context.algorithm
    name = (
        algorithm.get("name")
        or device.get("model")
        or device.get("name")
        or text_value(ds, "ManufacturerModelName", MAX_NAME_CHARS)
        or text_value(ds, "Manufacturer", MAX_NAME_CHARS)
    )
    version = algorithm.get("version") or text_value(ds, "SoftwareVersions", MAX_ID_CHARS)
    if not name:
        raise AdapterError(
            MISSING_FIELD, "the AI device or algorithm is not named", "(0008,0070) Manufacturer"
        )
    if not version:
        raise AdapterError(
            MISSING_FIELD, "the algorithm version is required (111003 or SoftwareVersions)", "(0018,1020)"
        )
    generated_at = dicom_datetime(
        text_value(ds, "ContentDate", 16),
        text_value(ds, "ContentTime", 32),
        text_value(ds, "TimezoneOffsetFromUTC", 16),
    )
    if generated_at is None:
        raise AdapterError(
            MISSING_FIELD, "ContentDate and ContentTime are required", "(0008,0023) ContentDate"
        )
    provenance = {
        "source": "dicom_sr",
        "sop_class_uid": text_value(ds, "SOPClassUID", MAX_ID_CHARS),
        "sop_instance_uid": text_value(ds, "SOPInstanceUID", MAX_ID_CHARS),
        "manufacturer": text_value(ds, "Manufacturer", MAX_NAME_CHARS),
        "device": device,
        "algorithm": algorithm,
    }
    return AIOutputPayload(
        accession_number=accession,
        study_instance_uid=uid,
        kind="report_draft",
        model_name=name[:MAX_NAME_CHARS],
        model_version=version[:MAX_ID_CHARS],
        inputs=provenance,
        generation_settings={},
        text=text,
        prompt_tokens=None,
        completion_tokens=None,
        latency_ms=None,
        generated_at=generated_at,
    )


def _signer(observer: Dataset) -> ClinicianPayload:
    family, given = person_name(observer, "VerifyingObserverName")
    codes = observer.get("VerifyingObserverIdentificationCodeSequence") or []
    code = codes[0] if codes else None
    identifier = _clean(code.get("CodeValue", "")) if code is not None else ""
    authority = _clean(code.get("CodingSchemeDesignator", "")) if code is not None else ""
    if not identifier:
        # No code: the name under the verifying organisation is the best key the file offers.
        identifier = ", ".join(part for part in (family, given) if part)
        authority = text_value(observer, "VerifyingOrganization", 64) or "DICOM"
    if not identifier:
        raise AdapterError(MISSING_FIELD, "the verifying observer is not identified", "(0040,A073)")
    return ClinicianPayload(
        authority=authority[:200] or "DICOM",
        identifier=identifier[:MAX_ID_CHARS],
        family_name=family,
        given_name=given,
    )


def _signed_report(ds: Dataset, accession: str, uid: str, text: str) -> SignedReportPayload:
    observer = ds.VerifyingObserverSequence[0]
    signed_at = datetime_value(observer, "VerificationDateTime")
    if signed_at is None:
        raise AdapterError(
            MISSING_FIELD, "VerificationDateTime is required", "(0040,A030) VerificationDateTime"
        )
    return SignedReportPayload(
        accession_number=accession,
        study_instance_uid=uid,
        radiologist_username="",
        sections=split_sections(text),
        text=text,
        signed_at=signed_at,
        status="correction" if ds.get("PredecessorDocumentsSequence") else "final",
        amends_report_id=None,
        signer=_signer(observer),
    )
