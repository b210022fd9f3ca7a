"""Text plumbing: cleaning, section parsing, sentence splitting and tokenising with offsets.

Every function keeps character offsets into the ORIGINAL string: cleaning replaces characters one for
one instead of deleting them, so spans reported to reviewers always point at the words they saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Control characters become spaces (same length); carriage returns become newlines so CR-only HL7
# text still splits into lines.
_CLEAN_TABLE = {code: " " for code in list(range(0, 32)) + list(range(127, 160)) if code not in (9, 10, 13)}
_CLEAN_TABLE[13] = "\n"
_CLEAN_TABLE[9] = " "
_CLEAN_TABLE[0x2028] = "\n"
_CLEAN_TABLE[0x2029] = "\n"

#: Sections whose sentences are read for findings. Indication, technique and comparison text talks
#: about the question asked ("rule out pneumothorax"), not the answer, so it is skipped.
ANALYSED_SECTIONS = frozenset({"findings", "impression", "body"})

_HEADERS = {
    "findings": "findings",
    "finding": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "opinion": "impression",
    "summary": "impression",
    "indication": "indication",
    "indications": "indication",
    "history": "indication",
    "clinical history": "indication",
    "clinical indication": "indication",
    "clinical information": "indication",
    "clinical details": "indication",
    "reason for exam": "indication",
    "reason for study": "indication",
    "reason for examination": "indication",
    "technique": "technique",
    "procedure": "technique",
    "exam": "technique",
    "examination": "technique",
    "comparison": "comparison",
    "comparisons": "comparison",
    "recommendation": "recommendation",
    "recommendations": "recommendation",
    "addendum": "findings",
}
_HEADER_WORDS = "|".join(
    sorted((re.escape(h).replace(r"\ ", r"\s+") for h in _HEADERS), key=len, reverse=True)
)
# A header is a known word followed by a colon, or a known word alone on its line.
_HEADER_RE = re.compile(
    rf"(?:(?<![\w])(?P<colon>{_HEADER_WORDS})[ \t]*:)|(?:^[ \t]*(?P<line>{_HEADER_WORDS})[ \t]*$)",
    re.IGNORECASE | re.MULTILINE,
)

# Sentence ends: '.', '!' or '?' not followed by a digit or a letter (keeps "2.3 cm" and "e.g." whole),
# or a line break (report lines are often unpunctuated list items).
_SENTENCE_END_RE = re.compile(r"[.!?]+(?![\dA-Za-z])|\n")
_ENUMERATOR_RE = re.compile(r"^(?:\(?\d{1,2}[.)](?=\s|[^\W\d_])|[-*\u2022]+)\s*")
_ABBREVIATIONS = frozenset({"dr", "vs", "approx", "mr", "mrs", "st", "fig", "cf", "resp", "incl"})
_LETTER_RE = re.compile(r"[^\W\d_]")

_SIZE = r"\d+(?:\.\d+)?"
_UNIT = r"(?:mm|cm|millimet(?:er|re)s?|centimet(?:er|re)s?)"
#: A measurement: up to three dimensions joined by x / by, each optionally with its own unit, ending
#: in a unit. The repetition is bounded so hostile input cannot make the regex backtrack badly.
SIZE_RE = re.compile(
    rf"{_SIZE}(?:\s*{_UNIT}\b)?(?:\s*(?:x|\u00d7|by)\s*{_SIZE}(?:\s*{_UNIT}\b)?){{0,3}}\s*{_UNIT}\b",
    re.IGNORECASE,
)
_SIZE_PART_RE = re.compile(rf"({_SIZE})\s*({_UNIT})?", re.IGNORECASE)
_TOKEN_RE = re.compile(
    rf"(?P<size>{SIZE_RE.pattern})|(?P<word>[^\W\d_]+\d*|\d+(?:\.\d+)?)|(?P<punct>[;:,])", re.I
)


@dataclass(frozen=True)
class Section:
    """A span of the report under one header (``body`` when the report has no headers)."""

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class Sentence:
    """A sentence with its offsets in the original text and the section it belongs to."""

    start: int
    end: int
    section: str


@dataclass(frozen=True)
class Token:
    """A lowercase token with offsets; ``size_mm`` is set for measurement tokens."""

    text: str
    start: int
    end: int
    kind: str  # "word", "size" or "punct"
    size_mm: float | None = None


def clean(text: str) -> str:
    """Replace control characters one for one, so offsets into the result equal offsets into ``text``."""
    return text.translate(_CLEAN_TABLE)


def split_sections(text: str) -> list[Section]:
    """Split a report into sections by header.

    Headers are recognised in any case, with a colon anywhere in a line ("... normal. IMPRESSION: ...")
    or alone on a line. Text before the first header is ``body`` when no findings or impression header
    exists (a headerless report is all findings), and ``preamble`` otherwise (exam title lines).
    """
    headers = [
        (m.start(), m.end(), _HEADERS[" ".join((m.group("colon") or m.group("line")).lower().split())])
        for m in _HEADER_RE.finditer(text)
    ]
    if not headers:
        return [Section("body", 0, len(text))]
    names = {name for _, _, name in headers}
    lead = "preamble" if names & {"findings", "impression"} else "body"
    sections = []
    if headers[0][0] > 0:
        sections.append(Section(lead, 0, headers[0][0]))
    for index, (_, body_start, name) in enumerate(headers):
        body_end = headers[index + 1][0] if index + 1 < len(headers) else len(text)
        sections.append(Section(name, body_start, body_end))
    return sections


def split_sentences(text: str, section: Section) -> list[Sentence]:
    """Split one section into sentences, trimming whitespace and list enumerators ("1.", "2)", "-")."""
    sentences = []
    start = section.start
    for match in _SENTENCE_END_RE.finditer(text, section.start, section.end):
        if match.group() == "." and _is_abbreviation(text, match.start()):
            continue
        sentences.extend(_trimmed(text, start, match.end(), section.name))
        start = match.end()
    sentences.extend(_trimmed(text, start, section.end, section.name))
    return sentences


def _is_abbreviation(text: str, dot: int) -> bool:
    """True for the dot of "Dr.", "vs.", "approx." or the last dot of "e.g." / "i.e."."""
    word_start = dot
    while word_start > 0 and text[word_start - 1].isalpha() and dot - word_start < 8:
        word_start -= 1
    word = text[word_start:dot].lower()
    if word in _ABBREVIATIONS:
        return True
    return (
        len(word) == 1 and word_start >= 2 and text[word_start - 1] == "." and text[word_start - 2].isalpha()
    )


def _trimmed(text: str, start: int, end: int, section: str) -> list[Sentence]:
    chunk = text[start:end]
    stripped = chunk.lstrip()
    start += len(chunk) - len(stripped)
    enumerator = _ENUMERATOR_RE.match(stripped)
    if enumerator:
        start += enumerator.end()
    chunk = text[start:end].rstrip()
    end = start + len(chunk)
    if end <= start or not _LETTER_RE.search(chunk):
        return []
    return [Sentence(start, end, section)]


def parse_size_mm(raw: str) -> float:
    """Return the largest dimension of a measurement in millimetres ("2.3 x 1.5 cm" -> 23.0)."""
    parts = _SIZE_PART_RE.findall(raw)
    values: list[float] = []
    unit = "mm"
    # Units apply backwards: in "2.3 x 1.5 cm" the trailing unit covers both numbers.
    for number, part_unit in reversed(parts):
        if part_unit:
            unit = "cm" if part_unit.lower().startswith("c") else "mm"
        values.append(float(number) * (10.0 if unit == "cm" else 1.0))
    return round(max(values), 2)


def tokenize(text: str, start: int, end: int) -> list[Token]:
    """Tokenise ``text[start:end]``: measurements, lowercase words and numbers, and , ; : punctuation."""
    tokens = []
    for match in _TOKEN_RE.finditer(text, start, end):
        kind = match.lastgroup or "word"
        raw = match.group()
        if kind == "size":
            tokens.append(Token(raw.lower(), match.start(), match.end(), "size", parse_size_mm(raw)))
        else:
            tokens.append(Token(raw.lower(), match.start(), match.end(), kind))
    return tokens
