"""HL7 v2.x ORU^R01 radiology results: parse into neutral payloads, and build the ACK reply.

Wire conventions accepted here (what the sending RIS / AI engine must do):

* ``MSH`` first; MSH-9 ``ORU^R01`` (a third component such as ``ORU_R01`` is ignored); MSH-10 the
  control id; MSH-12 a 2.x version. One order (one ``OBR``) per message; batches are refused.
* ``PID-3`` first repetition, first component = MRN; ``PID-5`` ``Family^Given``; ``PID-7`` birth
  date; ``PID-8`` sex (``A`` -> ``O``, anything unknown -> ``U``).
* ``OBR-3`` filler order number = accession number (fallback ``OBR-2`` placer order number);
  ``OBR-4`` second component (text; else the first) = study description, from which modality,
  body part and specialty are inferred (``OBR-24`` is used for modality when it is a DICOM code);
  ``OBR-7`` observation time = study time; ``OBR-16`` ordering provider = referring physician;
  ``OBR-5`` or ``OBR-27.6`` priority (``S``/``STAT`` -> stat, ``A``/``ASAP``/``U``/``URGENT`` ->
  urgent, else routine); ``OBR-22`` results status change time = signing time (fallback
  ``OBR-7``); ``OBR-25`` result status; ``OBR-32`` principal result interpreter, first
  (sub)component lower-cased = radiologist username (fallback: ``OBX-16`` of the first text OBX).
* Study Instance UID: ``ZDS-1`` (first component), else an ``OBX`` of type ``RP`` or ``ST``
  whose ``OBX-3`` names "Study Instance UID" (or the DICOM code ``113014``). That OBX is not
  report text.
* Report text: ``OBX-5`` of every ``TX``, ``FT`` and ``ST`` OBX (or OBX with an empty value
  type), in order, joined with ``\\n``; HL7 escape sequences (``\\.br\\``, ``\\F\\``, ``\\S\\``,
  ``\\T\\``, ``\\R\\``, ``\\E\\``, ``\\Xhh..\\``, ``\\.sp\\``) are decoded. Text that a sender split
  over raw line breaks (continuation lines that do not start with a segment id) is re-joined.
* ``OBR-25`` (fallback ``OBX-11`` of the first text OBX): ``F`` -> signed report ``final``;
  ``C`` -> ``correction``, or ``addendum`` when the text starts with "ADDENDUM"; ``P`` with an AI
  marker -> AI output. Known but unsupported statuses (``P`` without AI marker, ``X``, ``I``, ...)
  raise ``unsupported``; unknown ones ``invalid_value``. ``amends_report_id`` is always None: the
  service layer finds the amended report by accession number.
* AI marker: a ``ZAI`` segment, or ``MSH-3`` / ``OBX-3`` containing the word ``AI`` or ``DRAFT``.
  The model is described by the Z-segment ``ZAI|model_name|model_version|kind|generated_at|
  prompt_tokens|completion_tokens|latency_ms`` (kind defaults to ``report_draft``, generated_at
  to OBR-22/OBR-7); without ZAI, ``OBX-16`` of the first text OBX gives ``name^version``.
* Timestamps are ``YYYYMMDD[HH[MM[SS[.S...]]]][+/-ZZZZ]``; missing seconds are fine. Timestamps
  without an offset are read in ``default_tz`` (UTC unless the caller says otherwise, since the
  HL7 default "local time of the sender" is unknowable here); results are returned in UTC.
* Bytes are decoded as UTF-8, falling back to ISO-8859-1 (MSH-18 ``8859/1`` or anything
  undecodable); CR, LF and CRLF are all accepted as segment terminators and MLLP framing bytes
  are stripped. Messages over 1 MiB, 2000 segments or 50,000 delimiters are refused
  (``too_large``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from portal.records.ingest.hl7_signer import hl7_signer
from portal.records.ingest.hl7_text import (
    Segment,
    decode_message,
    parse_date,
    parse_dtm,
    segment_lines,
    short,
    split_segments,
)
from portal.records.ingest.payloads import (
    AI_OUTPUT_KINDS,
    INVALID_VALUE,
    MALFORMED,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
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

__all__ = ["Hl7OruResult", "parse_oru"]

_KNOWN_RESULT_STATUSES = frozenset("OISARPCFXYZDN")


@dataclass(frozen=True)
class Hl7OruResult:
    """A parsed ORU^R01: the MSH facts needed for the ACK, the study and the report it carries."""

    control_id: str  # MSH-10
    sending_application: str  # MSH-3, first component
    sending_facility: str  # MSH-4, first component
    receiving_application: str  # MSH-5, first component
    receiving_facility: str  # MSH-6, first component
    version: str  # MSH-12, e.g. "2.5.1"
    message_type: str  # MSH-9 as "ORU^R01"
    processing_id: str  # MSH-11 ("P", "T", "D"), echoed in the ACK
    message_datetime: datetime | None  # MSH-7, UTC
    study: StudyPayload
    report: SignedReportPayload | AIOutputPayload | None  # None: acknowledged but not stored
    ignored: str = ""  # why a message was acknowledged without storing anything


# --- parsing ------------------------------------------------------------------------------------
_SEX = {"M": "M", "F": "F", "O": "O", "A": "O", "U": "U", "N": "U"}
_PRIORITY = {
    "S": "stat",
    "STAT": "stat",
    "A": "urgent",
    "ASAP": "urgent",
    "U": "urgent",
    "URGENT": "urgent",
    "R": "routine",
    "ROUTINE": "routine",
}
_DICOM_MODALITIES = frozenset({"CT", "MR", "CR", "DX", "US", "MG", "NM", "PT", "XA", "RF", "OT"})
_TEXT_TYPES = frozenset({"TX", "FT", "ST", ""})
_UID_NAMES = ("STUDY INSTANCE UID", "STUDYINSTANCEUID", "113014")
_AI_WORD = re.compile(r"(?<![A-Z0-9])(AI|DRAFT)(?![A-Z0-9])")


def parse_oru(message: str | bytes, *, default_tz: tzinfo = UTC) -> Hl7OruResult:
    """Parse an HL7 v2.x ORU^R01 radiology result into a :class:`Hl7OruResult`.

    See the module docstring for the field conventions. Raises :class:`AdapterError` (and only
    that) with an HL7 location such as ``"OBR-3"`` for anything it cannot accept.
    """
    segments = _segments(message)
    msh = segments["MSH"][0]
    header = _header(msh, default_tz)
    pid = _only(segments, "PID")
    obr = _only(segments, "OBR")
    obx_list = segments.get("OBX", [])
    accession = short(obr.component(3), "OBR-3", max_len=MAX_ID_CHARS) or short(
        obr.component(2), "OBR-2", max_len=MAX_ID_CHARS
    )
    if not accession:
        raise AdapterError(MISSING_FIELD, "filler order number (accession) is required", "OBR-3")
    uid = _study_uid(segments, obx_list)
    text_obx = [o for o in obx_list if _is_text_obx(o)]
    report_text = _report_text(text_obx)
    study = _study(obr, _patient(pid), accession, uid, default_tz)
    status, status_location = _result_status(obr, text_obx)
    zai = segments.get("ZAI", [None])[0]
    is_ai = zai is not None or bool(_AI_WORD.search(header["sending_application"].upper()))
    is_ai = is_ai or any(_AI_WORD.search(o.raw(3).upper()) for o in obx_list)
    observed_at = study.study_datetime
    status_changed_at = parse_dtm(obr.component(22), "OBR-22", default_tz)

    report: SignedReportPayload | AIOutputPayload | None = None
    ignored = ""
    if status in ("F", "C"):
        signer = hl7_signer(segments, obr, text_obx, default_authority=_default_authority(header))
        report = _signed_report(status, accession, uid, report_text, signer, status_changed_at or observed_at)
    elif status == "P" and is_ai:
        generated_fallback = status_changed_at or observed_at
        report = _ai_output(zai, text_obx, accession, uid, report_text, generated_fallback, default_tz)
    elif status == "P":
        # A resident's or radiologist's preliminary read: acknowledged (so the RIS queue moves on)
        # and logged, but only the final signature is evidence.
        ignored = "preliminary result acknowledged, not stored: only final and corrected results are kept"
    else:
        raise AdapterError(UNSUPPORTED, "result status is not accepted (only F, C and AI P)", status_location)
    return Hl7OruResult(**header, study=study, report=report, ignored=ignored)


def _segments(message: str | bytes) -> dict[str, list[Segment]]:
    """Decode, split and parse the message; segments by id, the n-th repeat named ``"OBX[n]"``."""
    lines, seps = segment_lines(decode_message(message))
    segments: dict[str, list[Segment]] = {}
    for raw_segment in split_segments(lines, seps):
        seg_id = raw_segment[0]
        found = segments.setdefault(seg_id, [])
        name = seg_id if not found else f"{seg_id}[{len(found) + 1}]"
        found.append(Segment(raw_segment, seps, name))
    if len(segments["MSH"]) > 1:
        raise AdapterError(UNSUPPORTED, "batches of several messages are not supported", "MSH")
    return segments


def _header(msh: Segment, default_tz: tzinfo) -> dict:
    """The MSH facts of an ORU^R01 (what the ACK echoes), validated."""
    msg_code = msh.component(9, 1).upper()
    trigger = msh.component(9, 2).upper()
    if not msg_code:
        raise AdapterError(MISSING_FIELD, "message type is required", "MSH-9")
    if (msg_code, trigger) != ("ORU", "R01"):
        raise AdapterError(UNSUPPORTED, "only ORU^R01 messages are accepted", "MSH-9")
    control_id = short(msh.component(10), "MSH-10", max_len=199)  # ST(199) since v2.7
    if not control_id:
        raise AdapterError(MISSING_FIELD, "message control id is required", "MSH-10")
    version = short(msh.component(12), "MSH-12", max_len=20)
    if not version:
        raise AdapterError(MISSING_FIELD, "version id is required", "MSH-12")
    if not re.fullmatch(r"2(\.\d+){1,2}", version):
        raise AdapterError(UNSUPPORTED, "only HL7 version 2.x is supported", "MSH-12")
    return {
        "control_id": control_id,
        "sending_application": short(msh.component(3), "MSH-3"),
        "sending_facility": short(msh.component(4), "MSH-4"),
        "receiving_application": short(msh.component(5), "MSH-5"),
        "receiving_facility": short(msh.component(6), "MSH-6"),
        "version": version,
        "message_type": "ORU^R01",
        "processing_id": short(msh.component(11), "MSH-11", max_len=3),
        "message_datetime": parse_dtm(msh.component(7), "MSH-7", default_tz),
    }


def _default_authority(header: dict) -> str:
    """Whose provider numbers an identifier without an assigning authority is: the sending facility."""
    return header["sending_facility"] or header["sending_application"] or "HL7"


def _study(
    obr: Segment, patient: PatientPayload, accession: str, uid: str | None, default_tz: tzinfo
) -> StudyPayload:
    description = short(obr.component(4, 2) or obr.component(4, 1), "OBR-4")
    service_section = obr.component(24).upper()
    modality = service_section if service_section in _DICOM_MODALITIES else infer_modality(description)
    body_part = infer_body_part(description)
    return StudyPayload(
        study_instance_uid=uid,
        accession_number=accession,
        patient=patient,
        modality=modality,
        body_part=body_part,
        specialty=infer_specialty(body_part, modality, description),
        study_datetime=parse_dtm(obr.component(7), "OBR-7", default_tz),
        description=description,
        priority=_priority(obr),
        referring_physician=_person(obr, 16),
        dicom_header={},
    )


def _result_status(obr: Segment, text_obx: list[Segment]) -> tuple[str, str]:
    status = obr.component(25).upper()
    location = "OBR-25"
    if not status and text_obx:
        status, location = text_obx[0].component(11).upper(), text_obx[0].loc(11)
    if not status:
        raise AdapterError(MISSING_FIELD, "result status is required", "OBR-25")
    if status not in _KNOWN_RESULT_STATUSES or len(status) != 1:
        raise AdapterError(INVALID_VALUE, "unknown result status", location)
    return status, location


def _signed_report(
    status: str,
    accession: str,
    uid: str | None,
    report_text: str,
    signer: ClinicianPayload,
    signed_at: datetime | None,
) -> SignedReportPayload:
    if signed_at is None:
        raise AdapterError(MISSING_FIELD, "results status change time is required", "OBR-22")
    kind = "final"
    if status == "C":
        kind = "addendum" if report_text.lstrip().upper().startswith("ADDENDUM") else "correction"
    return SignedReportPayload(
        accession_number=accession,
        study_instance_uid=uid,
        radiologist_username="",
        sections=split_sections(report_text),
        text=report_text,
        signed_at=signed_at,
        status=kind,
        amends_report_id=None,
        signer=signer,
    )


def _only(segments: dict[str, list[Segment]], name: str) -> Segment:
    found = segments.get(name)
    if not found:
        raise AdapterError(MISSING_FIELD, f"{name} segment is required", name)
    if len(found) > 1:
        raise AdapterError(UNSUPPORTED, f"only one {name} segment per message is supported", found[1].name)
    return found[0]


def _patient(pid: Segment) -> PatientPayload:
    mrn = short(pid.component(3, 1), "PID-3", max_len=MAX_ID_CHARS)
    if not mrn:
        raise AdapterError(MISSING_FIELD, "patient identifier (MRN) is required", "PID-3")
    return PatientPayload(
        mrn=mrn,
        family_name=short(pid.component(5, 1), "PID-5", max_len=MAX_NAME_CHARS),
        given_name=short(pid.component(5, 2), "PID-5", max_len=MAX_NAME_CHARS),
        birth_date=parse_date(pid.component(7), "PID-7"),
        sex=_SEX.get(pid.component(8).upper()[:1], "U"),
    )


def _priority(obr: Segment) -> str:
    for value in (obr.component(5), obr.component(27, 6)):
        mapped = _PRIORITY.get(value.upper())
        if mapped:
            return mapped
    return "routine"


def _person(segment: Segment, n: int) -> str:
    """An XCN field (``id^family^given``) as ``"Family, Given"``, falling back to the id."""
    family = short(segment.component(n, 2), segment.loc(n))
    given = short(segment.component(n, 3), segment.loc(n))
    if family or given:
        return ", ".join(part for part in (family, given) if part)
    return short(segment.component(n, 1), segment.loc(n))


def _is_uid_obx(obx: Segment) -> bool:
    if obx.component(2).upper() not in ("RP", "ST"):
        return False
    observation = obx.raw(3).upper()
    return any(name in observation for name in _UID_NAMES)


def _is_text_obx(obx: Segment) -> bool:
    return obx.component(2).upper() in _TEXT_TYPES and not _is_uid_obx(obx)


def _study_uid(segments: dict[str, list[Segment]], obx_list: list[Segment]) -> str | None:
    candidates: list[tuple[str, str]] = []
    if "ZDS" in segments:
        candidates.append((segments["ZDS"][0].component(1), "ZDS-1"))
    candidates.extend((o.component(5), o.loc(5)) for o in obx_list if _is_uid_obx(o))
    for value, location in candidates:
        if value:
            uid = short(value, location, max_len=MAX_ID_CHARS)
            if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", uid):
                raise AdapterError(MALFORMED, "Study Instance UID is not a dotted numeric UID", location)
            return uid
    return None


def _report_text(text_obx: list[Segment]) -> str:
    lines = [clean_text(o.text(5), max_len=MAX_REPORT_CHARS, location=o.loc(5)) for o in text_obx]
    text = "\n".join(lines).strip("\n")
    if len(text) > MAX_REPORT_CHARS:
        raise AdapterError(TOO_LARGE, f"report text longer than {MAX_REPORT_CHARS} characters", "OBX-5")
    if not text.strip():
        raise AdapterError(MISSING_FIELD, "no report text (OBX-5 of a TX/FT/ST OBX)", "OBX-5")
    return text


def _optional_number(segment: Segment, n: int, cast: type[int] | type[float]) -> int | float | None:
    value = segment.component(n)
    if not value:
        return None
    try:
        number = cast(value)
    except ValueError:
        raise AdapterError(MALFORMED, "not a number", segment.loc(n)) from None
    if number < 0 or number != number or number in (float("inf"), float("-inf")):
        raise AdapterError(MALFORMED, "must be a non-negative finite number", segment.loc(n))
    return number


def _ai_output(
    zai: Segment | None,
    text_obx: list[Segment],
    accession: str,
    uid: str | None,
    text: str,
    fallback_time: datetime | None,
    default_tz: tzinfo,
) -> AIOutputPayload:
    if zai is not None:
        name = short(zai.component(1), zai.loc(1), max_len=MAX_NAME_CHARS)
        version = short(zai.component(2), zai.loc(2), max_len=MAX_ID_CHARS)
        kind = zai.component(3).lower() or "report_draft"
        if kind not in AI_OUTPUT_KINDS:
            raise AdapterError(INVALID_VALUE, "unknown AI output kind", zai.loc(3))
        generated_at = parse_dtm(zai.component(4), zai.loc(4), default_tz) or fallback_time
        prompt_tokens = _optional_number(zai, 5, int)
        completion_tokens = _optional_number(zai, 6, int)
        latency = _optional_number(zai, 7, float)
        name_loc, version_loc = zai.loc(1), zai.loc(2)
    else:
        first = text_obx[0]
        name = short(first.component(16, 1), first.loc(16), max_len=MAX_NAME_CHARS)
        version = short(first.component(16, 2), first.loc(16), max_len=MAX_ID_CHARS)
        kind, generated_at = "report_draft", fallback_time
        prompt_tokens = completion_tokens = latency = None
        name_loc = version_loc = first.loc(16)
    if not name:
        raise AdapterError(MISSING_FIELD, "AI model name is required (ZAI-1 or OBX-16.1)", name_loc)
    if not version:
        raise AdapterError(MISSING_FIELD, "AI model version is required (ZAI-2 or OBX-16.2)", version_loc)
    return AIOutputPayload(
        accession_number=accession,
        study_instance_uid=uid,
        kind=kind,
        model_name=name,
        model_version=version,
        inputs={},
        generation_settings={},
        text=text,
        prompt_tokens=None if prompt_tokens is None else int(prompt_tokens),
        completion_tokens=None if completion_tokens is None else int(completion_tokens),
        latency_ms=None if latency is None else float(latency),
        generated_at=generated_at,
    )
