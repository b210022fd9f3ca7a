"""De-identification for packages given to outside experts and researchers.

* DICOM headers: the actions of the DICOM PS3.15 Annex E Basic Application Level Confidentiality
  Profile for every attribute the portal stores (``portal.records.ingest.dicom.HEADER_KEYWORDS``), with the
  Retain Longitudinal Temporal Information with Modified Dates Option: UIDs replaced (consistently
  within the package), identifying descriptions removed, dates shifted.
* Texts and JSON: every known identifier of the study (patient names, MRN, accession numbers,
  referring physician, radiologists) is replaced by a pseudonym; dates are shifted by a per-patient
  offset so intervals within a patient's record survive; dates in ambiguous or spelled-out formats are
  removed.

The mapping is random per package (a fresh secret each time) but consistent within it, and it is never
stored: two packages cannot be linked through their pseudonyms. :class:`Identity` is the no-op used for
ordinary packages, so the writers call the same interface either way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from typing import Any

PROFILE = (
    "DICOM PS3.15 E.1 Basic Application Level Confidentiality Profile (113100) with Retain Longitudinal "
    "Temporal Information with Modified Dates Option (113107); text identifiers pseudonymised, dates "
    "shifted per patient"
)
PROFILE_CODES = ["113100", "113107"]

# PS3.15 Table E.1-1 actions for the stored header attributes: U = replace UID, Z/D = dummy or empty,
# X = remove, S = shift date (the Modified Dates option). Attributes not listed are kept (technical).
DICOM_ACTIONS: dict[str, str] = {
    "SOPInstanceUID": "U",
    "StudyInstanceUID": "U",
    "SeriesInstanceUID": "U",
    "StudyID": "Z",
    "AccessionNumber": "D",
    "StudyDate": "S",
    "TimezoneOffsetFromUTC": "X",
    "StudyDescription": "X",
    "SeriesDescription": "X",
    "ProtocolName": "X",
    "SoftwareVersions": "X",
    "ContrastBolusAgent": "Z",
}

_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_DICOM_DATE = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)")
_SLASH_DATE = re.compile(r"(?<!\d)\d{1,2}[/.]\d{1,2}[/.]\d{2,4}(?!\d)")
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_WORDY_DATE = re.compile(
    rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS},?\s+\d{{4}}|{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})\b",
    re.IGNORECASE,
)
DATE_REMOVED = "[date removed]"


class Identity:
    """The no-op transformer of ordinary (identified) packages."""

    deidentified = False
    profile = ""

    def learn(self, *, patient_key: object, identifiers: Iterable[str]) -> None:
        """Nothing to learn."""

    def text(self, value: str, patient_key: object = None) -> str:
        """Unchanged."""
        return value

    def json(self, value: Any, patient_key: object = None) -> Any:
        """Unchanged."""
        return value

    def date(self, value: dt.date | None, patient_key: object = None) -> dt.date | None:
        """Unchanged."""
        return value

    def datetime(self, value: dt.datetime | None, patient_key: object = None) -> dt.datetime | None:
        """Unchanged."""
        return value

    def accession(self, value: str) -> str:
        """Unchanged."""
        return value

    def person(self, value: str) -> str:
        """Unchanged."""
        return value

    def patient(self, key: object, mrn: str) -> str:
        """Unchanged."""
        return mrn

    def uid(self, value: str) -> str:
        """Unchanged."""
        return value

    def dicom_header(self, header: dict[str, Any], patient_key: object = None) -> dict[str, Any]:
        """Unchanged."""
        return header


class Deidentifier(Identity):
    """Pseudonymises identifiers and shifts dates, consistently within one package."""

    deidentified = True
    profile = PROFILE

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._pseudonyms: dict[tuple[str, str], str] = {}
        self._counters: dict[str, int] = {}
        self._identifiers: dict[object, set[str]] = {}
        self._patterns: dict[object, re.Pattern[str] | None] = {}

    # --- pseudonyms ---------------------------------------------------------------------------------

    def _pseudonym(self, kind: str, value: str, fmt: str) -> str:
        key = (kind, value)
        if key not in self._pseudonyms:
            self._counters[kind] = self._counters.get(kind, 0) + 1
            self._pseudonyms[key] = fmt.format(self._counters[kind])
        return self._pseudonyms[key]

    def accession(self, value: str) -> str:
        """``STUDY-000001``, ... in order of first appearance."""
        return self._pseudonym("accession", value, "STUDY-{:06d}") if value else value

    def person(self, value: str) -> str:
        """``PERSON-001``, ... (radiologists, referring physicians)."""
        return self._pseudonym("person", value.strip().lower(), "PERSON-{:03d}") if value else value

    def patient(self, key: object, mrn: str) -> str:
        """``PATIENT-0001``, ..."""
        return self._pseudonym("patient", str(key), "PATIENT-{:04d}")

    def uid(self, value: str) -> str:
        """A ``2.25.<decimal>`` UID derived from the original by a keyed hash (consistent, unlinkable)."""
        digest = hmac.new(self._secret, b"uid:" + value.encode(), hashlib.sha256).digest()
        return "2.25." + str(int.from_bytes(digest[:16], "big"))

    def shift_days(self, patient_key: object) -> int:
        """The patient's date offset: between 365 and 3,651 days into the past, never zero."""
        digest = hmac.new(self._secret, f"shift:{patient_key}".encode(), hashlib.sha256).digest()
        return -(365 + int.from_bytes(digest[:4], "big") % 3287)

    # --- identifiers known for a patient ------------------------------------------------------------

    def learn(self, *, patient_key: object, identifiers: Iterable[str]) -> None:
        """Remember identifying strings (names, MRN, accession numbers) to scrub from the patient's texts."""
        bucket = self._identifiers.setdefault(patient_key, set())
        for ident in identifiers:
            ident = (ident or "").strip()
            if len(ident) >= 2:
                bucket.add(ident)
                # "Family, Given" and "Given Family" are also written as their parts.
                bucket.update(part for part in re.split(r"[\s,^]+", ident) if len(part) >= 3)
        self._patterns.pop(patient_key, None)

    def _pattern(self, patient_key: object) -> re.Pattern[str] | None:
        if patient_key not in self._patterns:
            words = sorted(self._identifiers.get(patient_key, ()), key=len, reverse=True)
            self._patterns[patient_key] = (
                re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) if words else None
            )
        return self._patterns[patient_key]

    # --- transforms ---------------------------------------------------------------------------------

    def date(self, value: dt.date | None, patient_key: object = None) -> dt.date | None:
        """The date moved by the patient's offset."""
        if value is None:
            return None
        return value + dt.timedelta(days=self.shift_days(patient_key))

    def datetime(self, value: dt.datetime | None, patient_key: object = None) -> dt.datetime | None:
        """The moment moved by the patient's offset (whole days: times of day are kept)."""
        if value is None:
            return None
        return value + dt.timedelta(days=self.shift_days(patient_key))

    def _shift_match(self, match: re.Match[str], patient_key: object, sep: str) -> str:
        try:
            day = dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            return match.group(0) if sep == "" else DATE_REMOVED  # 8 digits that are no date: keep
        shifted = self.date(day, patient_key)
        assert shifted is not None
        return shifted.strftime(f"%Y{sep}%m{sep}%d")

    def text(self, value: str, patient_key: object = None) -> str:
        """Identifiers replaced by ``[redacted]``, ISO and DICOM dates shifted, other dates removed."""
        if not value:
            return value
        pattern = self._pattern(patient_key)
        if pattern is not None:
            value = pattern.sub("[redacted]", value)
        value = _ISO_DATE.sub(lambda m: self._shift_match(m, patient_key, "-"), value)
        value = _DICOM_DATE.sub(lambda m: self._shift_match(m, patient_key, ""), value)
        value = _SLASH_DATE.sub(DATE_REMOVED, value)
        return _WORDY_DATE.sub(DATE_REMOVED, value)

    def json(self, value: Any, patient_key: object = None) -> Any:
        """Every string in a JSON value (keys included) scrubbed with :meth:`text`."""
        if isinstance(value, str):
            return self.text(value, patient_key)
        if isinstance(value, dict):
            return {self.text(str(k), patient_key): self.json(v, patient_key) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(v, patient_key) for v in value]
        return value

    def dicom_header(self, header: dict[str, Any], patient_key: object = None) -> dict[str, Any]:
        """The PS3.15 basic profile applied to a stored header (see :data:`DICOM_ACTIONS`)."""
        out: dict[str, Any] = {}
        for keyword, value in header.items():
            action = DICOM_ACTIONS.get(keyword, "K")
            if action == "X":
                continue
            if action == "Z":
                out[keyword] = ""
            elif action == "U":
                out[keyword] = self.uid(str(value))
            elif action == "D":
                out[keyword] = self.accession(str(value))
            elif action == "S":
                out[keyword] = self.text(str(value), patient_key)
            else:
                out[keyword] = self.json(value, patient_key)
        out["PatientIdentityRemoved"] = "YES"
        out["DeidentificationMethod"] = PROFILE
        out["DeidentificationMethodCodeSequence"] = [
            {"CodeValue": code, "CodingSchemeDesignator": "DCM"} for code in PROFILE_CODES
        ]
        out["LongitudinalTemporalInformationModified"] = "MODIFIED"
        return out
