"""The shipped default model: its card matches its files, and it drafts what its card claims."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from audit.log import SYSTEM
from inference import registry, runtime
from inference.compare import compare
from inference.prompts import build_prompt
from inference.training.evaluate import GreedyDecoder
from portal.records.models import ModelStatus, Specialty

ARTIFACTS = Path(settings.BASE_DIR) / "inference" / "artifacts"
#: The serving default (docs/models.md): 1.2.0's weights in the fused static-cache graph. 1.2.0 (the
#: trained export, its parent) and the earlier versions stay shipped so that the drafts they wrote stay
#: reproducible.
SHIPPED = ARTIFACTS / "concordance-draft-1.2.1"
PARENT = ARTIFACTS / "concordance-draft-1.2.0"
#: What each shipped version was built from: demo reports read, training threads, steps.
BUILDS = {
    "1.0.0": (6000, 2, 3000),
    "1.1.0": (12000, 1, 6000),
    "1.1.1": (12000, 1, 6000),
    "1.2.0": (24000, 1, 12000),
    "1.2.1": (24000, 1, 12000),
}
FILES = {"model.onnx", "config.json", "tokenizer.json", "generation_config.json", "card.json"}

# A clean chest radiograph finding set, written as the upstream imaging AI sends it.
INPUTS = {
    "specialty": "chest",
    "modality": "CR",
    "body_part": "CHEST",
    "study_description": "XR CHEST 2 VIEWS",
    "indication": "Shortness of breath.",
    "prior_report_accession": None,
    "findings": [
        {
            "concept": "pleural_effusion",
            "display": "pleural effusion",
            "laterality": "left",
            "location": None,
            "size_mm": None,
            "severity": "small",
            "change": None,
            "certainty": "definite",
            "critical": False,
        }
    ],
    "negatives": [{"concept": "pneumothorax", "display": "pneumothorax"}],
}


def _card(directory: Path = SHIPPED) -> dict:
    return json.loads((directory / "card.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("version", sorted(BUILDS))
def test_every_shipped_card_matches_its_files(version):
    directory = ARTIFACTS / f"concordance-draft-{version}"
    card = _card(directory)
    assert {p.name for p in directory.iterdir()} == FILES
    for name in FILES - {"card.json"}:
        assert card["files"][name] == registry.file_sha256(directory / name), name
    assert card["name"] == "concordance-draft" and card["version"] == version
    assert card["architecture"] == "causal" and card["quantisation"] == "fp32"
    reports, threads, steps = BUILDS[version]
    assert card["lineage"]["reports_read"] == reports
    assert card["seed"] == 7 and card["threads"] == threads and card["settings"]["max_steps"] == steps


def test_nothing_else_is_shipped():
    shipped = {d.name for d in ARTIFACTS.iterdir() if not d.name.startswith(".")}
    assert shipped == {f"concordance-draft-{version}" for version in BUILDS}


def test_one_model_serves_every_specialty_and_the_kinds_the_corpus_supports():
    card = _card()
    assert card["specialties"] == sorted(Specialty.values)
    assert card["kinds"] == ["report_draft", "history_summary", "prior_comparison"]
    assert card["lineage"]["specialties"] == sorted(Specialty.values)
    assert 2_500_000 <= card["settings"]["parameters"] <= 4_000_000
    assert 8_000_000 <= (SHIPPED / "model.onnx").stat().st_size <= 20_000_000
    assert 0.0 < card["metrics"]["facts_right_share"] <= 1.0


@pytest.mark.django_db
def test_it_registers_as_the_active_model_and_drafts_a_report():
    newest, parent, *older = [
        m for m in registry.register_builtin_models(context=SYSTEM) if m.name == "concordance-draft"
    ]
    assert [m.version for m in (newest, parent, *older)] == ["1.2.1", "1.2.0", "1.1.1", "1.1.0", "1.0.0"]
    assert {m.status for m in (parent, *older)} == {ModelStatus.RETIRED}
    assert newest.parent == parent and newest.card["graph"] == "gpt2-fused-gqa-static-cache-last4"
    # The variant's card shows its own drafts (inference.training.variants), not its parent's.
    assert len(newest.card["samples"]["report_draft"]) == 2
    mv = newest
    assert mv.status == ModelStatus.ACTIVE and set(mv.artifacts) == FILES
    assert registry.active_version_for(specialty="breast", kind="report_draft") == mv
    runtime.clear_cache()
    (draft,) = runtime.generate(mv, "report_draft", [INPUTS])
    assert draft.text.startswith("FINDINGS:") and "IMPRESSION:" in draft.text
    # The pipeline's evaluation loop on the trained export and the serving runtime on the fused graph
    # of the same weights agree on the text.
    limit = mv.generation_defaults["max_new_tokens"]
    assert GreedyDecoder(PARENT).generate(build_prompt("report_draft", INPUTS), limit).strip() == draft.text
    reference = "FINDINGS:\nSmall left pleural effusion. No pneumothorax.\n\nIMPRESSION:\n"
    reference += "Small left pleural effusion."
    assert not compare(draft.text, reference).significant, draft.text
