"""Evaluate the engine on labelled pairs (JSON lines) and print per-category precision/recall/F1.

Usage: ``python -m inference.compare.evaluate tests/data/compare/hard_pairs.jsonl``

Each line holds ``{"id", "candidate", "reference", "expected": [{"category", "finding"}], "note"}``.
A predicted discrepancy matches an expected one when the categories are equal and the findings name
the same concept, or concepts in a parent/child relation (the engine names a finding in the signed
report's terms, a label may use the broader or narrower name).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import compare
from .extract import analyse
from .lexicon import LEXICON, Lexicon, expand_pattern
from .model import CATEGORIES, SIGNIFICANT


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


def evaluate(records: Iterable[dict[str, Any]], lexicon: Lexicon = LEXICON) -> Report:
    """Run :func:`compare` on every record and count matches per category."""
    report = Report()
    for record in records:
        report.pairs += 1
        result = compare(record["candidate"], record["reference"])
        predicted = [(d.category, d.concept, d) for d in result.discrepancies]
        expected = [(e["category"], resolve_concept(e["finding"], lexicon)) for e in record["expected"]]
        unmatched = list(predicted)
        missing = []
        for category, concept in expected:
            for index, (p_category, p_concept, _) in enumerate(unmatched):
                if p_category == category and _related(p_concept, concept, lexicon):
                    report.tp[category] += 1
                    del unmatched[index]
                    break
            else:
                report.fn[category] += 1
                missing.append({"category": category, "finding": concept})
        for p_category, _, _ in unmatched:
            report.fp[p_category] += 1
        if not expected:
            report.wording_pairs += 1
            report.wording_clean += not any(d.significance == SIGNIFICANT for d in result.discrepancies)
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


def load_records(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file, skipping blank lines."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="JSON-lines file of labelled pairs")
    parser.add_argument("--errors", action="store_true", help="also list every mismatching pair")
    args = parser.parse_args(argv)
    report = evaluate(load_records(args.path))
    print(format_report(report))
    if args.errors:
        for error in report.errors:
            print(json.dumps(error, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
