"""The shipped default model: registered from inference/artifacts/, runnable, batch-invariant."""

from __future__ import annotations

import pytest

from inference import runtime
from portal.demo.synthetic import generate_department
from portal.records.models import ModelStatus

pytestmark = pytest.mark.django_db


def synthetic_inputs(count: int) -> list[dict]:
    """Inputs of studies the model was not trained on (the demo uses seed 7)."""
    return [s.ai_inputs for s in generate_department(studies=count, seed=31).studies[:count]]


def test_the_shipped_model_is_registered_active_with_its_card(default_model_version):
    mv = default_model_version
    assert mv.status == ModelStatus.ACTIVE and mv.is_runnable
    assert "report_draft" in mv.kinds and mv.architecture == "causal"
    assert mv.card.get("files")  # hashes the card itself recorded, checked at registration


def test_the_shipped_model_writes_the_same_text_alone_and_in_any_batch(default_model_version, settings):
    inputs = synthetic_inputs(16)
    alone = [runtime.generate(default_model_version, "report_draft", [x])[0].text for x in inputs]
    assert all(alone)
    for batch_size in (4, 16):
        settings.INFERENCE_BATCH_SIZE = batch_size
        assert [g.text for g in runtime.generate(default_model_version, "report_draft", inputs[::-1])] == (
            alone[::-1]
        )
