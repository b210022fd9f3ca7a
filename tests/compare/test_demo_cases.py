"""Issue #19's demo cases, verbatim: the engine's verdicts tell one story per finding.

``tests/data/compare/demo_cases.jsonl`` holds the five pairs the issue names, exactly as the running
demo shows them (``manage.py seed_demo --studies 2000 --seed 7``: the signed report from
``portal.demo.synthetic``, the AI draft written by the shipped model concordance-draft 1.0.0), labelled
in the shape ``inference.compare.evaluate`` reads. Each test names the case and what went wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.compare import LEXICON, compare
from inference.compare.evaluate import evaluate, load_records, resolve_concept

CASES_PATH = Path(__file__).resolve().parents[1] / "data" / "compare" / "demo_cases.jsonl"
CASES = {record["id"]: record for record in load_records(CASES_PATH)}
LONE = {"missed_finding", "false_finding"}


def _case(number: int) -> tuple[str, str, list]:
    record = CASES[f"demo-{number}"]
    return (
        record["candidate"],
        record["reference"],
        list(compare(record["candidate"], record["reference"]).discrepancies),
    )


def _words(text: str, marks) -> list[str]:
    return [text[start:end] for start, end in marks]


def test_every_demo_case_yields_exactly_its_labelled_discrepancies():
    report = evaluate(CASES.values())
    assert report.errors == []
    assert sum(report.tp.values()) == sum(len(r["expected"]) for r in CASES.values())


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_a_paired_finding_is_never_also_missing_or_invented(case_id):
    record = CASES[case_id]
    found = compare(record["candidate"], record["reference"]).discrepancies
    graded = {d.concept for d in found if d.category not in LONE | {"internal_contradiction"}}
    for item in found:
        if item.category in LONE:
            related = {
                c
                for c in graded
                if LEXICON.is_ancestor(c, item.concept) or LEXICON.is_ancestor(item.concept, c)
            }
            assert not related, f"{case_id}: {item.finding} is both {item.category} and graded"


def test_case_1971_the_nodule_graded_for_size_is_not_also_a_false_finding():
    draft, signed, found = _case(1971)
    nodule = [d for d in found if d.concept == "lung_nodule"]
    assert sorted(d.category for d in nodule) == ["location", "severity"]
    size = next(d for d in nodule if d.category == "severity")
    assert (_words(draft, size.candidate_marks), _words(signed, size.reference_marks)) == (
        ["1.1 cm"],
        ["1.6 cm"],
    )
    # The draft's impression restates the nodule in the "left paratracheal station": a wrong site.
    place = next(d for d in nodule if d.category == "location")
    assert _words(draft, place.candidate_marks) == ["left paratracheal"]
    assert "paratracheal" in place.candidate_text and "upper lobe" in place.reference_text


def test_case_1994_one_breast_cyst_is_listed_once_and_the_wrong_breast_is_significant():
    draft, signed, found = _case(1994)
    cysts = [d for d in found if d.concept in {"cyst", "breast_cyst"}]
    assert [(d.category, d.significance, d.finding) for d in cysts] == [
        ("location", "significant", "breast cyst")
    ]
    (side,) = cysts
    assert set(_words(draft, side.candidate_marks)) == {"left"}
    # Both of the signed report's names for the cyst ("simple cyst", "Breast cyst") carry the mark.
    assert _words(signed, side.reference_marks) == ["right", "right"]
    assert side.reference_marks[0][0] < signed.index("IMPRESSION") < side.reference_marks[1][0]


def test_case_1970_new_said_of_the_same_finding_under_another_name_is_not_an_omitted_comparison():
    _, _, found = _case(1970)
    assert not [d for d in found if d.category.startswith("comparison")]
    assert not [d for d in found if d.concept in {"consolidation", "lung_opacity"}]


def test_case_1978_the_self_contradicting_draft_is_flagged_beside_the_severity():
    draft, signed, found = _case(1978)
    assert [(d.category, d.significance) for d in found] == [
        ("internal_contradiction", "significant"),
        ("severity", "significant"),
    ]
    contradiction, severity = found
    assert _words(draft, contradiction.candidate_marks) == [
        "New mild hydrocephalus",
        "There is no hydrocephalus",
        "New mild hydrocephalus",
    ]
    # The signed report's own statement is quoted, so the committee sees which one holds.
    assert "New moderate hydrocephalus" in _words(signed, contradiction.reference_marks)
    assert "signed report reports it" in contradiction.explanation
    assert (_words(draft, severity.candidate_marks), _words(signed, severity.reference_marks)) == (
        ["mild"],
        ["moderate"],
    )


def test_case_1995_the_missed_effusion_is_marked_in_findings_and_impression():
    _, signed, found = _case(1995)
    assert [(d.category, d.significance, d.finding) for d in found] == [
        ("missed_finding", "significant", "pleural effusion")
    ]
    assert _words(signed, found[0].reference_marks) == ["Large left pleural effusion"] * 2


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_every_mark_of_a_demo_case_has_one_named_segment(case_id):
    record = CASES[case_id]
    found = compare(record["candidate"], record["reference"]).discrepancies
    for side in ("candidate", "reference"):
        by_id: dict[str, tuple[int, int]] = {}
        for item in found:
            marked = {i for start, end in getattr(item, f"{side}_marks") for i in range(start, end)}
            segments = getattr(item, f"{side}_segments")
            assert marked == {i for s in segments for i in range(s.start, s.end)}
            for segment in segments:
                assert by_id.setdefault(segment.id, (segment.start, segment.end)) == (
                    segment.start,
                    segment.end,
                )
        spans = sorted(by_id.values())
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), "segments overlap"


def test_the_demo_cases_file_is_valid_for_the_evaluation_command():
    for line in CASES_PATH.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        assert record["id"].startswith("demo-") and record["note"].startswith("issue #19")
        for label in record["expected"]:
            resolve_concept(label["finding"])
