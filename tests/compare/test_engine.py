"""compare(): one test per category, wording-only pairs, spans, explanations, RADPEER, JSON shape."""

import json

import pytest

from inference.compare import CATEGORIES, Comparison, Discrepancy, compare, suggest_radpeer


def _categories(candidate, reference):
    return sorted((d.category, d.finding) for d in compare(candidate, reference).discrepancies)


@pytest.mark.parametrize(
    ("candidate", "reference", "expected"),
    [
        ("Small right pneumothorax.", "No pneumothorax.", [("false_finding", "pneumothorax")]),
        ("Lungs are clear.", "Left lower lobe consolidation.", [("missed_finding", "consolidation")]),
        ("Left pleural effusion.", "Right pleural effusion.", [("location", "pleural effusion")]),
        ("Bilateral pleural effusions.", "Left pleural effusion.", [("location", "pleural effusion")]),
        ("Large right pneumothorax.", "Small right pneumothorax.", [("severity", "pneumothorax")]),
        (
            "Right lower lobe nodule, 8 mm.",
            "Right lower lobe nodule, 1.2 cm.",
            [("severity", "pulmonary nodule")],
        ),
        ("Increased left effusion.", "Stable left effusion.", [("comparison_added", "pleural effusion")]),
        (
            "Left pleural effusion.",
            "New left pleural effusion.",
            [("comparison_omitted", "pleural effusion")],
        ),
        ("Possible pneumonia.", "Pneumonia.", [("certainty", "pneumonia")]),
    ],
)
def test_each_category_is_detected(candidate, reference, expected):
    assert _categories(candidate, reference) == expected


@pytest.mark.parametrize(
    ("candidate", "reference"),
    [
        ("No pneumothorax.", "There is no pneumothorax."),
        ("Small right PTX.", "Small right pneumothorax."),
        ("Heart size is enlarged.", "Cardiomegaly."),
        ("NO PNEUMOTHORAX.   SMALL LEFT EFFUSION.", "Small left effusion. No pneumothorax."),
        ("Findings: Left effusion.\nIMPRESSION: Left effusion.", "Left pleural effusion."),
        ("8 mm nodule in the right lower lobe.", "Right lower lobe nodule measuring 0.8 cm."),
        ("Consolidation in the left lower lobe.", "Left lower lobe opacity."),
    ],
)
def test_wording_only_differences_produce_no_discrepancy(candidate, reference):
    assert compare(candidate, reference).discrepancies == ()


def test_sizes_within_tolerance_are_not_a_severity_discrepancy():
    assert _categories("5 mm nodule in the left upper lobe.", "6 mm nodule in the left upper lobe.") == []
    assert _categories("Nodule measuring 10 mm.", "Nodule measuring 11 mm.") == []


def test_a_finding_in_findings_and_impression_counts_once():
    result = compare("Findings: Right pneumothorax.\nIMPRESSION: Right pneumothorax.", "No pneumothorax.")
    assert [d.category for d in result.discrepancies] == ["false_finding"]


def test_spans_point_at_the_exact_sentences_in_the_original_strings():
    candidate = "FINDINGS:\r\n  Heart normal.  Left pleural effusion.\nIMPRESSION: effusion."
    reference = "Findings: Right pleural effusion."
    (discrepancy,) = compare(candidate, reference).discrepancies
    c_start, c_end = discrepancy.candidate_span
    r_start, r_end = discrepancy.reference_span
    assert "Left pleural effusion" in candidate[c_start:c_end]
    assert candidate[c_start:c_end] == discrepancy.candidate_text
    assert reference[r_start:r_end] == discrepancy.reference_text == "Right pleural effusion."


def test_a_side_without_a_sentence_has_a_null_span():
    (discrepancy,) = compare("Lungs are clear.", "Small left apical pneumothorax.").discrepancies
    assert discrepancy.candidate_span is None and discrepancy.candidate_text is None
    assert discrepancy.to_dict()["candidate_span"] is None


def test_explanations_quote_the_words():
    (discrepancy,) = compare("Left pleural effusion.", "Right pleural effusion.").discrepancies
    assert discrepancy.explanation == (
        'The AI draft reports the pleural effusion on the left ("Left pleural effusion"); '
        'the signed report places it on the right ("Right pleural effusion").'
    )


def test_comparison_added_explains_stable_versus_increased():
    (discrepancy,) = compare("Increased left effusion.", "Stable left effusion.").discrepancies
    assert "increased" in discrepancy.explanation and "unchanged" in discrepancy.explanation


def test_significance_follows_criticality():
    missed_ptx = compare("Lungs clear.", "Small pneumothorax.").discrepancies[0]
    missed_granuloma = compare("Lungs clear.", "Calcified granuloma.").discrepancies[0]
    assert missed_ptx.significance == "significant"
    assert missed_granuloma.significance == "minor"


@pytest.mark.parametrize(
    ("candidate", "reference", "score"),
    [
        ("No pneumothorax.", "No pneumothorax.", "1"),
        ("Lungs clear.", "Calcified granuloma.", "1"),
        ("Lungs clear.", "Calcified granuloma. Mild degenerative change. Small hiatal hernia.", "2a"),
        ("Lungs clear.", "Small left pleural effusion.", "2b"),
        ("Lungs clear.", "Small left pleural effusion. Left lower lobe consolidation.", "3a"),
        ("Lungs clear.", "Small left pneumothorax.", "3b"),
        ("Left pneumothorax.", "Right pneumothorax.", "3b"),
        ("Right pneumothorax.", "No pneumothorax.", "3b"),
    ],
)
def test_radpeer_rules(candidate, reference, score):
    assert compare(candidate, reference).radpeer == score


def test_suggest_radpeer_with_no_discrepancies_is_concur():
    assert suggest_radpeer([]) == "1"


def test_to_dict_has_exactly_the_documented_shape():
    result = compare("Left pleural effusion. Possible pneumonia.", "Right pleural effusion. Pneumonia.")
    payload = json.loads(json.dumps(result.to_dict()))
    assert set(payload) == {"discrepancies", "radpeer", "scores"}
    assert payload["radpeer"] in {"1", "2a", "2b", "3a", "3b"}
    for item in payload["discrepancies"]:
        assert set(item) == {
            "category",
            "significance",
            "finding",
            "candidate_text",
            "candidate_span",
            "reference_text",
            "reference_span",
            "explanation",
            "candidate_marks",
            "reference_marks",
            "candidate_segments",
            "reference_segments",
        }
        assert item["category"] in CATEGORIES
        assert item["significance"] in {"significant", "minor"}
    scores = payload["scores"]
    assert 0 <= scores["rouge_l"] <= 1 and 0 <= scores["chrf"] <= 1
    assert scores["matched_findings"] == 2
    assert scores["green_like"] == pytest.approx(2 / 3, abs=1e-3)


def test_results_are_frozen():
    result = compare("Left effusion.", "Right effusion.")
    assert isinstance(result, Comparison)
    assert isinstance(result.discrepancies[0], Discrepancy)
    with pytest.raises(AttributeError):
        result.radpeer = "1"


def test_specialties_beyond_chest_are_compared():
    assert _categories("No acute intracranial abnormality.", "Acute left subdural hematoma.") == [
        ("missed_finding", "subdural hematoma")
    ]
    assert _categories("Normal appendix.", "Acute appendicitis.") == [("missed_finding", "appendicitis")]
    assert _categories("Fracture of the left radius.", "Fracture of the right radius.") == [
        ("location", "fracture")
    ]
    assert _categories("Irregular mass in the left breast, 9 mm.", "Irregular left breast mass, 18 mm.") == [
        ("severity", "breast mass")
    ]


def test_leaving_out_stability_is_a_minor_comparison_omission():
    (discrepancy,) = compare("Cardiomegaly.", "Cardiomegaly, unchanged.").discrepancies
    assert (discrepancy.category, discrepancy.significance) == ("comparison_omitted", "minor")


def test_a_missed_finding_is_not_also_a_comparison_omission():
    assert _categories("Lungs clear.", "New right pneumothorax.") == [("missed_finding", "pneumothorax")]


@pytest.mark.parametrize(
    ("candidate", "reference"),
    [
        ("Disc herniation at L4-L5.", "Disc herniation at L5-S1."),
        ("Fracture of the right sixth rib.", "Fracture of the right fourth rib."),
        ("Hepatic lesion in segment 7.", "Hepatic lesion in segment 2."),
        ("Diverticulitis of the sigmoid colon.", "Diverticulitis of the descending colon."),
    ],
)
def test_anatomical_levels_and_segments_are_compared(candidate, reference):
    assert [d.category for d in compare(candidate, reference).discrepancies] == ["location"]


def test_words_shared_across_specialties_keep_their_context():
    # "bone marrow edema" is a bone finding, not pulmonary edema; "small vessel" is not a severity.
    assert (
        _categories("Bone marrow edema in the left femoral condyle.", "Left femoral condyle bone bruise.")
        == []
    )
    assert (
        _categories(
            "Moderate small vessel ischemic change.", "Moderate chronic microvascular ischemic change."
        )
        == []
    )


def test_a_second_lesion_is_not_hidden_by_a_related_broader_term():
    result = compare(
        "Enhancing lesion in the left parietal lobe, suspicious for metastasis.",
        "Enhancing mass in the left parietal lobe. Enhancing lesion in the right cerebellar hemisphere.",
    )
    found = [(d.category, d.finding) for d in result.discrepancies]
    assert ("missed_finding", "mass") in found
    assert ("certainty", "mass") in found
