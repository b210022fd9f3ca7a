"""The lexicon files: coverage, required concepts and internal consistency."""

from inference.compare import LEXICON, load_lexicon
from inference.compare.lexicon import LEXICON_DIR, expand_pattern

CHEXPERT = {
    "no_finding": "no finding",
    "enlarged_cardiomediastinum": "enlarged cardiomediastinum",
    "cardiomegaly": "cardiomegaly",
    "lung_lesion": "lung lesion",
    "lung_opacity": "lung opacity",
    "edema": "pulmonary edema",
    "consolidation": "consolidation",
    "pneumonia": "pneumonia",
    "atelectasis": "atelectasis",
    "pneumothorax": "pneumothorax",
    "pleural_effusion": "pleural effusion",
    "pleural_other": "pleural other",
    "fracture": "fracture",
    "support_devices": "support devices",
}


def test_the_lexicon_has_at_least_120_concepts_in_five_specialties():
    assert len(LEXICON.concepts) >= 120
    specialties = {c.specialty for c in LEXICON.concepts.values()}
    assert {"chest", "neuro", "msk", "abdomen", "breast"} <= specialties


def test_all_fourteen_chexpert_observations_are_present():
    for concept_id, name in CHEXPERT.items():
        assert LEXICON.concepts[concept_id].name == name


def test_criticality_matches_clinical_expectations():
    for critical in (
        "pneumothorax",
        "mass",
        "intracranial_hemorrhage",
        "fracture",
        "appendicitis",
        "breast_mass",
    ):
        assert LEXICON.concepts[critical].critical, critical
    for benign in ("granuloma", "degenerative_change"):
        concept = LEXICON.concepts[benign]
        assert not concept.critical and concept.incidental, benign


def test_patterns_expand_alternatives_and_optional_slots():
    assert expand_pattern("heart/cardiac size? is enlarged") == [
        ("heart", "size", "is", "enlarged"),
        ("heart", "is", "enlarged"),
        ("cardiac", "size", "is", "enlarged"),
        ("cardiac", "is", "enlarged"),
    ]


def test_loading_twice_gives_the_same_tables():
    again = load_lexicon(LEXICON_DIR)
    assert again.table == LEXICON.table
