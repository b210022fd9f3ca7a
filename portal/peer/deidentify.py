"""De-identification of report text for teaching sets: names, record numbers, accessions, dates removed.

Two passes. First the identifiers the record knows for this case (the patient's names and MRN, the
accession and study UID, the names of the clinicians and accounts involved) are removed wherever they
appear, in any case and even when split by invisible characters. Then patterns catch what the record
does not know: "Dr. Surname", labelled numbers ("MRN: ...", "Acc# ..."), dates in the usual spellings,
clock times, long digit runs and letter-digit codes, DICOM UIDs, e-mail addresses and phone numbers.

Dates are removed, not shifted: a teaching conference needs the finding, not the calendar, and a shifted
date still tells a colleague who remembers the case which week it was. Over-removal is preferred to
under-removal (a patient called "White" also blanks "white matter"); the chair reviews every case text
before the conference and may edit it.

Pure Python (no Django): every pattern is linear in the text's length, so hostile input cannot make it
backtrack for long.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable

NAME = "[NAME]"
ID = "[ID]"
DATE = "[DATE]"
TIME = "[TIME]"
CONTACT = "[CONTACT]"

# Invisible characters that can hide an identifier from matching ("Sm\u200bith") or reorder what a
# reader sees (bidirectional overrides, "Trojan Source"); control characters other than line breaks.
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_ORDINAL = r"(?:st|nd|rd|th)?"

#: (pattern, replacement), applied in order. Labelled numbers before the generic digit rules, so
#: "MRN: 12345" loses the number and keeps the label.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}"), CONTACT),
    (
        re.compile(
            r"\b((?:MRN|medical\s+record(?:\s+(?:number|no\.?))?|accession(?:\s+(?:number|no\.?))?|acc\.?|"
            r"patient\s+id|NHS(?:\s+number)?|SSN|ID)(?![\w])\s{0,3}(?:[:#]|no\.?)?\s{0,3})[A-Z0-9][A-Z0-9./-]{0,40}",
            re.IGNORECASE,
        ),
        r"\1" + ID,
    ),
    (
        re.compile(r"\b((?:DOB|date\s+of\s+birth|born)(?![\w])\s{0,3}:?\s{0,3})\S{1,40}", re.IGNORECASE),
        r"\1" + DATE,
    ),
    (
        re.compile(
            r"\b(?:Dr|Doctor|Mr|Mrs|Ms|Miss|Mx|Prof|Professor)\.?\s{1,3}"
            r"[A-Z][\w'’-]{0,40}(?:\s{1,3}[A-Z][\w'’-]{0,40}){0,2}"
        ),
        NAME,
    ),
    (re.compile(r"\b\d+(?:\.\d+){4,}\b"), ID),  # DICOM UIDs and other OIDs
    (
        re.compile(
            r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
            r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
        ),
        DATE,
    ),
    (re.compile(r"\b\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b"), DATE),
    (
        re.compile(
            rf"\b\d{{1,2}}{_ORDINAL}\s{{0,3}}(?:of\s+)?{_MONTH}\.?,?\s{{0,3}}\d{{4}}\b", re.IGNORECASE
        ),
        DATE,
    ),
    (re.compile(rf"\b{_MONTH}\.?\s{{0,3}}\d{{1,2}}{_ORDINAL},?\s{{0,3}}\d{{4}}\b", re.IGNORECASE), DATE),
    (re.compile(rf"\b{_MONTH}\.?\s{{0,3}}\d{{4}}\b", re.IGNORECASE), DATE),
    (re.compile(r"(?:\+\d{1,3}[\s.-]?)?\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b"), CONTACT),
    (re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?(?![\w:])", re.IGNORECASE), TIME),
    (re.compile(r"\b[A-Z]{1,6}-?\d{4,}[A-Z0-9]*\b"), ID),  # MRN12345678, SYN0001000123, ACC-P12345
    (re.compile(r"\b\d{6,}\b"), ID),
)
_MIN_PART = 2  # single letters (initials) are too common to remove everywhere
_SEPARATOR = r"[\s,.'’-]{1,3}"


@dataclasses.dataclass(frozen=True)
class Identifiers:
    """What the record knows about the people and numbers of one case.

    ``names``: full names or name parts of the patient, the clinicians and the accounts involved.
    ``numbers``: MRN, accession number, study UID and any other identifier, removed verbatim.
    """

    names: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()

    @classmethod
    def of(cls, names: Iterable[str | None] = (), numbers: Iterable[str | None] = ()) -> Identifiers:
        """Build from possibly empty values (blank ones are left out)."""
        return cls(
            names=tuple(n.strip() for n in names if n and n.strip()),
            numbers=tuple(n.strip() for n in numbers if n and n.strip()),
        )


def normalise(text: str) -> str:
    """NFKC (fullwidth digits and letters become plain ones), invisible and control characters removed."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    return _CONTROL.sub(" ", text).replace("\r\n", "\n").replace("\r", "\n")


def _known_pattern(known: Identifiers) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """One alternation for the known numbers and one for the known names (longest first, escaped)."""
    numbers = {normalise(n) for n in known.numbers if len(normalise(n)) >= 3}
    parts: set[str] = set()
    for name in known.names:
        clean = normalise(name)
        words = [w for w in re.split(r"[\s,]+", clean) if len(w.strip(".'’-")) >= _MIN_PART]
        if len(words) > 1:
            parts.add(_SEPARATOR.join(re.escape(w) for w in words))  # the full name, any separators
        parts.update(re.escape(w.strip(".")) for w in words)
    number_re = (
        re.compile(
            r"(?<![\w])(?:"
            + "|".join(re.escape(n) for n in sorted(numbers, key=len, reverse=True))
            + r")(?![\w])",
            re.IGNORECASE,
        )
        if numbers
        else None
    )
    name_re = (
        re.compile(
            r"(?<![\w])(?:" + "|".join(sorted(parts, key=len, reverse=True)) + r")(?![\w])", re.IGNORECASE
        )
        if parts
        else None
    )
    return number_re, name_re


def deidentify(text: str, known: Identifiers | None = None) -> str:
    """``text`` with the case's known identifiers and identifier-like patterns replaced by placeholders."""
    out = normalise(text or "")
    number_re, name_re = _known_pattern(known or Identifiers())
    if number_re is not None:
        out = number_re.sub(ID, out)
    if name_re is not None:
        out = name_re.sub(NAME, out)
    for pattern, replacement in _PATTERNS:
        out = pattern.sub(replacement, out)
    return out
