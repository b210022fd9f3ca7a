"""Evaluate the engine on labelled pairs and print per-category precision/recall/F1 and a confusion table.

Usage: ``python -m inference.compare.evaluate tests/data/compare/hard_pairs.jsonl`` (any JSON-lines file of
labelled pairs, e.g. committee verdicts exported by the review app), or
``python -m inference.compare.evaluate --real`` (the real-text development set of
:mod:`inference.compare.devset`, reported separately for its tuned and held-out parts).

Each line holds ``{"id", "candidate", "reference", "expected": [{"category", "finding"}], "note"}``;
optional ``"kind"`` (``"normal_pair"`` for two different reports of a normal study) and ``"split"``.
A predicted discrepancy matches an expected one when the categories are equal and the findings name
the same concept, or concepts in a parent/child relation (the engine names a finding in the signed
report's terms, a label may use the broader or narrower name).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import devset
from .engine import compare
from .extract import analyse
from .lexicon import LEXICON, Lexicon, expand_pattern
from .model import CATEGORIES, SIGNIFICANT, Discrepancy


@dataclass
class Report:
    """Counts from one evaluation run."""

    tp: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    fp: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    fn: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    pairs: int = 0
    wording_pairs: int = 0
    wording_clean: int = 0
    wording_any_clean: int = 0
    normal_pairs: int = 0
    normal_clean: int = 0
    #: Normal-vs-normal pairs with no discrepancy at all (minor ones included).
    normal_any_clean: int = 0
    #: (expected category or "none", predicted category or "none") -> count, per finding.
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def precision(self, category: str) -> float:
        found = self.tp[category] + self.fp[category]
        return self.tp[category] / found if found else 1.0

    def recall(self, category: str) -> float:
        wanted = self.tp[category] + self.fn[category]
        return self.tp[category] / wanted if wanted else 1.0

    def f1(self, category: str) -> float:
        p, r = self.precision(category), self.recall(category)
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def wording_clean_share(self) -> float:
        """Share of wording-only pairs (expected empty) with no significant discrepancy."""
        return self.wording_clean / self.wording_pairs if self.wording_pairs else 1.0

    @property
    def normal_false_alarm_share(self) -> float:
        """Share of normal-vs-normal pairs with at least one significant discrepancy."""
        return 1 - self.normal_clean / self.normal_pairs if self.normal_pairs else 0.0

    @property
    def wording_false_alarm_share(self) -> float:
        """Share of wording-only pairs with at least one significant discrepancy."""
        return 1 - self.wording_clean_share

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers, for tests and docs."""
        return {
            "pairs": self.pairs,
            "per_category": {
                c: {
                    "precision": round(self.precision(c), 3),
                    "recall": round(self.recall(c), 3),
                    "f1": round(self.f1(c), 3),
                    "tp": self.tp[c],
                    "fp": self.fp[c],
                    "fn": self.fn[c],
                }
                for c in CATEGORIES
            },
            "wording_pairs": self.wording_pairs,
            "wording_clean_share": round(self.wording_clean_share, 3),
            "normal_pairs": self.normal_pairs,
            "normal_false_alarm_share": round(self.normal_false_alarm_share, 4),
            "normal_any_false_alarm_share": round(
                1 - self.normal_any_clean / self.normal_pairs if self.normal_pairs else 0.0, 4
            ),
            "wording_false_alarm_share": round(self.wording_false_alarm_share, 4),
            "wording_no_discrepancy_share": round(
                self.wording_any_clean / self.wording_pairs if self.wording_pairs else 1.0, 3
            ),
        }


def resolve_concept(name: str, lexicon: Lexicon = LEXICON) -> str:
    """Map a label's finding name ("PTX", "pleural effusion") to a concept id (or the name itself)."""
    lowered = name.strip().lower()
    if lowered in lexicon.concepts:
        return lowered
    for concept in lexicon.concepts.values():
        if concept.name.lower() == lowered:
            return concept.id
    for phrase in expand_pattern(lowered.replace("_", " ")):
        for kind, value in lexicon.table.get(tuple(lexicon.normalise(t) for t in phrase), ()):
            if kind == "concept":
                return value
    # Labels from other tools use their own ids ("cervical_spine_fracture"): read the name as text.
    found = analyse(lowered.replace("_", " ") + ".")
    return found[0].concept if found else lowered


def _related(a: str, b: str, lexicon: Lexicon) -> bool:
    if a == b:
        return True
    if a in lexicon.concepts and b in lexicon.concepts:
        return lexicon.is_ancestor(a, b) or lexicon.is_ancestor(b, a)
    return False


def _quotes(found: Discrepancy, where: dict[str, list[list[int]]] | None) -> bool:
    """True when a discrepancy quotes the edited sentences of a controlled-edit pair.

    The development set labels a finding by its head noun ("opacity"); the engine may name the same
    words more precisely ("interstitial opacities" -> pulmonary fibrosis). Quoting the edited words in
    the expected category is the same detection, so it counts.
    """
    if not where:
        return False
    for side, span in (("candidate", found.candidate_span), ("reference", found.reference_span)):
        if span and any(span[0] < end and start < span[1] for start, end in where.get(side, ())):
            return True
    return False


def evaluate(records: Iterable[dict[str, Any]], lexicon: Lexicon = LEXICON) -> Report:
    """Run :func:`compare` on every record and count matches per category."""
    report = Report()
    for record in records:
        report.pairs += 1
        result = compare(record["candidate"], record["reference"])
        predicted = [(d.category, d.concept, d) for d in result.discrepancies]
        expected = [
            (e["category"], resolve_concept(e["finding"], lexicon), e.get("where"))
            for e in record["expected"]
        ]
        unmatched = list(predicted)
        missing = []
        for category, concept, where in expected:
            for index, (p_category, p_concept, found) in enumerate(unmatched):
                named = _related(p_concept, concept, lexicon) or _quotes(found, where)
                if p_category == category and named:
                    report.tp[category] += 1
                    report.confusion[(category, category)] += 1
                    del unmatched[index]
                    break
            else:
                report.fn[category] += 1
                missing.append({"category": category, "finding": concept})
                # What the engine said about this finding instead ("none" when nothing).
                other = next((p for p in unmatched if _related(p[1], concept, lexicon)), None)
                report.confusion[(category, other[0] if other else "none")] += 1
                if other is not None:
                    unmatched.remove(other)
                    report.fp[other[0]] += 1
        for p_category, _, _ in unmatched:
            report.fp[p_category] += 1
            report.confusion[("none", p_category)] += 1
        significant = any(d.significance == SIGNIFICANT for d in result.discrepancies)
        if record.get("kind") == "normal_pair":
            report.normal_pairs += 1
            report.normal_clean += not significant
            report.normal_any_clean += not result.discrepancies
        elif not expected:
            report.wording_pairs += 1
            report.wording_clean += not significant
            report.wording_any_clean += not result.discrepancies
        if missing or unmatched:
            report.errors.append(
                {
                    "id": record.get("id"),
                    "missing": missing,
                    "extra": [
                        {"category": d.category, "finding": d.concept, "explanation": d.explanation}
                        for _, _, d in unmatched
                    ],
                }
            )
    return report


#: A labelled text longer than this is refused: real reports are a few kilobytes.
MAX_TEXT_CHARS = 1_000_000


class RecordError(ValueError):
    """A labelled pair that cannot be evaluated; the message names the file and line."""


def load_records(path: Path) -> list[dict[str, Any]]:
    """Read and check a JSON-lines file of labelled pairs (blank lines are skipped).

    Raises :class:`RecordError` naming the line for anything that is not a pair in the documented
    shape (hard_pairs.jsonl, or committee verdicts exported by the review app), so nothing is half-read.
    """
    records = []
    with path.open(encoding="utf-8", errors="strict") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise RecordError(f"{path}:{number}: not JSON ({error.msg})") from None
            problem = _record_problem(record)
            if problem:
                raise RecordError(f"{path}:{number}: {problem}")
            records.append(record)
    return records


def _record_problem(record: Any) -> str:
    """What is wrong with one labelled pair, or "" when it has the documented shape."""
    if not isinstance(record, dict):
        return "a line must hold one JSON object"
    for key in ("candidate", "reference"):
        if not isinstance(record.get(key), str):
            return f"{key!r} must be a string"
        if len(record[key]) > MAX_TEXT_CHARS:
            return f"{key!r} is longer than {MAX_TEXT_CHARS} characters"
    expected = record.get("expected")
    if not isinstance(expected, list):
        return "'expected' must be a list of {category, finding} objects"
    for item in expected:
        finding = item.get("finding") if isinstance(item, dict) else None
        if not isinstance(finding, str) or not finding.strip():
            return "each expected item needs a non-empty 'finding' string"
        if item.get("category") not in CATEGORIES:
            return f"unknown category {str(item.get('category'))[:40]!r} (allowed: {', '.join(CATEGORIES)})"
    if "id" in record and not isinstance(record["id"], str | int):
        return "'id' must be a string or a number"
    return ""


def format_report(report: Report) -> str:
    """A plain-text table for the terminal and docs."""
    lines = [f"{'category':<20} {'prec':>6} {'recall':>6} {'f1':>6} {'tp':>4} {'fp':>4} {'fn':>4}"]
    for category in CATEGORIES:
        lines.append(
            f"{category:<20} {report.precision(category):>6.3f} {report.recall(category):>6.3f} "
            f"{report.f1(category):>6.3f} "
            f"{report.tp[category]:>4} {report.fp[category]:>4} {report.fn[category]:>4}"
        )
    lines.append(f"pairs: {report.pairs}; wording-only pairs: {report.wording_pairs}")
    lines.append(f"wording-only pairs with no significant discrepancy: {report.wording_clean_share:.1%}")
    share = report.wording_any_clean / report.wording_pairs if report.wording_pairs else 1.0
    lines.append(f"wording-only pairs with no discrepancy at all: {share:.1%}")
    if report.normal_pairs:
        lines.append(
            f"normal-vs-normal pairs: {report.normal_pairs}; with a significant discrepancy: "
            f"{report.normal_false_alarm_share:.1%}; with any discrepancy: "
            f"{1 - report.normal_any_clean / report.normal_pairs:.1%}"
        )
    lines.append(format_confusion(report))
    return "\n".join(lines)


def format_confusion(report: Report) -> str:
    """Expected category (rows, "none" = nothing expected) against what the engine said (columns)."""
    labels = [*CATEGORIES, "none"]
    short = {c: c.replace("comparison_", "cmp_").replace("_finding", "")[:10] for c in labels}
    lines = [
        "confusion (rows expected, columns predicted):",
        " " * 20 + "".join(f"{short[c]:>11}" for c in labels),
    ]
    for row in labels:
        counts = [report.confusion.get((row, col), 0) for col in labels]
        if any(counts):
            lines.append(f"{row:<20}" + "".join(f"{n:>11}" for n in counts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, nargs="?", help="JSON-lines file of labelled pairs")
    parser.add_argument("--real", action="store_true", help="evaluate the real-text development set")
    parser.add_argument("--errors", action="store_true", help="also list every mismatching pair")
    args = parser.parse_args(argv)
    if args.real == (args.path is not None):
        parser.error("give either a JSON-lines file or --real")
    try:
        records = devset.build() if args.real else load_records(args.path)
    except (OSError, UnicodeDecodeError, RecordError) as error:
        parser.exit(2, f"evaluate: {error}\n")
    splits = sorted({r.get("split", "all") for r in records}, reverse=True)
    for split in splits:
        report = evaluate(r for r in records if r.get("split", "all") == split)
        if len(splits) > 1:
            print(f"== {split} ==")
        print(format_report(report))
        if args.errors:
            for error in report.errors:
                print(json.dumps(error, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
