"""DICOM Part 10 files in, :class:`~portal.records.ingest.payloads.StudyPayload` out.

Only the header is read (``stop_before_pixels=True``): pixel data never enters memory, but its
declared length is checked against the bytes actually present so that a truncated upload is
refused instead of being stored as if complete. Files must carry the Part 10 preamble and
``DICM`` prefix (``force=False``): a raw dataset without it is refused as "not a DICOM file",
because reading arbitrary bytes with ``force=True`` "succeeds" on garbage.

Mapping:

* PatientID -> MRN; PatientName -> family / given; PatientBirthDate; PatientSex (M/F/O, else U).
* StudyInstanceUID (required), AccessionNumber (optional: an unscheduled or outside study has
  none, and is kept under its StudyInstanceUID until a RIS message brings the accession),
  Modality (``OT`` when absent),
  BodyPartExamined (else inferred from StudyDescription), StudyDescription,
  ReferringPhysicianName as ``"Family, Given"``.
* StudyDate + StudyTime -> study time. TimezoneOffsetFromUTC (``+hhmm``/``-hhmm``) is applied
  when present; without it the time is taken as UTC, since DICOM's default "local time of the
  device" is unknowable here. Unparseable dates or offsets give ``None`` rather than a refusal:
  a header with a broken date still identifies its study, and a wrong time would be worse.
* RequestedProcedurePriority: ``STAT`` -> stat, ``HIGH`` -> urgent, anything else -> routine.
* specialty from :func:`~portal.records.ingest.payloads.infer_specialty`.
* ``dicom_header``: the keywords in :data:`HEADER_KEYWORDS` (plus the file meta
  TransferSyntaxUID) as JSON-safe values (str, int, float or lists of them). Patient
  demographics, physician and institution names, private tags, sequences and binary values are
  deliberately left out: the header is study context, not a second copy of PHI.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, TypeVar

import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

from portal.records.ingest.payloads import (
    MALFORMED,
    MAX_BODY_PART_CHARS,
    MAX_DESCRIPTION_CHARS,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MISSING_FIELD,
    TOO_LARGE,
    AdapterError,
    PatientPayload,
    StudyPayload,
    infer_body_part,
    infer_specialty,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "HEADER_KEYWORDS",
    "datetime_value",
    "dicom_datetime",
    "person_name",
    "iter_dicom_files",
    "read_file",
    "read_study_header",
    "study_payload",
    "text_value",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 50_000_000

# Study, series and acquisition context worth keeping beside the study (see module docstring).
HEADER_KEYWORDS: tuple[str, ...] = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "StudyID",
    "AccessionNumber",
    "Modality",
    "ModalitiesInStudy",
    "BodyPartExamined",
    "StudyDate",
    "StudyTime",
    "TimezoneOffsetFromUTC",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "InstanceNumber",
    "ProtocolName",
    "RequestedProcedurePriority",
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "ImageType",
    "SliceThickness",
    "KVP",
    "ContrastBolusAgent",
    "Rows",
    "Columns",
    "PixelSpacing",
    "PhotometricInterpretation",
    "BitsAllocated",
)
_MAX_HEADER_STRING = 1024
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_PRIORITY = {"STAT": "stat", "HIGH": "urgent"}
_SEX = {"M": "M", "F": "F", "O": "O"}
_DEFLATED = "1.2.840.10008.1.2.1.99"
# Explicit VR elements whose length field is 4 bytes after 2 reserved bytes (PS3.5 7.1.2).
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_UNDEFINED_LENGTH = 0xFFFFFFFF
_CHUNK = 1 << 20

Source = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]


def read_study_header(source: Source, *, max_bytes: int = DEFAULT_MAX_BYTES) -> StudyPayload:
    """Read the header of one DICOM file (bytes, a path, or a binary file object) as a study.

    A file object is read from its current position (Django's ``UploadedFile`` works as is).
    Raises :class:`AdapterError`, and nothing else: ``too_large`` over ``max_bytes``,
    ``malformed`` for anything that is not a complete DICOM Part 10 file, ``missing_field`` when
    PatientID or StudyInstanceUID is absent or empty (AccessionNumber may be: see the module doc).
    """
    return read_file(source, max_bytes=max_bytes, convert=study_payload)


def read_file(source: Source, *, max_bytes: int = DEFAULT_MAX_BYTES, convert: Callable[[Dataset], T]) -> T:
    """Read one DICOM file's header, check it is complete, and ``convert`` the dataset.

    Every failure, including one raised while ``convert`` decodes an element lazily, comes out as
    :class:`AdapterError`.
    """
    with _open(source, max_bytes) as fp:
        start = fp.tell()
        _check_inflated_size(fp, max_bytes)
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=False)
        except InvalidDicomError:
            raise AdapterError(MALFORMED, "not a DICOM file (no DICM preamble)") from None
        except Exception:  # pydicom raises many types on damaged files; all mean the same here
            raise AdapterError(MALFORMED, "DICOM file could not be read") from None
        try:
            _check_complete(fp, ds)
            return convert(ds)
        except AdapterError:
            raise
        except Exception:
            # Values are decoded lazily, so a damaged element can fail only when it is read.
            raise AdapterError(MALFORMED, "DICOM header could not be decoded") from None
        finally:
            # Leave a caller's file where it was, so it can still be stored or re-read.
            if fp.seekable():
                fp.seek(start)


def _check_inflated_size(fp: IO[bytes], max_bytes: int) -> None:
    """Refuse a deflated dataset that would inflate past ``max_bytes``, before pydicom inflates it.

    pydicom inflates a Deflated Explicit VR Little Endian dataset in one go, so a few hundred KB on
    the wire can cost gigabytes of worker memory (a zip bomb). The file meta group is never deflated
    (PS3.10 7.1) and starts with its group length, so the transfer syntax can be read first and the
    rest inflated here with a bound. The stream is left where it was.
    """
    start = fp.tell()
    try:
        head = fp.read(144)
        # Preamble, "DICM", then (0002,0000) UL, length 4: the meta group's length.
        if len(head) < 144 or head[128:132] != b"DICM" or head[132:138] != b"\x02\x00\x00\x00UL":
            return
        meta = fp.read(int.from_bytes(head[140:144], "little"))
        if _DEFLATED.encode("ascii") not in meta:
            return
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        produced = 0
        while not inflater.eof and (data := fp.read(_CHUNK)):
            while data:
                produced += len(inflater.decompress(data, max_bytes + 1 - produced))
                if produced > max_bytes:
                    raise AdapterError(TOO_LARGE, f"deflated dataset inflates past {max_bytes} bytes")
                data = inflater.unconsumed_tail
    except zlib.error:
        raise AdapterError(MALFORMED, "deflated DICOM dataset could not be inflated") from None
    finally:
        fp.seek(start)


class _Opened:
    """Context manager yielding a seekable binary stream; closes only what it opened itself."""

    def __init__(self, fp: IO[bytes], owned: bool) -> None:
        self.fp = fp
        self.owned = owned

    def __enter__(self) -> IO[bytes]:
        return self.fp

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.fp.close()


def _open(source: Source, max_bytes: int) -> _Opened:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        _check_size(len(data), max_bytes)
        return _Opened(io.BytesIO(data), owned=True)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise AdapterError(MALFORMED, "not a regular file")
            _check_size(size, max_bytes)
            return _Opened(path.open("rb"), owned=True)
        except OSError:
            raise AdapterError(MALFORMED, "file could not be opened") from None
    if not hasattr(source, "read"):
        raise AdapterError(MALFORMED, "expected bytes, a path or a binary file object")
    try:
        if source.seekable():
            start = source.tell()
            end = source.seek(0, io.SEEK_END)
            source.seek(start)
            _check_size(end - start, max_bytes)
            return _Opened(source, owned=False)
        # A stream that cannot seek is copied, reading one byte past the limit to detect excess.
        data = source.read(max_bytes + 1)
    except (OSError, ValueError, AttributeError):
        raise AdapterError(MALFORMED, "file could not be read") from None
    if not isinstance(data, bytes):
        raise AdapterError(MALFORMED, "file object must be opened in binary mode")
    _check_size(len(data), max_bytes)
    return _Opened(io.BytesIO(data), owned=True)


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise AdapterError(TOO_LARGE, f"file larger than {max_bytes} bytes")
    if size == 0:
        raise AdapterError(MALFORMED, "not a DICOM file (empty)")


# --- truncation -----------------------------------------------------------------------------------
def _check_complete(fp: IO[bytes], ds: Dataset) -> None:
    """Refuse a file cut short: inside a header element, or before the end of its pixel data.

    pydicom reads a short value without complaint (it returns fewer bytes than the element's
    declared length) and stops silently at EOF, so the checks are made here: every element got
    its declared length, nothing but a complete element ends the file, an image (Rows present)
    still has its pixel data, and the pixel data is as long as declared.
    """
    if len(ds) == 0:
        raise AdapterError(MALFORMED, "DICOM file contains no data elements")
    last = _check_elements(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("TransferSyntaxUID", "")) == _DEFLATED:
        return  # pydicom inflated the dataset into its own buffer: fp positions do not apply
    position = fp.tell()
    end = fp.seek(0, io.SEEK_END)
    fp.seek(position)
    remaining = end - position
    if remaining == 0:
        # The header ran to the end of the file. Fine for objects without pixel data (SR,
        # presentation states), unless the file stops in the middle of an element header
        # (which pydicom skips silently) or describes an image whose pixels are missing.
        if last is not None and getattr(last, "is_raw", False) and last.length != _UNDEFINED_LENGTH:
            if last.value_tell + last.length != end:
                raise AdapterError(MALFORMED, "DICOM file is truncated (inside an element header)")
        if "Rows" in ds and "Columns" in ds:
            raise AdapterError(MALFORMED, "DICOM file is truncated (image without pixel data)")
        return
    implicit, little = getattr(ds, "original_encoding", (False, True))
    order = "little" if little in (True, None) else "big"
    header = fp.read(12)
    if len(header) < 8:
        raise AdapterError(MALFORMED, "DICOM file is truncated (pixel data element header)")
    if implicit:
        header_len, length = 8, int.from_bytes(header[4:8], order)
    elif header[4:6] in _LONG_VRS:
        if len(header) < 12:
            raise AdapterError(MALFORMED, "DICOM file is truncated (pixel data element header)")
        header_len, length = 12, int.from_bytes(header[8:12], order)
    else:
        header_len, length = 8, int.from_bytes(header[6:8], order)
    if length == _UNDEFINED_LENGTH:
        _check_sequence_delimiter(fp, position + header_len, order)
    elif length > remaining - header_len:
        raise AdapterError(MALFORMED, "DICOM file is truncated (pixel data shorter than declared)")


def _check_elements(ds: Dataset) -> Any:
    """Refuse elements shorter than declared, recursing into sequences; return the last element."""
    last = None
    for element in ds.elements():
        last = element
        value = getattr(element, "value", None)
        if getattr(element, "is_raw", False):
            length = element.length
            if isinstance(value, bytes) and length != _UNDEFINED_LENGTH and len(value) < length:
                raise AdapterError(MALFORMED, "DICOM file is truncated (inside a header element)")
        elif isinstance(value, Sequence):
            for item in value:
                _check_elements(item)
    return last


def _check_sequence_delimiter(fp: IO[bytes], start: int, order: str) -> None:
    """Encapsulated pixel data has no length: it must end with a sequence delimitation item."""
    marker = b"\xfe\xff\xdd\xe0" if order == "little" else b"\xff\xfe\xe0\xdd"
    fp.seek(start)
    tail = b""
    while chunk := fp.read(_CHUNK):
        if marker in tail[-3:] + chunk:
            return
        tail = chunk
    raise AdapterError(MALFORMED, "DICOM file is truncated (encapsulated pixel data not terminated)")


# --- mapping --------------------------------------------------------------------------------------
def _location(keyword: str) -> str:
    tag = pydicom.datadict.tag_for_keyword(keyword)
    if tag is None:
        return keyword
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {keyword}"


def text_value(ds: Dataset, keyword: str, max_len: int) -> str:
    """A string element, stripped; control characters removed; too long -> ``too_large``."""
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        value = "\\".join(str(v) for v in value)
    text = "".join(ch for ch in str(value) if ch.isprintable() or ch == " ").strip()
    if len(text) > max_len:
        raise AdapterError(TOO_LARGE, f"{keyword} longer than {max_len} characters", _location(keyword))
    return text


def person_name(ds: Dataset, keyword: str) -> tuple[str, str]:
    """A PN element as (family, given), printable characters only."""
    value = ds.get(keyword)
    if value is None or value == "":
        return "", ""
    name = value if isinstance(value, PersonName) else PersonName(str(value))
    family = "".join(ch for ch in str(name.family_name) if ch.isprintable()).strip()
    given = "".join(ch for ch in str(name.given_name) if ch.isprintable()).strip()
    if len(family) > MAX_NAME_CHARS or len(given) > MAX_NAME_CHARS:
        raise AdapterError(TOO_LARGE, f"{keyword} too long", _location(keyword))
    return family, given


def _dicom_date(value: str) -> date | None:
    match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", value.replace(".", "").strip())
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


def _study_datetime(ds: Dataset) -> datetime | None:
    return dicom_datetime(
        text_value(ds, "StudyDate", 16),
        text_value(ds, "StudyTime", 32),
        text_value(ds, "TimezoneOffsetFromUTC", 16),
    )


def datetime_value(ds: Dataset, keyword: str) -> datetime | None:
    """A DT element (``YYYYMMDDHHMMSS.FFFFFF&ZZXX``) as an aware UTC datetime; None when unusable."""
    raw = text_value(ds, keyword, 32)
    match = re.fullmatch(r"(\d{8})([0-9.]*)([+-]\d{4})?", raw)
    if not match:
        return None
    return dicom_datetime(match.group(1), match.group(2), match.group(3) or "")


def dicom_datetime(day_text: str, time_text: str, offset: str) -> datetime | None:
    """DA + TM (+ ``+hhmm`` offset, else UTC) as an aware UTC datetime; None when unusable."""
    day = _dicom_date(day_text)
    if day is None:
        return None
    raw_time = time_text.replace(":", "")  # ACR-NEMA wrote HH:MM:SS
    match = re.fullmatch(r"(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?", raw_time) if raw_time else None
    if raw_time and not match:
        return None
    hour, minute, second, fraction = match.groups() if match else (None, None, None, None)
    tz = UTC
    if offset:
        off = re.fullmatch(r"([+-])(\d{2})(\d{2})", offset)
        if not off or int(off.group(2)) > 14 or int(off.group(3)) > 59:
            return None
        delta = timedelta(hours=int(off.group(2)), minutes=int(off.group(3)))
        tz = timezone(-delta if off.group(1) == "-" else delta)
    try:
        local = datetime(
            day.year,
            day.month,
            day.day,
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "").ljust(6, "0") or 0),
            tzinfo=tz,
        )
    except ValueError:
        return None
    return local.astimezone(UTC)


def _required(ds: Dataset, keyword: str, max_len: int = MAX_ID_CHARS) -> str:
    value = text_value(ds, keyword, max_len)
    if not value:
        raise AdapterError(MISSING_FIELD, f"{keyword} is required", _location(keyword))
    return value


def study_payload(ds: Dataset) -> StudyPayload:
    """The study a dataset's header describes (its patient, keys, modality, time, description)."""
    uid = _required(ds, "StudyInstanceUID")
    if not _UID.fullmatch(uid):
        raise AdapterError(MALFORMED, "StudyInstanceUID is not a DICOM UID", _location("StudyInstanceUID"))
    accession = text_value(ds, "AccessionNumber", MAX_ID_CHARS)  # "" for unscheduled and outside studies
    mrn = _required(ds, "PatientID")
    family, given = person_name(ds, "PatientName")
    patient = PatientPayload(
        mrn=mrn,
        family_name=family,
        given_name=given,
        birth_date=_dicom_date(text_value(ds, "PatientBirthDate", 16)),
        sex=_SEX.get(text_value(ds, "PatientSex", 16).upper(), "U"),
    )
    modality = text_value(ds, "Modality", 16).upper() or "OT"
    description = text_value(ds, "StudyDescription", MAX_DESCRIPTION_CHARS)
    body_part = text_value(ds, "BodyPartExamined", MAX_BODY_PART_CHARS).upper() or infer_body_part(
        description
    )
    ref_family, ref_given = person_name(ds, "ReferringPhysicianName")
    return StudyPayload(
        study_instance_uid=uid,
        accession_number=accession,
        patient=patient,
        modality=modality,
        body_part=body_part,
        specialty=infer_specialty(body_part, modality, description),
        study_datetime=_study_datetime(ds),
        description=description,
        priority=_PRIORITY.get(text_value(ds, "RequestedProcedurePriority", 16).upper(), "routine"),
        referring_physician=", ".join(part for part in (ref_family, ref_given) if part),
        dicom_header=_header(ds),
    )


def _json_value(value: Any) -> str | int | float | list | None:
    """A JSON-safe rendering of an element value, or None to leave the element out."""
    if isinstance(value, MultiValue | list | tuple):
        items = [_json_value(v) for v in value]
        return None if any(i is None or isinstance(i, list) for i in items) else items
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, bytes | bytearray) or value is None:
        return None
    if isinstance(value, str | PersonName):
        text = str(value).strip()
        if not text.isprintable() or len(text) > _MAX_HEADER_STRING:
            return None
        return text
    return None  # sequences and anything exotic


def _header(ds: Dataset) -> dict[str, str | int | float | list]:
    header: dict[str, str | int | float | list] = {}
    for keyword in HEADER_KEYWORDS:
        if keyword not in ds:
            continue
        try:
            value = _json_value(ds[keyword].value)
        except Exception:  # one undecodable optional element must not cost the whole study
            logger.debug("DICOM header element %s could not be decoded; left out", keyword)
            continue
        if value not in (None, "", []):
            header[keyword] = value
    meta = getattr(ds, "file_meta", None) if isinstance(ds, FileDataset) else None
    if meta is not None and "TransferSyntaxUID" in meta:
        header["TransferSyntaxUID"] = str(meta.TransferSyntaxUID)
    return header


# --- directories ----------------------------------------------------------------------------------
def iter_dicom_files(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield DICOM Part 10 files under ``directory``, recursively, in a stable (sorted) order.

    A file qualifies when it has the 128-byte preamble followed by ``DICM`` (what
    :func:`read_study_header` accepts). Hidden files and folders, symbolic links and ``DICOMDIR``
    index files are skipped; unreadable files are skipped silently.
    """
    root = Path(directory)
    for current, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            path = Path(current) / name
            if path.is_symlink() or not path.is_file():
                continue
            try:
                with path.open("rb") as fp:
                    head = fp.read(132)
            except OSError:
                continue
            if len(head) == 132 and head[128:132] == b"DICM":
                yield path
