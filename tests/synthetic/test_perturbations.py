"""The labels are the discrepancy engine's ground truth, so each must be real and visible in the texts."""

import re
from collections import Counter

from portal.demo.synthetic import PERTURBATION_CATEGORIES, Finding, labelled_pairs, load_catalog

CHANGE_WORDS = re.compile(r"\b(new|increased|decreased|unchanged|stable|resolved|resolution)\b", re.I)
HEDGE = re.compile(r"\b(possible|cannot exclude|cannot be excluded|suspicious for|questionable)\b", re.I)
NEGATION = re.compile(r"^(no|there (is|are) no)\b", re.I)


def _word(term: str) -> re.Pattern[str]:
    """The term as a whole word, singular or plural ("pleural effusions" for bilateral ones)."""
    return re.compile(rf"\b{re.escape(term)}s?\b", re.I)


def _draft_lines(study, display: str) -> list[str]:
    """Lines of the draft's FINDINGS section that name the concept."""
    findings = study.ai_draft_text.split("\n\nIMPRESSION:")[0]
    return [line for line in findings.splitlines()[1:] if _word(display).search(line)]


def _signed_sentences(study, concept: str) -> list[str]:
    """Sentences of the signed FINDINGS section that name the concept by any of its terms."""
    terms = [_word(t) for t in load_catalog().pattern(concept).terms]
    sentences = re.split(r"(?<=\.)\s+", study.signed_sections["findings"])
    return [s for s in sentences if any(t.search(s) for t in terms)]


def _ai_finding(study, concept: str) -> Finding | None:
    for raw in study.ai_inputs["findings"]:
        if raw["concept"] == concept:
            return Finding(**raw)
    return None


def _true_finding(study, concept: str) -> Finding | None:
    return next((f for f in study.true_findings if f.concept == concept), None)


def _perturbed(department, category: str):
    return [(s, p) for s in department.studies for p in s.perturbations if p.category == category]


def test_every_category_appears_and_about_seventy_percent_are_untouched(department):
    counts = Counter(p.category for s in department.studies for p in s.perturbations)
    assert set(counts) == set(PERTURBATION_CATEGORIES)
    assert min(counts.values()) >= 20, counts
    untouched = sum(1 for s in department.studies if not s.perturbations) / len(department.studies)
    assert 0.65 <= untouched <= 0.75
    per_study = Counter(len(s.perturbations) for s in department.studies)
    assert set(per_study) == {0, 1, 2}


def test_each_perturbation_touches_its_own_concept(department):
    for study in department.studies:
        concepts = [p.concept for p in study.perturbations]
        assert len(set(concepts)) == len(concepts)
        assert all(p.detail for p in study.perturbations)


def test_comparison_errors_need_a_prior(department):
    for study, _ in _perturbed(department, "comparison_added") + _perturbed(department, "comparison_omitted"):
        assert study.prior_accession is not None


def test_untouched_drafts_report_the_truth(department):
    for study in department.studies:
        if study.perturbations:
            continue
        assert study.ai_inputs["findings"] == [f.to_dict() for f in study.true_findings]
        for finding in study.true_findings:
            assert _draft_lines(study, finding.display), (study.accession_number, finding.concept)


def test_a_false_finding_is_asserted_by_the_draft_and_absent_from_the_report(department):
    for study, label in _perturbed(department, "false_finding"):
        assert _true_finding(study, label.concept) is None
        invented = _ai_finding(study, label.concept)
        lines = _draft_lines(study, invented.display)
        assert lines and not any(NEGATION.match(line) for line in lines)
        assert all(NEGATION.match(s) for s in _signed_sentences(study, label.concept))


def test_a_missed_finding_is_in_the_report_and_nowhere_in_the_draft(department):
    for study, label in _perturbed(department, "missed_finding"):
        truth = _true_finding(study, label.concept)
        assert _ai_finding(study, label.concept) is None
        assert not _word(truth.display).search(study.ai_draft_text)
        sentences = _signed_sentences(study, label.concept)
        assert sentences and not any(NEGATION.match(s) for s in sentences)


def test_a_location_error_changes_the_side_or_site_words(department):
    for study, label in _perturbed(department, "location"):
        truth, ai = _true_finding(study, label.concept), _ai_finding(study, label.concept)
        assert (truth.laterality, truth.location) != (ai.laterality, ai.location)
        (line,) = _draft_lines(study, ai.display)
        if truth.laterality != ai.laterality:
            assert _word(ai.laterality).search(line) and not _word(truth.laterality).search(line)
            assert any(_word(truth.laterality).search(s) for s in _signed_sentences(study, label.concept))
        else:
            assert ai.location in line and truth.location not in line
            assert any(truth.location in s for s in _signed_sentences(study, label.concept))


def test_a_severity_error_changes_size_by_a_third_and_3_mm_or_the_grade(department):
    for study, label in _perturbed(department, "severity"):
        truth, ai = _true_finding(study, label.concept), _ai_finding(study, label.concept)
        (line,) = _draft_lines(study, ai.display)
        if truth.size_mm is not None:
            difference = abs(ai.size_mm - truth.size_mm)
            assert difference >= 3 and difference >= 0.3 * truth.size_mm
            assert f"{ai.size_mm} mm" in line and f" {truth.size_mm} mm" not in line
        else:
            assert ai.severity != truth.severity
            assert _word(ai.severity).search(line) and not _word(truth.severity).search(line)


def test_an_added_comparison_is_in_the_draft_only(department):
    for study, label in _perturbed(department, "comparison_added"):
        truth, ai = _true_finding(study, label.concept), _ai_finding(study, label.concept)
        assert truth.change is None and ai.change is not None
        (line,) = _draft_lines(study, ai.display)
        assert CHANGE_WORDS.search(line)
        assert not any(CHANGE_WORDS.search(s) for s in _signed_sentences(study, label.concept))


def test_an_omitted_comparison_is_in_the_report_only(department):
    for study, label in _perturbed(department, "comparison_omitted"):
        truth, ai = _true_finding(study, label.concept), _ai_finding(study, label.concept)
        assert truth.change is not None and ai.change is None
        (line,) = _draft_lines(study, ai.display)
        assert not CHANGE_WORDS.search(line)
        assert any(CHANGE_WORDS.search(s) for s in _signed_sentences(study, label.concept))


def test_a_certainty_error_adds_or_removes_the_hedge(department):
    for study, label in _perturbed(department, "certainty"):
        truth, ai = _true_finding(study, label.concept), _ai_finding(study, label.concept)
        assert truth.certainty != ai.certainty
        (line,) = _draft_lines(study, ai.display)
        signed_hedged = any(HEDGE.search(s) for s in _signed_sentences(study, label.concept))
        assert bool(HEDGE.search(line)) == (ai.certainty == "possible")
        assert signed_hedged == (truth.certainty == "possible")


def test_labelled_pairs_have_the_evaluation_shape(department):
    pairs = list(labelled_pairs(department))
    assert len(pairs) == len(department.studies)
    for pair, study in zip(pairs, department.studies, strict=True):
        assert set(pair) == {"id", "candidate", "reference", "expected"}
        assert pair["id"] == study.accession_number
        assert pair["candidate"] == study.ai_draft_text and pair["reference"] == study.signed_text
        assert pair["expected"] == [
            {"category": p.category, "finding": p.concept} for p in study.perturbations
        ]
