"""HL7 v2 acknowledgements: the ``ACK^R01`` (MSA, ERR) answered for every ORU^R01, parsed or not."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from portal.records.ingest.hl7 import Hl7OruResult
from portal.records.ingest.hl7_text import MLLP_BYTES, Separators, escape, unescape
from portal.records.ingest.payloads import (
    CONFLICT,
    DUPLICATE,
    INVALID_VALUE,
    MALFORMED,
    MISSING_FIELD,
    NOT_FOUND,
    TOO_LARGE,
    UNSUPPORTED,
    AdapterError,
)

__all__ = ["ERR_CODES", "build_ack", "peek_control_id"]

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
_DEFAULT_ENCODING_CHARS = "^~\\&"


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
    text = text.translate(MLLP_BYTES).lstrip("\ufeff").lstrip()
    first = re.split(r"[\r\n]", text, maxsplit=1)[0]
    if not first.startswith("MSH") or len(first) < 8:
        return _AckSource()
    field_sep, enc = first[3], first[4:8]
    if len(set(enc + field_sep)) != 5:
        return _AckSource()
    seps = Separators(field_sep, enc[0], enc[1], enc[2], enc[3])
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


def _ack_source(message_or_result_or_raw: Hl7OruResult | str | bytes | None) -> _AckSource:
    """The MSH fields the ACK answers: from the parsed result, else read leniently from the raw text."""
    if isinstance(message_or_result_or_raw, Hl7OruResult):
        r = message_or_result_or_raw
        return _AckSource(
            r.control_id,
            r.sending_application,
            r.sending_facility,
            r.receiving_application,
            r.receiving_facility,
            r.version,
            r.processing_id or "P",
        )
    if message_or_result_or_raw is None:
        return _AckSource()
    return _peek_msh(message_or_result_or_raw)


def _err_segment(error: AdapterError) -> str:
    """The ERR segment for ``error``, HL7-escaped."""
    esc = escape
    err_code, err_text = _err_code(error)
    location = _err_location(error.location)
    # ERR-1 (ELD, deprecated since 2.5 but still read by v2.3 engines) and ERR-2 (ERL) carry
    # the same place; ERR-3 the coded condition; ERR-8 the human message.
    legacy = "^".join([*(location or ["", "", ""]), f"{err_code}&{esc(err_text)}&HL70357"])
    return "|".join(
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
    src = _ack_source(message_or_result_or_raw)
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
        segments.append(_err_segment(error))
    return "\r".join(segments) + "\r"


def peek_control_id(raw: str | bytes) -> str:
    """MSH-10 of a message that may not parse at all (for the inbound log); "" when unreadable."""
    return _peek_msh(raw).control_id
