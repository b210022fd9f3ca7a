"""Issue #19, the engine's part: one finding, one story; exact words marked; self-contradiction.

Each case is shaped like a demo case the committee found self-contradictory (ids in the test names).
"""

from __future__ import annotations

import pytest

from inference.compare import compare


def _marked(text: str, marks: tuple[tuple[int, int], ...]) -> list[str]:
    return [text[start:end] for start, end in marks]


def test_case_1995_a_missed_large_left_effusion_is_one_significant_miss_marked_on_its_words():
    draft = "FINDINGS: The lungs are clear. No pleural effusion. No pneumothorax.\nIMPRESSION: Normal chest."
    signed = (
        "FINDINGS: Large left pleural effusion. No pneumothorax.\nIMPRESSION: Large left pleural effusion."
    )
    result = compare(draft, signed)
    assert [(d.category, d.significance, d.finding) for d in result.discrepancies] == [
        ("missed_finding", "significant", "pleural effusion")
    ]
    missed = result.discrepancies[0]
    # Both repeats in the signed report are marked, and the draft's denial is marked too.
    assert _marked(signed, missed.reference_marks) == ["Large left pleural effusion"] * 2
    assert _marked(draft, missed.candidate_marks) == ["No pleural effusion"]


def test_case_1971_a_nodule_paired_for_size_is_not_also_a_false_finding():
    draft = (
        "FINDINGS: 9 mm nodule in the right upper lobe.\n"
        "IMPRESSION: 1. Right upper lobe pulmonary nodule, 9 mm. 2. No pneumothorax."
    )
    signed = "FINDINGS: 16 mm nodule in the right upper lobe.\nIMPRESSION: 16 mm right upper lobe nodule."
    result = compare(draft, signed)
    assert [(d.category, d.finding) for d in result.discrepancies] == [("severity", "pulmonary nodule")]
    size = result.discrepancies[0]
    assert _marked(draft, size.candidate_marks) == ["9 mm"]
    assert _marked(signed, size.reference_marks) == ["16 mm"]


def test_case_1994_one_breast_cyst_on_the_wrong_side_is_listed_once_and_is_significant():
    draft = (
        "FINDINGS: Simple cyst in the right breast at 2 o'clock.\n"
        "IMPRESSION: Benign right breast cyst. BI-RADS 2."
    )
    signed = (
        "FINDINGS: Simple cyst in the left breast at 2 o'clock.\n"
        "IMPRESSION: Benign left breast cyst. BI-RADS 2."
    )
    result = compare(draft, signed)
    assert [(d.category, d.significance, d.finding) for d in result.discrepancies] == [
        ("location", "significant", "breast cyst")
    ]
    side = result.discrepancies[0]
    assert set(_marked(draft, side.candidate_marks)) == {"right"}
    assert set(_marked(signed, side.reference_marks)) == {"left"}


@pytest.mark.parametrize(
    "draft",
    [
        "FINDINGS: New small right pleural effusion.",
        "FINDINGS: Small right pleural effusion which is new.",
        "FINDINGS: Small right pleural effusion, not present on the prior study, which is new.",
    ],
)
def test_case_1970_a_change_word_anywhere_in_the_sentence_is_not_an_omitted_comparison(draft):
    signed = "FINDINGS: Small right pleural effusion, new since the prior examination."
    assert [d.category for d in compare(draft, signed).discrepancies] == []


def test_case_1978_a_draft_that_asserts_and_negates_hydrocephalus_is_flagged_as_contradiction():
    draft = (
        "FINDINGS: New mild hydrocephalus. There is no hydrocephalus.\nIMPRESSION: New mild hydrocephalus."
    )
    signed = "FINDINGS: Moderate hydrocephalus, new since the prior.\nIMPRESSION: New moderate hydrocephalus."
    result = compare(draft, signed)
    categories = {(d.category, d.significance) for d in result.discrepancies}
    assert ("internal_contradiction", "significant") in categories
    assert ("severity", "minor") in categories or ("severity", "significant") in categories
    contradiction = next(d for d in result.discrepancies if d.category == "internal_contradiction")
    assert _marked(draft, contradiction.candidate_marks) == [
        "New mild hydrocephalus",
        "There is no hydrocephalus",
        "New mild hydrocephalus",
    ]
    # The signed report's statement is quoted beside the contradiction, so the reader sees which holds.
    assert contradiction.reference_text == "Moderate hydrocephalus, new since the prior."
    assert "the signed report reports it" in contradiction.explanation


@pytest.mark.parametrize(
    "draft",
    [
        "No new pleural effusion. Small pleural effusion.",
        "Lungs are clear. Minimal left basilar opacity.",
        "No large pleural effusion. Trace right pleural effusion.",
        "Resolution of the right pneumothorax. Tiny left pneumothorax.",
    ],
)
def test_narrowed_or_normal_phrase_negations_are_not_contradictions(draft):
    assert "internal_contradiction" not in {d.category for d in compare(draft, draft).discrepancies}


@pytest.mark.parametrize(
    "draft",
    [
        "Lesion in the humeral head. No osseous Bankart lesion.",
        "Large intrasellar mass lesion. There is no enhancing intraaxial or extraaxial mass lesion.",
        "Large inferior bony Bankart lesion. There is no discontinuity or demonstrated HAGL lesion.",
    ],
)
def test_a_denial_qualified_by_words_the_statement_lacks_is_about_another_thing(draft):
    assert "internal_contradiction" not in {d.category for d in compare(draft, draft).discrepancies}


@pytest.mark.parametrize(
    "draft",
    [
        "Left hip fracture. No left hip fracture.",
        "Effusion. No pneumothorax or effusion.",
        "Hydronephrosis. There is no evidence of hydronephrosis.",
    ],
)
def test_a_denial_with_only_shared_or_filler_words_still_contradicts(draft):
    assert "internal_contradiction" in {d.category for d in compare(draft, draft).discrepancies}


def test_a_laterality_error_on_an_incidental_paired_organ_finding_is_still_significant():
    result = compare("Simple cyst in the right kidney.", "Simple cyst in the left kidney.")
    assert [(d.category, d.significance) for d in result.discrepancies] == [("location", "significant")]


@pytest.mark.parametrize(
    ("draft", "signed", "category", "draft_words", "signed_words"),
    [
        ("Small left pleural effusion.", "Small right pleural effusion.", "location", ["left"], ["right"]),
        ("Mild cardiomegaly.", "Severe cardiomegaly.", "severity", ["Mild"], ["Severe"]),
        (
            "Possible right lower lobe pneumonia.",
            "Right lower lobe pneumonia.",
            "certainty",
            ["Possible"],
            [],
        ),
        (
            "Stable left pleural effusion.",
            "Increased left pleural effusion.",
            "comparison_omitted",
            ["Stable"],
            ["Increased"],
        ),
    ],
)
def test_marks_cover_the_differing_words(draft, signed, category, draft_words, signed_words):
    found = next(d for d in compare(draft, signed).discrepancies if d.category == category)
    assert _marked(draft, found.candidate_marks) == draft_words
    if signed_words:
        assert _marked(signed, found.reference_marks) == signed_words
    else:
        # The definite side marks the finding itself, so the quote link still lands on words.
        assert _marked(signed, found.reference_marks) == ["Right lower lobe pneumonia"]


def test_several_marks_in_one_sentence_each_land_on_their_own_words():
    draft = "Small left pleural effusion and large right pneumothorax."
    signed = "Small right pleural effusion and small right pneumothorax."
    result = compare(draft, signed)
    by_category = {d.category: d for d in result.discrepancies}
    assert _marked(draft, by_category["location"].candidate_marks) == ["left"]
    assert _marked(draft, by_category["severity"].candidate_marks) == ["large"]
    # Both marks sit inside one sentence of the draft.
    assert by_category["location"].candidate_span == by_category["severity"].candidate_span


def test_every_mark_lies_inside_its_text_and_to_dict_carries_it():
    draft = (
        "FINDINGS: Left effusion. New right pneumothorax.\n"
        "IMPRESSION: 1. Left effusion. 2. Right pneumothorax."
    )
    signed = "FINDINGS: Right effusion.\nIMPRESSION: Right effusion. No pneumothorax."
    result = compare(draft, signed)
    assert result.discrepancies
    for item in result.discrepancies:
        for text, marks in ((draft, item.candidate_marks), (signed, item.reference_marks)):
            assert all(0 <= start < end <= len(text) for start, end in marks)
        payload = item.to_dict()
        assert payload["candidate_marks"] == [list(m) for m in item.candidate_marks]
        assert payload["reference_marks"] == [list(m) for m in item.reference_marks]


def test_overlapping_marks_are_cut_into_named_segments_that_every_discrepancy_can_link_to():
    draft = "Left pleural effusion. No left pleural effusion."
    result = compare(draft, "Right pleural effusion.")
    by_category = {d.category: d for d in result.discrepancies}
    contradiction, location = by_category["internal_contradiction"], by_category["location"]
    # "Left" is marked by both discrepancies: one segment, one id, shared.
    assert [(s.id, draft[s.start : s.end]) for s in location.candidate_segments] == [
        ("c1", "Left"),
        ("c4", "left"),
    ]
    assert [draft[s.start : s.end] for s in contradiction.candidate_segments] == [
        "Left",
        " pleural effusion",
        "No ",
        "left",
        " pleural effusion",
    ]
    assert {s.id for s in location.candidate_segments} <= {s.id for s in contradiction.candidate_segments}
    payload = location.to_dict()
    assert payload["candidate_segments"][0] == {"id": "c1", "span": [0, 4]}
    assert payload["reference_segments"] == [{"id": "r1", "span": [0, 5]}]


@pytest.mark.parametrize(
    ("draft", "signed", "expected", "draft_words"),
    [
        # The impression restates the draft's nodule on the other side: one nodule, a wrong side.
        (
            "FINDINGS: 9 mm right lower lobe nodule, not seen on prior exams.\n"
            "IMPRESSION: Left lower lobe nodule.",
            "FINDINGS: 9 mm right lower lobe nodule, not seen on prior exams.\n"
            "IMPRESSION: Right lower lobe nodule.",
            [("location", "significant", "pulmonary nodule")],
            ["Left"],
        ),
        # A left finding in the findings and a right one in the impression are not "bilateral".
        (
            "FINDINGS: Left upper lobe collapse.\nIMPRESSION: Right upper lobe collapse.",
            "FINDINGS: Left upper lobe collapse.\nIMPRESSION: Left upper lobe collapse.",
            [("location", "significant", "atelectasis")],
            ["Right"],
        ),
        # An impression that names the finding and a second one keeps the second as its own finding.
        (
            "FINDINGS: Right upper lobe nodule.\n"
            "IMPRESSION: 1. Right upper lobe nodule. 2. Left lower lobe nodule.",
            "FINDINGS: Right upper lobe nodule.\nIMPRESSION: Right upper lobe nodule.",
            [("false_finding", "significant", "pulmonary nodule")],
            ["Left lower lobe nodule"],
        ),
    ],
)
def test_a_finding_restated_in_another_section_tells_one_story(draft, signed, expected, draft_words):
    result = compare(draft, signed)
    assert [(d.category, d.significance, d.finding) for d in result.discrepancies] == expected
    assert _marked(draft, result.discrepancies[0].candidate_marks) == draft_words


def test_a_broader_name_on_the_other_side_of_the_body_is_a_second_finding():
    result = compare("Right breast cyst.", "Simple cyst in the left breast. Right breast cyst.")
    assert [(d.category, d.finding) for d in result.discrepancies] == [("missed_finding", "cyst")]


def test_a_broader_name_beside_the_narrower_one_in_one_report_is_listed_once():
    result = compare("Simple cyst in the right breast. Right breast cyst.", "No breast abnormality.")
    assert [(d.category, d.finding) for d in result.discrepancies] == [("false_finding", "breast cyst")]
    assert len(result.discrepancies[0].candidate_marks) == 2


def test_a_diagnosis_is_not_folded_into_an_observation_paired_with_its_own_name():
    result = compare("Right lower lobe opacity.", "Right lower lobe opacity. Right lower lobe pneumonia.")
    assert [(d.category, d.finding) for d in result.discrepancies] == [("missed_finding", "pneumonia")]


@pytest.mark.parametrize(
    ("draft", "signed", "expected"),
    [
        (
            "Biapical scarring and pleural thickening appear stable.",
            "Stable biapical scarring and stable pleural thickening.",
            [],
        ),
        (
            "Biapical scarring and pleural thickening appear stable.",
            "Biapical scarring and pleural thickening.",
            ["comparison_added", "comparison_added"],
        ),
        # "Stable" said of the normal contours beside a normal heart is no comparison of a finding.
        (
            "Heart size within normal limits, stable mediastinal contours.",
            "Heart size within normal limits.",
            [],
        ),
        (
            "FINDINGS: New bilateral airspace opacity. Bilateral consolidation.",
            "FINDINGS: New bilateral consolidation.",
            [],
        ),
        (
            "Interval enlargement of the small right pleural effusion.",
            "Increased small right pleural effusion.",
            [],
        ),
        (
            "Interval growth of the small right pleural effusion.",
            "Increased small right pleural effusion.",
            [],
        ),
        ("Small right pleural effusion has appeared.", "New small right pleural effusion.", []),
        ("Small right pleural effusion without interval change.", "Stable small right pleural effusion.", []),
        (
            "Small right pleural effusion, unchanged in the interval.",
            "Stable small right pleural effusion.",
            [],
        ),
        ("Small right pleural effusion, not seen on prior exams.", "New small right pleural effusion.", []),
    ],
)
def test_change_words_count_wherever_the_sentence_says_them(draft, signed, expected):
    assert [d.category for d in compare(draft, signed).discrepancies] == expected
