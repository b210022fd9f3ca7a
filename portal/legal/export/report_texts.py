"""The texts the package's report.pdf prints per study: each AI draft beside the signed report it was
compared with, the words that differ marked, and each difference in plain language.

The marks come from the discrepancy engine (:func:`inference.compare.compare`, pure and
deterministic): it is run again on the stored pair to get the exact differing words of each stored
discrepancy. A stored discrepancy the engine no longer reports the same way (a newer engine) keeps
the span stored with it, so what the committee saw is what the court sees. Texts pass through the
package's de-identifier piece by piece, so marks stay on the right words in a de-identified package.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from inference.compare import compare
from portal.legal.export.records import StudyBundle, signer
from portal.records.models import AIOutput, SignedReport
from portal.review.models import Comparison, Discrepancy

#: Characters of one text printed in the PDF; the full texts are in records/ beside it.
MAX_TEXT = 4000
Span = tuple[int, int]
#: The package's de-identifier for one patient's texts (identity in an identified package).
Clean = Callable[[str], str]


@dataclasses.dataclass(frozen=True)
class MarkedText:
    """A text cut into pieces, each marked (a word that differs) or not."""

    heading: str
    pieces: tuple[tuple[str, bool], ...]
    shortened: bool = False


@dataclasses.dataclass(frozen=True)
class Difference:
    """One discrepancy as a reader without the engine's vocabulary understands it."""

    category: str  # "Missed finding"
    significance: str  # "significant" / "minor"
    finding: str
    ai_words: str  # quoted words, or "not mentioned"
    signed_words: str
    explanation: str


@dataclasses.dataclass(frozen=True)
class ComparedPair:
    """One engine comparison: the AI draft, the signed report and their differences."""

    heading: str
    draft: MarkedText
    report: MarkedText
    differences: tuple[Difference, ...]


def _pieces(text: str, marks: list[Span], clean: Clean) -> tuple[tuple[tuple[str, bool], ...], bool]:
    """``text`` cut at the marks (overlaps merged, out-of-range clipped), each piece de-identified."""
    shortened = len(text) > MAX_TEXT
    text = text[:MAX_TEXT]
    merged: list[list[int]] = []
    for start, end in sorted((max(0, s), min(len(text), e)) for s, e in marks):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces: list[tuple[str, bool]] = []
    position = 0
    for start, end in merged:
        if start > position:
            pieces.append((clean(text[position:start]), False))
        pieces.append((clean(text[start:end]), True))
        position = end
    if position < len(text):
        pieces.append((clean(text[position:]), False))
    return tuple(pieces), shortened


def _stored_span(x: Discrepancy, side: str) -> list[Span]:
    start, end = getattr(x, f"{side}_start"), getattr(x, f"{side}_end")
    return [(start, end)] if start is not None and end is not None else []


def _engine_marks(
    candidate: str, reference: str, stored: list[Discrepancy]
) -> dict[int, tuple[list[Span], list[Span]]]:
    """Per stored discrepancy id, the engine's word marks on each side (the stored span if the engine
    no longer reports it identically)."""
    fresh = {}
    for d in compare(candidate, reference).discrepancies:
        fresh[(d.category, d.finding, d.candidate_span, d.reference_span)] = d
    out = {}
    for x in stored:
        key = (
            x.category,
            x.finding,
            (x.candidate_start, x.candidate_end) if x.candidate_start is not None else None,
            (x.reference_start, x.reference_end) if x.reference_start is not None else None,
        )
        d = fresh.get(key)
        if d is not None and (d.candidate_marks or d.reference_marks):
            out[x.pk] = (list(d.candidate_marks), list(d.reference_marks))
        else:
            out[x.pk] = (_stored_span(x, "candidate"), _stored_span(x, "reference"))
    return out


def _quoted(words: str, clean: Clean) -> str:
    words = " ".join(words.split())
    return f'"{clean(words)}"' if words else "not mentioned"


def _difference(x: Discrepancy, clean: Clean) -> Difference:
    return Difference(
        category=x.get_category_display(),
        significance=x.get_significance_display().lower(),
        finding=clean(x.finding),
        ai_words=_quoted(x.candidate_text, clean),
        signed_words=_quoted(x.reference_text, clean),
        explanation=clean(x.explanation),
    )


def _when(bundle: StudyBundle, value: dt.datetime | None) -> str:
    shifted = bundle.deid.datetime(value, bundle.patient_key)
    return shifted.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if shifted else "(no time)"


def _draft_heading(bundle: StudyBundle, output: AIOutput) -> str:
    version = output.model_version
    generated = _when(bundle, output.generated_at)
    kind = output.kind.replace("_", " ")
    return f"AI draft ({kind}), model {version.name} {version.version}, generated {generated}"


def _report_heading(bundle: StudyBundle, report: SignedReport) -> str:
    who = bundle.deid.person(signer(report))
    return f"Signed report ({report.status}), signed by {who} at {_when(bundle, report.signed_at)}"


def _pair(bundle: StudyBundle, c: Comparison, outputs: dict, reports: dict) -> ComparedPair | None:
    output, report = outputs.get(c.candidate_id), reports.get(c.reference_id)
    if output is None or report is None:
        return None

    def clean(value: str) -> str:
        return bundle.deid.text(value or "", bundle.patient_key)

    stored = list(c.discrepancies.all())
    marks = _engine_marks(output.text, report.text, stored) if stored else {}
    draft, draft_short = _pieces(output.text, [m for a, _ in marks.values() for m in a], clean)
    signed, signed_short = _pieces(report.text, [m for _, b in marks.values() for m in b], clean)
    return ComparedPair(
        heading=(
            f"Compared {_when(bundle, c.created_at)}: {c.significant_count} significant and {c.minor_count} "
            f"minor differences, RADPEER suggested {c.radpeer_suggested}"
        ),
        draft=MarkedText(_draft_heading(bundle, output), draft, draft_short),
        report=MarkedText(_report_heading(bundle, report), signed, signed_short),
        differences=tuple(_difference(x, clean) for x in stored),
    )


def compared_pairs(bundle: StudyBundle) -> list[ComparedPair]:
    """Every comparison of the study, oldest first, with its texts marked."""
    outputs = {o.pk: o for o in bundle.ai_outputs}
    reports = {r.pk: r for r in bundle.reports}
    pairs = (_pair(bundle, c, outputs, reports) for c in bundle.comparisons)
    return [pair for pair in pairs if pair is not None]
