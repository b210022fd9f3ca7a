"""HL7 v2 text handling shared by the ORU parser and the ACK builder.

Escaping and unescaping of field text, decoding of the raw bytes, splitting into segments (with
line-ending normalisation and re-joining of wrapped text), field access with HL7 numbering, and the
DTM/DT timestamp formats. Nothing here knows what an ORU^R01 means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

from portal.records.ingest.payloads import (
    MALFORMED,
    MAX_DESCRIPTION_CHARS,
    TOO_LARGE,
    AdapterError,
    clean_text,
)

__all__ = [
    "MAX_DELIMITERS",
    "MAX_MESSAGE_BYTES",
    "MAX_SEGMENTS",
    "MLLP_BYTES",
    "STANDARD",
    "Segment",
    "Separators",
    "decode_message",
    "escape",
    "parse_date",
    "parse_dtm",
    "segment_lines",
    "short",
    "split_segments",
    "unescape",
]

MAX_MESSAGE_BYTES = 1_048_576
# python-hl7 (the parser used until issue #15) built a Python object per field, component and
# subcomponent: a 1 MiB message made of nothing but delimiters took ~10 s to parse. Real radiology
# results have tens of segments and a few thousand delimiters, so these caps cost nothing.
MAX_SEGMENTS = 2000
MAX_DELIMITERS = 50_000


# --- escaping -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


STANDARD = Separators()


def escape(text: str, seps: Separators = STANDARD) -> str:
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


def unescape(text: str, seps: Separators = STANDARD) -> str:
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
MLLP_BYTES = str.maketrans("", "", "\x0b\x1c")


def decode_message(message: str | bytes | bytearray | memoryview) -> str:
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


def segment_lines(text: str) -> tuple[list[str], Separators]:
    """Normalise line endings and framing, validate MSH, and re-join continuation lines."""
    text = text.translate(MLLP_BYTES).lstrip("\ufeff")
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
    seps = Separators(field_sep, enc[0], enc[1], enc[2], enc[3])
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


def split_segments(lines: list[str], seps: Separators) -> list[list[str]]:
    """The fields of each segment as sent, numbered as HL7 numbers them: index 0 the segment id, and
    in MSH index 1 the field separator itself and index 2 the encoding characters.

    The fields python-hl7's ``parse`` gave (``str(segment[n])``), without building its nested
    containers only to join them again (~0.4 ms of a 0.7 ms parse): the message is stripped at both
    ends and split on CR (a wrapped line was re-joined with LF and stays in its segment), each
    segment on the field separator.
    """
    sep = seps.field
    msh, *others = "\r".join(lines).strip().split("\r")
    end = msh.find(sep, 4)
    # MSH-1 is the separator; MSH-2 runs to the next one (the encoding characters).
    rest = msh[end + 1 :].split(sep) if end != -1 and msh[end + 1 :] else []
    segments = [[msh[:3], sep, msh[4:end] if end != -1 else msh[4:], *rest]]
    segments += [line.split(sep) for line in others]
    return segments


class Segment:
    """Field access on one segment's fields (see :func:`split_segments`) with HL7 numbering and
    forgiving bounds."""

    def __init__(self, segment: list[str], seps: Separators, name: str) -> None:
        self._segment = segment
        self._seps = seps
        self.name = name  # "OBX" or "OBX[2]" for the second OBX: used in error locations
        self.is_msh = segment[0] == "MSH"

    def raw(self, n: int) -> str:
        """The field as sent (escape sequences still encoded), "" when absent."""
        # MSH fields are numbered as HL7 does (MSH-1 is the separator itself); for every other
        # segment index n is field n as well, with index 0 the segment id.
        if n >= len(self._segment):
            return ""
        return self._segment[n]

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


def short(value: str, location: str, *, max_len: int = MAX_DESCRIPTION_CHARS) -> str:
    return clean_text(value, max_len=max_len, location=location).strip()


# --- timestamps ---------------------------------------------------------------------------------
_DTM = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})"
    r"(?:(?P<h>\d{2})(?:(?P<mi>\d{2})(?:(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?)?)?)?"
    r"(?P<tz>[+-]\d{4})?$"
)


def parse_dtm(value: str, location: str, default_tz: tzinfo) -> datetime | None:
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


def parse_date(value: str, location: str) -> date | None:
    if not value:
        return None
    match = re.match(r"^(\d{4})(\d{2})(\d{2})", value.strip())
    if not match:
        raise AdapterError(MALFORMED, "date is not YYYYMMDD", location)
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise AdapterError(MALFORMED, "date out of range", location) from None
