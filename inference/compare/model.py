"""Value objects returned by the discrepancy engine.

Everything here is frozen: a :class:`Comparison` is a pure function of its two input texts, so callers
(the review queue, the re-inference runner, the CLI) can cache and share it safely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The discrepancy categories, in the order the engine reports them. ``internal_contradiction`` (the
#: AI draft asserts and negates one finding) was added after GREEN's six plus certainty.
CATEGORIES: tuple[str, ...] = (
    "internal_contradiction",
    "false_finding",
    "missed_finding",
    "location",
    "severity",
    "comparison_added",
    "comparison_omitted",
    "certainty",
)

#: Allowed RADPEER scores (ACR current scale).
RADPEER_SCORES: tuple[str, ...] = ("1", "2a", "2b", "3a", "3b")

SIGNIFICANT = "significant"
MINOR = "minor"


@dataclass(frozen=True)
class Finding:
    """One mention of a finding concept in one sentence of a report.

    ``span`` is the sentence's [start, end) in the original input; ``mention_span`` covers the concept
    words and the modifiers attached to them, so ``text[mention_span[0]:mention_span[1]]`` reads like
    "small left pleural effusion".
    """

    concept: str
    name: str
    assertion: str  # "present", "absent" or "possible"
    laterality: str | None
    site: str | None
    severity: str | None
    severity_rank: float | None
    size_mm: float | None
    change: str | None  # "new", "increased", "decreased", "stable", "resolved" or None
    section: str
    sentence: str
    span: tuple[int, int]
    mention_span: tuple[int, int]
    words: str
    #: Exact words behind each attribute ([start, end) into the input), for marks on the case page.
    laterality_span: tuple[int, int] | None = None
    site_span: tuple[int, int] | None = None
    severity_span: tuple[int, int] | None = None
    change_span: tuple[int, int] | None = None
    trigger_span: tuple[int, int] | None = None
    #: The concept's own words ("pleural effusion" in "no small pleural effusion").
    concept_span: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of this mention."""
        return {
            "concept": self.concept,
            "name": self.name,
            "assertion": self.assertion,
            "laterality": self.laterality,
            "site": self.site,
            "severity": self.severity,
            "size_mm": self.size_mm,
            "change": self.change,
            "section": self.section,
            "span": list(self.span),
            "words": self.words,
        }


@dataclass(frozen=True)
class Segment:
    """A named, non-overlapping piece of the marked words of one side of a comparison.

    ``id`` is ``c<n>`` in the AI draft and ``r<n>`` in the signed report, numbered in text order and
    unique within one comparison; the same id always means the same ``[start, end)``. Quote links
    point at these ids (see ``anchors.py``).
    """

    id: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"id": ..., "span": [start, end]}``."""
        return {"id": self.id, "span": [self.start, self.end]}


@dataclass(frozen=True)
class Discrepancy:
    """One difference between the AI draft (candidate) and the signed report (reference)."""

    category: str
    significance: str
    finding: str
    candidate_text: str | None
    candidate_span: tuple[int, int] | None
    reference_text: str | None
    reference_span: tuple[int, int] | None
    explanation: str
    # Internal context for RADPEER rules and evaluation; not part of the stored JSON.
    concept: str = field(default="", compare=False)
    detail: str = field(default="", compare=False)
    #: The words that differ ([start, end) into each input), one mark per repeat of the finding
    #: (findings and impression); may lie outside the quoted sentence.
    candidate_marks: tuple[tuple[int, int], ...] = ()
    reference_marks: tuple[tuple[int, int], ...] = ()
    #: The same words cut into the comparison's non-overlapping, named segments (ids for quote links);
    #: together they cover exactly the marks above.
    candidate_segments: tuple[Segment, ...] = ()
    reference_segments: tuple[Segment, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object stored with a Discrepancy row (spans as [start, end] or null)."""
        return {
            "category": self.category,
            "significance": self.significance,
            "finding": self.finding,
            "candidate_text": self.candidate_text,
            "candidate_span": list(self.candidate_span) if self.candidate_span else None,
            "reference_text": self.reference_text,
            "reference_span": list(self.reference_span) if self.reference_span else None,
            "explanation": self.explanation,
            "candidate_marks": [list(mark) for mark in self.candidate_marks],
            "reference_marks": [list(mark) for mark in self.reference_marks],
            "candidate_segments": [segment.to_dict() for segment in self.candidate_segments],
            "reference_segments": [segment.to_dict() for segment in self.reference_segments],
        }


@dataclass(frozen=True)
class Comparison:
    """The result of comparing one AI draft with one signed report."""

    discrepancies: tuple[Discrepancy, ...]
    radpeer: str
    scores: dict[str, float]
    candidate_findings: tuple[Finding, ...] = ()
    reference_findings: tuple[Finding, ...] = ()

    @property
    def significant(self) -> tuple[Discrepancy, ...]:
        """The discrepancies judged clinically significant."""
        return tuple(d for d in self.discrepancies if d.significance == SIGNIFICANT)

    def to_dict(self) -> dict[str, Any]:
        """Return exactly ``{"discrepancies": [...], "radpeer": ..., "scores": {...}}``."""
        return {
            "discrepancies": [d.to_dict() for d in self.discrepancies],
            "radpeer": self.radpeer,
            "scores": dict(self.scores),
        }
