"""Property tests: compare never crashes, and a report never disagrees with itself."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference.compare import CATEGORIES, RADPEER_SCORES, compare

_WORDS = st.sampled_from(
    [
        "no",
        "left",
        "right",
        "bilateral",
        "small",
        "large",
        "new",
        "stable",
        "increased",
        "possible",
        "pneumothorax",
        "effusion",
        "nodule",
        "mass",
        "fracture",
        "cardiomegaly",
        "consolidation",
        "but",
        "cannot",
        "exclude",
        "in",
        "the",
        "lower",
        "lobe",
        "2.3",
        "x",
        "1.5",
        "cm",
        "mm",
        ",",
        ".",
        ";",
        "IMPRESSION:",
        "FINDINGS:",
        "1.",
        "2)",
        "\n",
        "versus",
        "resolved",
        "XXXX",
        "not",
        "seen",
    ]
)
_REPORTS = st.one_of(st.text(max_size=400), st.lists(_WORDS, max_size=60).map(" ".join))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_REPORTS, _REPORTS)
def test_compare_never_crashes_and_returns_valid_values(candidate, reference):
    result = compare(candidate, reference)
    assert result.radpeer in RADPEER_SCORES
    for discrepancy in result.discrepancies:
        assert discrepancy.category in CATEGORIES
        for text, span, source in (
            (discrepancy.candidate_text, discrepancy.candidate_span, candidate),
            (discrepancy.reference_text, discrepancy.reference_span, reference),
        ):
            if span is not None:
                assert source[span[0] : span[1]] == text
        # Every mark lands on words of its own text (the case page draws them; a link must not dangle).
        for marks, source, span in (
            (discrepancy.candidate_marks, candidate, discrepancy.candidate_span),
            (discrepancy.reference_marks, reference, discrepancy.reference_span),
        ):
            assert all(0 <= start < end <= len(source) and source[start:end].strip() for start, end in marks)
            assert span is not None or not marks
    assert 0.0 <= result.scores["rouge_l"] <= 1.0
    assert 0.0 <= result.scores["chrf"] <= 1.0


@settings(max_examples=300, deadline=None)
@given(_REPORTS)
def test_a_report_compared_with_itself_has_no_discrepancies(text):
    result = compare(text, text)
    # A draft that contradicts itself still does so when compared with itself; nothing else may differ.
    assert [d for d in result.discrepancies if d.category != "internal_contradiction"] == []
    if not result.discrepancies:
        assert result.radpeer == "1"
