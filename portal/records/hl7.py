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
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

import hl7

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
    "ERR_CODES",
    "MAX_DELIMITERS",
    "MAX_MESSAGE_BYTES",
    "MAX_SEGMENTS",
    "Hl7OruResult",
    "build_ack",
    "escape",
    "parse_oru",
    "unescape",
]

MAX_MESSAGE_BYTES = 1_048_576
# python-hl7 builds a Python object per field, component and subcomponent: a 1 MiB message made
# of nothing but delimiters takes ~10 s to parse. Real radiology results have tens of segments
# and a few thousand delimiters, so these caps cost nothing and keep one message under ~0.5 s.
MAX_SEGMENTS = 2000
MAX_DELIMITERS = 50_000

# AdapterError.code -> HL7 table 0357 message error condition code and its text (ERR-3).
ERR_CODES: dict[str, tuple[str, str]] = {
    MISSING_FIELD: ("101", "Required field missing"),
    MALFORMED: ("102", "Data type error"),
    INVALID_VALUE: ("103", "Table value not found"),
    NOT_FOUND: ("204", "Unknown key identifier"),
    DUPLICATE: ("205", "Duplicate key identifier"),
    CONFLICT: ("207", "Application internal error"),
    TOO_LARGE: ("207", "Application internal error"),
    # Codes of the record services' own errors (``portal.core.errors``) end up here too.
    "invalid": ("207", "Application internal error"),
}
_UNSUPPORTED_BY_FIELD = {
    "MSH-9": ("200", "Unsupported message type"),
    "MSH-12": ("203", "Unsupported version id"),
}
_INTERNAL_ERROR = ("207", "Application internal error")

_KNOWN_RESULT_STATUSES = frozenset("OISARPCFXYZDN")
_DEFAULT_ENCODING_CHARS = "^~\\&"


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
    report: SignedReportPayload | AIOutputPayload


# --- escaping -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


_STANDARD = _Separators()


def escape(text: str, seps: _Separators = _STANDARD) -> str:
    """Escape ``text`` for an HL7 field: delimiters become ``\\F\\`` etc., line breaks ``\\.br\\``.

    Other control characters are dropped: they cannot appear in an HL7 field and would otherwise
    let a caller inject segments into the reply.
    """
    e = seps.escape
    out: list[str] = []
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for ch in text:
        if ch == seps.escape:
            out.append(f"{e}E{e}")
        elif ch == seps.field:
            out.append(f"{e}F{e}")
        elif ch == seps.component:
            out.append(f"{e}S{e}")
        elif ch == seps.subcomponent:
            out.append(f"{e}T{e}")
        elif ch == seps.repetition:
            out.append(f"{e}R{e}")
        elif ch == "\n":
            out.append(f"{e}.br{e}")
        elif ch == "\t":
            out.append(ch)
        elif ord(ch) < 0x20 or ch == "\x7f":
            continue
        else:
            out.append(ch)
    return "".join(out)


def unescape(text: str, seps: _Separators = _STANDARD) -> str:
    """Decode HL7 escape sequences in a text field; unknown or unterminated ones are kept as is.

    Formatting commands become plain text equivalents (``\\.br\\`` and ``\\.sp\\`` line breaks,
    ``\\.in``/``\\.ti``/``\\.ce``/``\\.fi``/``\\.nf``/``\\.sk`` and highlighting ``\\H\\``/``\\N\\``
    dropped), ``\\Xhh..\\`` is decoded as UTF-8 (falling back to ISO-8859-1) and character set
    switches ``\\C..\\``/``\\M..\\`` are dropped.
    """
    e = seps.escape
    if not e or e not in text:
        return text
    simple = {
        "F": seps.field,
        "S": seps.component,
        "T": seps.subcomponent,
        "R": seps.repetition,
        "E": seps.escape,
        "H": "",
        "N": "",
        ".br": "\n",
        ".fi": "",
        ".nf": "",
    }
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != e:
            out.append(ch)
            i += 1
            continue
        end = text.find(e, i + 1)
        if end == -1:  # a lone escape character: tolerate, keep it
            out.append(text[i:])
            break
        body = text[i + 1 : end]
        decoded = _decode_escape(body, simple)
        if decoded is None:
            out.append(ch)  # not an escape sequence: keep the backslash, re-scan after it
            i += 1
            continue
        out.append(decoded)
        i = end + 1
    return "".join(out)


_HEX = re.compile(r"X((?:[0-9A-Fa-f]{2})+)")
_SPACING = re.compile(r"\.(sp|in|ti|sk|ce)([+-]?\d*)")


def _decode_escape(body: str, simple: dict[str, str]) -> str | None:
    if body in simple:
        return simple[body]
    if match := _HEX.fullmatch(body):
        raw = bytes.fromhex(match.group(1))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    if match := _SPACING.fullmatch(body):
        command, arg = match.groups()
        if command == "sp":
            count = int(arg) if arg.lstrip("+-").isdigit() else 1
            return "\n" * max(1, min(count, 10))
        return " " if command == "sk" else ""
    if body[:1] in ("C", "M") and re.fullmatch(r"[CM][0-9A-Fa-f]{4,6}", body):
        return ""
    return None


# --- message splitting --------------------------------------------------------------------------
_MLLP_BYTES = str.maketrans("", "", "\x0b\x1c")


def _decode(message: str | bytes | bytearray | memoryview) -> str:
    if isinstance(message, str):
        if len(message) > MAX_MESSAGE_BYTES:
            raise AdapterError(TOO_LARGE, f"message larger than {MAX_MESSAGE_BYTES} bytes")
        return message
    if not isinstance(message, bytes | bytearray | memoryview):
        raise AdapterError(MALFORMED, "message must be text or bytes")
    raw = bytes(message)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise AdapterError(TOO_LARGE, f"message larger than {MAX_MESSAGE_BYTES} bytes")
    # MSH-18 may declare ISO-8859-1, but UTF-8 is tried first because it fails loudly on Latin-1
    # input while Latin-1 accepts every byte sequence; the fallback therefore never loses data.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _segment_lines(text: str) -> tuple[list[str], _Separators]:
    """Normalise line endings and framing, validate MSH, and re-join continuation lines."""
    text = text.translate(_MLLP_BYTES).lstrip("\ufeff")
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    lines = [line for line in text.split("\r") if line.strip()]
    if not lines:
        raise AdapterError(MALFORMED, "not an HL7 message: empty", "MSH")
    first = lines[0].lstrip()
    if not first.startswith("MSH"):
        if re.match(r"^[A-Z][A-Z0-9]{2}[|]", first):
            raise AdapterError(MALFORMED, "first segment is not MSH", "MSH")
        raise AdapterError(MALFORMED, "not an HL7 message", "MSH")
    if len(first) < 8:
        raise AdapterError(MALFORMED, "MSH segment too short", "MSH-2")
    field_sep = first[3]
    enc = first[4:8]
    seps = _Separators(field_sep, enc[0], enc[1], enc[2], enc[3])
    chars = (seps.field, seps.component, seps.repetition, seps.escape, seps.subcomponent)
    if len(set(chars)) != 5 or any(c.isalnum() or c.isspace() or ord(c) < 0x20 for c in chars):
        raise AdapterError(MALFORMED, "invalid field separator or encoding characters", "MSH-2")
    lines[0] = first
    if len(lines) > MAX_SEGMENTS:
        raise AdapterError(TOO_LARGE, f"message has more than {MAX_SEGMENTS} segments")
    delimiters = sum(text.count(c) for c in chars if c != seps.escape)
    if delimiters > MAX_DELIMITERS:
        raise AdapterError(TOO_LARGE, f"message has more than {MAX_DELIMITERS} delimiters")
    segment_start = re.compile(rf"^[A-Z][A-Z0-9]{{2}}{re.escape(field_sep)}")
    joined: list[str] = []
    for line in lines:
        if segment_start.match(line) or not joined:
            joined.append(line)
        else:
            # A sender wrapped a long field (usually OBX-5 report text) over raw line breaks:
            # glue it back with a newline so the text keeps its line structure.
            joined[-1] = f"{joined[-1]}\n{line}"
    return joined, seps


class _Segment:
    """Field access on one python-hl7 segment with HL7 numbering and forgiving bounds."""

    def __init__(self, segment: hl7.Segment, seps: _Separators, name: str) -> None:
        self._segment = segment
        self._seps = seps
        self.name = name  # "OBX" or "OBX[2]" for the second OBX: used in error locations
        self.is_msh = str(segment[0]) == "MSH"

    def raw(self, n: int) -> str:
        """The field as sent (escape sequences still encoded), "" when absent."""
        # python-hl7 numbers MSH fields as HL7 does (MSH-1 is the separator itself); for every
        # other segment index n is field n as well, with index 0 the segment id.
        if n >= len(self._segment):
            return ""
        return str(self._segment[n])

    def component(self, n: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str:
        """Field ``n``, repetition ``rep``, component ``comp``, subcomponent ``sub``, unescaped."""
        value = self.raw(n)
        if not value:
            return ""
        if not (self.is_msh and n == 2):
            parts = value.split(self._seps.repetition)
            value = parts[rep - 1] if rep <= len(parts) else ""
            parts = value.split(self._seps.component)
            value = parts[comp - 1] if comp <= len(parts) else ""
            parts = value.split(self._seps.subcomponent)
            value = parts[sub - 1] if sub <= len(parts) else ""
        return unescape(value, self._seps).strip()

    def text(self, n: int) -> str:
        """Field ``n`` as free text: delimiters inside it are kept literally, then unescaped."""
        return unescape(self.raw(n), self._seps)

    def loc(self, n: int) -> str:
        return f"{self.name}-{n}"


def _short(value: str, location: str, *, max_len: int = MAX_DESCRIPTION_CHARS) -> str:
    return clean_text(value, max_len=max_len, location=location).strip()


# --- timestamps ---------------------------------------------------------------------------------
_DTM = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})"
    r"(?:(?P<h>\d{2})(?:(?P<mi>\d{2})(?:(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?)?)?)?"
    r"(?P<tz>[+-]\d{4})?$"
)


def _parse_dtm(value: str, location: str, default_tz: tzinfo) -> datetime | None:
    """Parse an HL7 DTM/TS value (first component) into an aware UTC datetime, "" -> None."""
    if not value:
        return None
    match = _DTM.match(value.strip())
    if not match:
        raise AdapterError(MALFORMED, "timestamp is not YYYYMMDD[HHMM[SS]][+/-ZZZZ]", location)
    g = match.groupdict()
    try:
        tz: tzinfo = default_tz
        if g["tz"]:
            sign = -1 if g["tz"][0] == "-" else 1
            hours, minutes = int(g["tz"][1:3]), int(g["tz"][3:5])
            if hours > 14 or minutes > 59:
                raise ValueError("offset out of range")
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        fraction = (g["f"] or "").ljust(6, "0")
        parsed = datetime(
            int(g["y"]),
            int(g["mo"]),
            int(g["d"]),
            int(g["h"] or 0),
            int(g["mi"] or 0),
            int(g["s"] or 0),
            int(fraction or 0),
            tzinfo=tz,
        )
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise AdapterError(MALFORMED, "timestamp out of range", location) from None


def _parse_date(value: str, location: str) -> date | None:
    if not value:
        return None
    match = re.match(r"^(\d{4})(\d{2})(\d{2})", value.strip())
    if not match:
        raise AdapterError(MALFORMED, "date is not YYYYMMDD", location)
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise AdapterError(MALFORMED, "date out of range", location) from None


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
    text = _decode(message)
    lines, seps = _segment_lines(text)
    try:
        parsed = hl7.parse("\r".join(lines))
    except Exception:  # python-hl7 raises assorted errors on broken input; all mean the same
        raise AdapterError(MALFORMED, "not a parseable HL7 message", "MSH") from None

    segments: dict[str, list[_Segment]] = {}
    for raw_segment in parsed:
        seg_id = str(raw_segment[0]) if len(raw_segment) else ""
        found = segments.setdefault(seg_id, [])
        name = seg_id if not found else f"{seg_id}[{len(found) + 1}]"
        found.append(_Segment(raw_segment, seps, name))

    msh = segments["MSH"][0]
    if len(segments["MSH"]) > 1:
        raise AdapterError(UNSUPPORTED, "batches of several messages are not supported", "MSH")

    msg_code = msh.component(9, 1).upper()
    trigger = msh.component(9, 2).upper()
    if not msg_code:
        raise AdapterError(MISSING_FIELD, "message type is required", "MSH-9")
    if (msg_code, trigger) != ("ORU", "R01"):
        raise AdapterError(UNSUPPORTED, "only ORU^R01 messages are accepted", "MSH-9")
    control_id = _short(msh.component(10), "MSH-10", max_len=199)  # ST(199) since v2.7
    if not control_id:
        raise AdapterError(MISSING_FIELD, "message control id is required", "MSH-10")
    version = _short(msh.component(12), "MSH-12", max_len=20)
    if not version:
        raise AdapterError(MISSING_FIELD, "version id is required", "MSH-12")
    if not re.fullmatch(r"2(\.\d+){1,2}", version):
        raise AdapterError(UNSUPPORTED, "only HL7 version 2.x is supported", "MSH-12")
    sending_application = _short(msh.component(3), "MSH-3")

    pid = _only(segments, "PID")
    obr = _only(segments, "OBR")
    obx_list = segments.get("OBX", [])

    patient = _patient(pid)
    accession = _short(obr.component(3), "OBR-3", max_len=MAX_ID_CHARS) or _short(
        obr.component(2), "OBR-2", max_len=MAX_ID_CHARS
    )
    if not accession:
        raise AdapterError(MISSING_FIELD, "filler order number (accession) is required", "OBR-3")

    description = _short(obr.component(4, 2) or obr.component(4, 1), "OBR-4")
    service_section = obr.component(24).upper()
    modality = service_section if service_section in _DICOM_MODALITIES else infer_modality(description)
    body_part = infer_body_part(description)
    observed_at = _parse_dtm(obr.component(7), "OBR-7", default_tz)
    status_changed_at = _parse_dtm(obr.component(22), "OBR-22", default_tz)

    uid = _study_uid(segments, obx_list)
    text_obx = [o for o in obx_list if _is_text_obx(o)]
    report_text = _report_text(text_obx)

    study = StudyPayload(
        study_instance_uid=uid,
        accession_number=accession,
        patient=patient,
        modality=modality,
        body_part=body_part,
        specialty=infer_specialty(body_part, modality, description),
        study_datetime=observed_at,
        description=description,
        priority=_priority(obr),
        referring_physician=_person(obr, 16),
        dicom_header={},
    )

    status = obr.component(25).upper()
    status_location = "OBR-25"
    if not status and text_obx:
        status, status_location = text_obx[0].component(11).upper(), text_obx[0].loc(11)
    if not status:
        raise AdapterError(MISSING_FIELD, "result status is required", "OBR-25")
    if status not in _KNOWN_RESULT_STATUSES or len(status) != 1:
        raise AdapterError(INVALID_VALUE, "unknown result status", status_location)

    zai = segments.get("ZAI", [None])[0]
    is_ai = zai is not None or bool(_AI_WORD.search(sending_application.upper()))
    is_ai = is_ai or any(_AI_WORD.search(o.raw(3).upper()) for o in obx_list)

    report: SignedReportPayload | AIOutputPayload
    if status in ("F", "C"):
        username = _radiologist(obr, text_obx)
        signed_at = status_changed_at or observed_at
        if signed_at is None:
            raise AdapterError(MISSING_FIELD, "results status change time is required", "OBR-22")
        kind = "final"
        if status == "C":
            kind = "addendum" if report_text.lstrip().upper().startswith("ADDENDUM") else "correction"
        report = SignedReportPayload(
            accession_number=accession,
            study_instance_uid=uid,
            radiologist_username=username,
            sections=split_sections(report_text),
            text=report_text,
            signed_at=signed_at,
            status=kind,
            amends_report_id=None,
        )
    elif status == "P" and is_ai:
        generated_fallback = status_changed_at or observed_at
        report = _ai_output(zai, text_obx, accession, uid, report_text, generated_fallback, default_tz)
    elif status == "P":
        raise AdapterError(
            UNSUPPORTED, "preliminary results are accepted only from an identified AI model", status_location
        )
    else:
        raise AdapterError(UNSUPPORTED, "result status is not accepted (only F, C and AI P)", status_location)

    return Hl7OruResult(
        control_id=control_id,
        sending_application=sending_application,
        sending_facility=_short(msh.component(4), "MSH-4"),
        receiving_application=_short(msh.component(5), "MSH-5"),
        receiving_facility=_short(msh.component(6), "MSH-6"),
        version=version,
        message_type="ORU^R01",
        processing_id=_short(msh.component(11), "MSH-11", max_len=3),
        message_datetime=_parse_dtm(msh.component(7), "MSH-7", default_tz),
        study=study,
        report=report,
    )


def _only(segments: dict[str, list[_Segment]], name: str) -> _Segment:
    found = segments.get(name)
    if not found:
        raise AdapterError(MISSING_FIELD, f"{name} segment is required", name)
    if len(found) > 1:
        raise AdapterError(UNSUPPORTED, f"only one {name} segment per message is supported", found[1].name)
    return found[0]


def _patient(pid: _Segment) -> PatientPayload:
    mrn = _short(pid.component(3, 1), "PID-3", max_len=MAX_ID_CHARS)
    if not mrn:
        raise AdapterError(MISSING_FIELD, "patient identifier (MRN) is required", "PID-3")
    return PatientPayload(
        mrn=mrn,
        family_name=_short(pid.component(5, 1), "PID-5", max_len=MAX_NAME_CHARS),
        given_name=_short(pid.component(5, 2), "PID-5", max_len=MAX_NAME_CHARS),
        birth_date=_parse_date(pid.component(7), "PID-7"),
        sex=_SEX.get(pid.component(8).upper()[:1], "U"),
    )


def _priority(obr: _Segment) -> str:
    for value in (obr.component(5), obr.component(27, 6)):
        mapped = _PRIORITY.get(value.upper())
        if mapped:
            return mapped
    return "routine"


def _person(segment: _Segment, n: int) -> str:
    """An XCN field (``id^family^given``) as ``"Family, Given"``, falling back to the id."""
    family = _short(segment.component(n, 2), segment.loc(n))
    given = _short(segment.component(n, 3), segment.loc(n))
    if family or given:
        return ", ".join(part for part in (family, given) if part)
    return _short(segment.component(n, 1), segment.loc(n))


def _radiologist(obr: _Segment, text_obx: list[_Segment]) -> str:
    # OBR-32 is NDL: its first component is a CNN whose own parts arrive as subcomponents
    # ("JSMITH&Smith&John"), so the username is the first subcomponent of the first component.
    username = _short(obr.component(32, 1, 1), "OBR-32", max_len=MAX_NAME_CHARS)
    if not username and text_obx:
        username = _short(text_obx[0].component(16, 1), text_obx[0].loc(16), max_len=MAX_NAME_CHARS)
    if not username:
        raise AdapterError(MISSING_FIELD, "principal result interpreter is required", "OBR-32")
    return username.lower()


def _is_uid_obx(obx: _Segment) -> bool:
    if obx.component(2).upper() not in ("RP", "ST"):
        return False
    observation = obx.raw(3).upper()
    return any(name in observation for name in _UID_NAMES)


def _is_text_obx(obx: _Segment) -> bool:
    return obx.component(2).upper() in _TEXT_TYPES and not _is_uid_obx(obx)


def _study_uid(segments: dict[str, list[_Segment]], obx_list: list[_Segment]) -> str | None:
    candidates: list[tuple[str, str]] = []
    if "ZDS" in segments:
        candidates.append((segments["ZDS"][0].component(1), "ZDS-1"))
    candidates.extend((o.component(5), o.loc(5)) for o in obx_list if _is_uid_obx(o))
    for value, location in candidates:
        if value:
            uid = _short(value, location, max_len=MAX_ID_CHARS)
            if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", uid):
                raise AdapterError(MALFORMED, "Study Instance UID is not a dotted numeric UID", location)
            return uid
    return None


def _report_text(text_obx: list[_Segment]) -> str:
    lines = [clean_text(o.text(5), max_len=MAX_REPORT_CHARS, location=o.loc(5)) for o in text_obx]
    text = "\n".join(lines).strip("\n")
    if len(text) > MAX_REPORT_CHARS:
        raise AdapterError(TOO_LARGE, f"report text longer than {MAX_REPORT_CHARS} characters", "OBX-5")
    if not text.strip():
        raise AdapterError(MISSING_FIELD, "no report text (OBX-5 of a TX/FT/ST OBX)", "OBX-5")
    return text


def _optional_number(segment: _Segment, n: int, cast: type[int] | type[float]) -> int | float | None:
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
    zai: _Segment | None,
    text_obx: list[_Segment],
    accession: str,
    uid: str | None,
    text: str,
    fallback_time: datetime | None,
    default_tz: tzinfo,
) -> AIOutputPayload:
    if zai is not None:
        name = _short(zai.component(1), zai.loc(1), max_len=MAX_NAME_CHARS)
        version = _short(zai.component(2), zai.loc(2), max_len=MAX_ID_CHARS)
        kind = zai.component(3).lower() or "report_draft"
        if kind not in AI_OUTPUT_KINDS:
            raise AdapterError(INVALID_VALUE, "unknown AI output kind", zai.loc(3))
        generated_at = _parse_dtm(zai.component(4), zai.loc(4), default_tz) or fallback_time
        prompt_tokens = _optional_number(zai, 5, int)
        completion_tokens = _optional_number(zai, 6, int)
        latency = _optional_number(zai, 7, float)
        name_loc, version_loc = zai.loc(1), zai.loc(2)
    else:
        first = text_obx[0]
        name = _short(first.component(16, 1), first.loc(16), max_len=MAX_NAME_CHARS)
        version = _short(first.component(16, 2), first.loc(16), max_len=MAX_ID_CHARS)
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


# --- ACK ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _AckSource:
    control_id: str = ""
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    version: str = "2.5"
    processing_id: str = "P"


def _peek_msh(raw: str | bytes | bytearray | memoryview) -> _AckSource:
    """Recover what an ACK needs from a message that may not parse at all. Never raises."""
    if isinstance(raw, bytes | bytearray | memoryview):
        text = bytes(raw[:8192]).decode("latin-1")
    else:
        text = raw[:8192]
    text = text.translate(_MLLP_BYTES).lstrip("\ufeff").lstrip()
    first = re.split(r"[\r\n]", text, maxsplit=1)[0]
    if not first.startswith("MSH") or len(first) < 8:
        return _AckSource()
    field_sep, enc = first[3], first[4:8]
    if len(set(enc + field_sep)) != 5:
        return _AckSource()
    seps = _Separators(field_sep, enc[0], enc[1], enc[2], enc[3])
    fields = first.split(field_sep)
    # After split, index k holds MSH-(k+1) because MSH-1 is the separator itself.

    def get(n: int) -> str:
        if n - 1 >= len(fields):
            return ""
        value = fields[n - 1].split(seps.repetition)[0].split(seps.component)[0]
        value = unescape(value.split(seps.subcomponent)[0], seps)
        return "".join(ch for ch in value if ch.isprintable()).strip()[:199]

    version = get(12)
    return _AckSource(
        control_id=get(10),
        sending_application=get(3),
        sending_facility=get(4),
        receiving_application=get(5),
        receiving_facility=get(6),
        version=version if re.fullmatch(r"2(\.\d+){1,2}", version) else "2.5",
        processing_id=get(11)[:3] or "P",
    )


def _err_location(location: str) -> list[str]:
    """``"OBR-3"`` -> ``["OBR", "1", "3"]``, ``"OBX[2]-5"`` -> ``["OBX", "2", "5"]``, else []."""
    match = re.match(r"^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+))?", location)
    if not match:
        return []
    segment, sequence, field_no = match.groups()
    return [segment, sequence or "1", field_no or ""]


def _err_code(error: AdapterError) -> tuple[str, str]:
    if error.code == UNSUPPORTED:
        return _UNSUPPORTED_BY_FIELD.get(error.location, ("207", "Application internal error"))
    return ERR_CODES.get(error.code, _INTERNAL_ERROR)


def build_ack(
    message_or_result_or_raw: Hl7OruResult | str | bytes | None,
    *,
    code: str,
    text: str = "",
    error: AdapterError | None = None,
) -> str:
    """Build an ``ACK^R01`` (segments joined by CR, no MLLP framing) for an incoming message.

    ``message_or_result_or_raw`` is the parsed :class:`Hl7OruResult` or the raw message as
    received (str or bytes, even one that failed to parse: its MSH is read leniently; when even
    that fails the ACK has an empty MSA-2 control id). ``code`` is ``AA`` (accepted), ``AE``
    (error) or ``AR`` (rejected). The reply's MSH swaps sender and receiver, has a fresh control
    id and the original version and processing id. With ``error`` an ``ERR`` segment is added:
    ERR-1 (v2.3 style ``segment^sequence^field^code&text``), ERR-2 location, ERR-3 the table 0357
    code (101 missing field, 102 data type, 103 table value, 200 unsupported message type, 203
    unsupported version, 204/205 unknown/duplicate key, 207 internal), ERR-4 severity ``E`` and
    ERR-8 the error message. ``text`` defaults to the error message. All text is HL7-escaped.
    """
    if code not in ("AA", "AE", "AR"):
        raise ValueError("code must be AA, AE or AR")
    if isinstance(message_or_result_or_raw, Hl7OruResult):
        r = message_or_result_or_raw
        src = _AckSource(
            r.control_id,
            r.sending_application,
            r.sending_facility,
            r.receiving_application,
            r.receiving_facility,
            r.version,
            r.processing_id or "P",
        )
    elif message_or_result_or_raw is None:
        src = _AckSource()
    else:
        src = _peek_msh(message_or_result_or_raw)

    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "+0000"
    # MSH-10 is ST(20) in v2.5: 20 hex digits of a UUID4 are unique enough and fit everywhere.
    ack_id = uuid.uuid4().hex[:20]
    if not text and error is not None:
        text = error.message
    esc = escape
    segments = [
        "|".join(
            [
                "MSH",
                _DEFAULT_ENCODING_CHARS,
                esc(src.receiving_application),
                esc(src.receiving_facility),
                esc(src.sending_application),
                esc(src.sending_facility),
                now,
                "",
                "ACK^R01^ACK",
                ack_id,
                esc(src.processing_id),
                esc(src.version),
            ]
        ),
        "|".join(["MSA", code, esc(src.control_id), esc(text[:200])]),
    ]
    if error is not None:
        err_code, err_text = _err_code(error)
        location = _err_location(error.location)
        # ERR-1 (ELD, deprecated since 2.5 but still read by v2.3 engines) and ERR-2 (ERL) carry
        # the same place; ERR-3 the coded condition; ERR-8 the human message.
        legacy = "^".join([*(location or ["", "", ""]), f"{err_code}&{esc(err_text)}&HL70357"])
        segments.append(
            "|".join(
                [
                    "ERR",
                    legacy,
                    "^".join(location).rstrip("^"),
                    f"{err_code}^{esc(err_text)}^HL70357",
                    "E",
                    "",
                    "",
                    "",
                    esc(error.message[:500]),
                ]
            )
        )
    return "\r".join(segments) + "\r"
