"""Issue #16: the phenomena seen in real reports written by other radiologists, one test each.

Sentences are taken verbatim (or nearly: a side or grade swapped) from the Indiana University chest
X-ray collection and MTSamples (tests/data/compare/real/SOURCES.md), including their "XXXX"
de-identification placeholders.
"""

from __future__ import annotations

import pytest

from inference.compare import analyse, compare


def _assertions(text: str) -> dict[str, str]:
    return {f.concept: f.assertion for f in analyse(text)}


@pytest.mark.parametrize(
    "sentence",
    [
        "The lungs are clear of focal airspace disease, pneumothorax, or pleural effusion.",
        "The lungs are mildly hypoinflated but grossly clear of focal airspace disease, pneumothorax, or "
        "pleural effusion.",
        "Lungs are free of focal airspace disease, pneumothorax or pleural effusion.",
        "No evidence of focal airspace disease, pneumothorax, or pleural effusion.",
        "Without focal airspace disease, pneumothorax, or pleural effusion.",
        "Negative for focal airspace disease, pneumothorax, or pleural effusion.",
        "There is no focal airspace consolidation, pleural effusion or pneumothorax.",
    ],
)
def test_list_negation_opened_by_any_trigger_negates_every_item(sentence):
    found = _assertions(sentence)
    assert found.get("pneumothorax") == "absent"
    assert found.get("pleural_effusion") == "absent"
    assert "present" not in found.values()


def test_list_negation_ends_only_at_a_real_clause_boundary():
    found = analyse("No pneumothorax or pleural effusion; there is a small right pleural effusion.")
    assert [(f.concept, f.assertion) for f in found] == [
        ("pneumothorax", "absent"),
        ("pleural_effusion", "absent"),
        ("pleural_effusion", "present"),
    ]
    assert (
        _assertions("No pneumothorax, but a small right pleural effusion.")["pleural_effusion"] == "present"
    )


@pytest.mark.parametrize(
    "sentence",
    [
        "There are no XXXX of a pleural effusion.",
        "No XXXX of pleural effusion or pneumothorax.",
        "No XXXX XXXX of pleural effusion.",
    ],
)
def test_deidentification_placeholders_inside_a_negation(sentence):
    assert _assertions(sentence)["pleural_effusion"] == "absent"


@pytest.mark.parametrize(
    "sentence",
    [
        "Right lower lobe opacity may represent pneumonia.",
        "Right lower lobe opacity, suspicious for pneumonia.",
        "Right lower lobe opacity concerning for pneumonia.",
        "Right lower lobe pneumonia cannot be excluded.",
        "Question of right lower lobe pneumonia.",
        "Right lower lobe opacity, likely pneumonia.",
        "Probable right lower lobe pneumonia.",
        "Differential includes right lower lobe pneumonia.",
        "Right lower lobe pneumonia versus atelectasis.",
        "Possible right lower lobe pneumonia.",
        "There may be a right lower lobe pneumonia.",
    ],
)
def test_hedges_in_their_many_forms_make_the_diagnosis_possible(sentence):
    assert _assertions(sentence)["pneumonia"] == "possible"


def test_a_hedged_diagnosis_against_a_definite_one_is_a_certainty_discrepancy():
    result = compare("Right lower lobe opacity which may represent pneumonia.", "Right lower lobe pneumonia.")
    assert [d.category for d in result.discrepancies] == ["certainty"]


def test_severity_changed_in_the_impression_only_is_still_a_severity_discrepancy():
    signed = "FINDINGS: The cardiac silhouette is mildly enlarged.\nIMPRESSION: Mild cardiomegaly."
    draft = "FINDINGS: The cardiac silhouette is mildly enlarged.\nIMPRESSION: Severe cardiomegaly."
    assert [d.category for d in compare(draft, signed).discrepancies] == ["severity"]


def test_size_changed_in_one_section_only_is_a_severity_discrepancy():
    signed = "FINDINGS: 8 mm nodule in the right upper lobe.\nIMPRESSION: 8 mm right upper lobe nodule."
    draft = "FINDINGS: 8 mm nodule in the right upper lobe.\nIMPRESSION: 20 mm right upper lobe nodule."
    assert [d.category for d in compare(draft, signed).discrepancies] == ["severity"]


def test_a_finding_removed_from_both_findings_and_impression_is_missed_once():
    signed = (
        "FINDINGS: Small right pleural effusion. No pneumothorax.\nIMPRESSION: Small right pleural effusion."
    )
    draft = "FINDINGS: No pneumothorax.\nIMPRESSION: No acute cardiopulmonary abnormality."
    result = compare(draft, signed)
    assert [(d.category, d.finding) for d in result.discrepancies] == [("missed_finding", "pleural effusion")]
    assert len(result.discrepancies[0].reference_marks) == 2


@pytest.mark.parametrize(
    ("sentence", "change"),
    [
        ("Stable mild cardiomegaly.", "stable"),
        ("Cardiomegaly is unchanged.", "stable"),
        ("Calcified granuloma in the left upper lobe is again seen.", "stable"),
        ("Redemonstrated left pleural effusion.", "stable"),
        ("Resolving right lower lobe pneumonia.", "decreased"),
        ("Improving left basilar atelectasis.", "decreased"),
        ("Interval increase in the left pleural effusion.", "increased"),
        ("Interval development of a right pleural effusion.", "new"),
    ],
)
def test_stability_and_interval_language(sentence, change):
    assert analyse(sentence)[0].change == change


def test_numbered_impressions_are_read_item_by_item():
    found = analyse("IMPRESSION: 1. Cardiomegaly. 2. Small left pleural effusion. 3. No pneumothorax.")
    assert [(f.concept, f.assertion) for f in found] == [
        ("cardiomegaly", "present"),
        ("pleural_effusion", "present"),
        ("pneumothorax", "absent"),
    ]


@pytest.mark.parametrize(
    ("sentence", "laterality"),
    [
        ("Streaky bibasilar opacities.", "bilateral"),
        ("Patchy bilateral airspace disease, right greater than left.", "bilateral"),
        ("Subsegmental atelectasis at the left base.", "left"),
    ],
)
def test_descriptors_do_not_hide_the_finding(sentence, laterality):
    found = [f for f in analyse(sentence) if f.assertion == "present"]
    assert found and found[0].laterality == laterality


def test_several_findings_in_one_sentence_are_each_compared():
    draft = "Small left pleural effusion and left basilar atelectasis, with mild cardiomegaly."
    signed = "Small right pleural effusion and left basilar atelectasis, with mild cardiomegaly."
    assert [(d.category, d.finding) for d in compare(draft, signed).discrepancies] == [
        ("location", "pleural effusion")
    ]


def test_an_opacity_and_the_diagnosis_offered_for_it_are_one_finding():
    result = compare(
        "Left basilar opacity which may represent pneumonia.", "Possible left basilar pneumonia."
    )
    assert result.discrepancies == ()


def test_a_diagnosis_left_out_of_the_draft_is_missed_even_if_the_opacity_is_kept():
    signed = "FINDINGS: There is a right upper lobe opacity.\nIMPRESSION: Right upper lobe pneumonia."
    draft = "FINDINGS: There is a right upper lobe opacity.\nIMPRESSION: Right upper lobe opacity."
    assert [(d.category, d.finding) for d in compare(draft, signed).discrepancies] == [
        ("missed_finding", "pneumonia")
    ]


@pytest.mark.parametrize(
    ("draft", "signed", "expected"),
    [
        ("BI-RADS 2: Benign.", "BI-RADS 4: Suspicious abnormality.", ("severity", "significant")),
        ("ASSESSMENT: BI-RADS Category 3.", "ASSESSMENT: BI-RADS Category 4A.", ("severity", "significant")),
        ("Lung-RADS 2.", "Lung-RADS 4B.", ("severity", "significant")),
        (
            "LI-RADS LR-3 observation in segment 7.",
            "LI-RADS LR-5 observation in segment 7.",
            ("severity", "significant"),
        ),
        ("TI-RADS TR3 nodule.", "TI-RADS TR5 nodule.", ("severity", "significant")),
        ("PI-RADS 2.", "PI-RADS 4.", ("severity", "significant")),
    ],
)
def test_a_changed_assessment_category_is_a_significant_severity_discrepancy(draft, signed, expected):
    found = [d for d in compare(draft, signed).discrepancies if d.finding.endswith("category")]
    assert [(d.category, d.significance) for d in found] == [expected]


def test_the_same_category_in_other_words_is_no_discrepancy():
    assert compare("BI-RADS 2.", "ACR BI-RADS assessment category 2: benign.").discrepancies == ()


@pytest.mark.parametrize(
    ("draft", "signed", "category"),
    [
        # CT: liver segments and three-dimensional measurements.
        (
            "A 2.1 x 1.8 x 1.5 cm hypodense lesion in hepatic segment 7.",
            "A 4.2 x 3.6 x 3.0 cm hypodense lesion in hepatic segment 7.",
            "severity",
        ),
        (
            "A 2.1 x 1.8 x 1.5 cm hypodense lesion in hepatic segment 7.",
            "A 2.1 x 1.8 x 1.5 cm hypodense lesion in hepatic segment 4.",
            "location",
        ),
        # MR: disc levels.
        ("Disc herniation at L4-L5.", "Disc herniation at L5-S1.", "location"),
        # Ultrasound: kidneys are paired organs.
        ("Mild hydronephrosis of the left kidney.", "Mild hydronephrosis of the right kidney.", "location"),
        # Mammography: clock positions and sides.
        ("Mass in the left breast at 2 o'clock.", "Mass in the right breast at 2 o'clock.", "location"),
    ],
)
def test_cross_sectional_and_breast_language(draft, signed, category):
    assert category in {d.category for d in compare(draft, signed).discrepancies}
