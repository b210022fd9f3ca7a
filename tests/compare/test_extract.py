"""Finding extraction: concepts, ConText assertion, laterality, location, size, severity, change."""

import pytest

from inference.compare import analyse


def _one(text, concept):
    found = [f for f in analyse(text) if f.concept == concept]
    assert found, f"{concept} not found in {text!r}: {analyse(text)}"
    return found[0]


def _assertions(text):
    return {f.concept: f.assertion for f in analyse(text)}


def test_a_list_after_no_is_negated_as_a_whole():
    assert _assertions("No pneumothorax, effusion or consolidation.") == {
        "pneumothorax": "absent",
        "pleural_effusion": "absent",
        "consolidation": "absent",
    }


def test_but_and_however_end_the_negation_scope():
    assert _assertions("No pneumothorax but there is a small effusion.")["pleural_effusion"] == "present"
    assert _assertions("No pneumothorax; however, small effusion.")["pleural_effusion"] == "present"


def test_no_change_in_is_a_pseudo_negation_that_reports_stability():
    nodule = _one("No change in the right lower lobe nodule.", "lung_nodule")
    assert (nodule.assertion, nodule.change, nodule.laterality, nodule.site) == (
        "present",
        "stable",
        "right",
        "lower zone",
    )


def test_post_negation_governs_the_preceding_concept_only():
    found = _assertions("Effusion is present, pneumothorax is not seen.")
    assert found == {"pleural_effusion": "present", "pneumothorax": "absent"}


@pytest.mark.parametrize(
    "text",
    [
        "Possible pneumonia.",
        "Findings may represent pneumonia.",
        "Cannot exclude pneumonia.",
        "Suspicious for pneumonia.",
        "Pneumonia cannot be excluded.",
        "Pneumonia is not excluded.",
    ],
)
def test_hedges_make_a_finding_possible(text):
    assert _one(text, "pneumonia").assertion == "possible"


def test_versus_hedges_both_sides():
    assert _assertions("Atelectasis versus pneumonia.") == {
        "atelectasis": "possible",
        "pneumonia": "possible",
    }


def test_synonyms_abbreviations_and_typos_map_to_one_concept():
    for text in ("Small PTX.", "Small pneumothrax.", "Small pnuemothorax.", "Small pneumothoraces."):
        assert _one(text, "pneumothorax").assertion == "present"
    assert _one("The heart size is enlarged.", "cardiomegaly").assertion == "present"


def test_laterality_attaches_to_the_right_noun():
    found = {f.concept: f.laterality for f in analyse("Small left pleural effusion and right pneumothorax.")}
    assert found == {"pleural_effusion": "left", "pneumothorax": "right"}
    assert _one("Pneumothorax on the left.", "pneumothorax").laterality == "left"
    assert _one("Bibasilar opacities.", "lung_opacity").laterality == "bilateral"
    assert _one("Small left and right effusions.", "pleural_effusion").laterality == "bilateral"


def test_laterality_is_ignored_for_concepts_without_sides():
    assert _one("Left cardiomegaly.", "cardiomegaly").laterality is None


def test_sizes_normalise_to_millimetres_and_skip_prior_values():
    nodule = _one("Right lower lobe nodule measuring 2.3 x 1.5 cm, previously 1.5 cm.", "lung_nodule")
    assert nodule.size_mm == 23.0
    assert nodule.change == "increased"
    assert _one("8 mm nodule in the left upper lobe.", "lung_nodule").size_mm == 8.0


def test_severity_and_change_words_are_attached():
    effusion = _one("New moderate right pleural effusion.", "pleural_effusion")
    assert (effusion.severity, effusion.severity_rank, effusion.change) == ("moderate", 2.0, "new")
    assert _one("Right pleural effusion has increased.", "pleural_effusion").change == "increased"
    assert _one("Effusion, decreased from prior.", "pleural_effusion").change == "decreased"


def test_resolution_makes_a_finding_absent_with_a_change():
    ptx = _one("Interval resolution of the left pneumothorax.", "pneumothorax")
    assert (ptx.assertion, ptx.change, ptx.laterality) == ("absent", "resolved", "left")


def test_normal_phrases_are_explicit_negatives():
    assert _one("Heart size is normal.", "cardiomegaly").assertion == "absent"
    assert _one("The lungs are clear.", "lung_opacity").assertion == "absent"


def test_indication_and_comparison_sections_are_not_read():
    text = "INDICATION: rule out pneumothorax.\nCOMPARISON: prior with effusion.\nFINDINGS: Clear lungs."
    assert {f.concept for f in analyse(text)} == {"lung_opacity"}


def test_mentions_quote_their_words_and_sentence():
    text = "Findings: Small left pleural effusion. No pneumothorax."
    effusion = _one(text, "pleural_effusion")
    assert text[effusion.mention_span[0] : effusion.mention_span[1]] == "Small left pleural effusion"
    assert text[effusion.span[0] : effusion.span[1]] == "Small left pleural effusion."
