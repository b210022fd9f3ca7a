"""seed_demo with a shipped model: the demo's report drafts are real, reproducible model outputs."""

from __future__ import annotations

import io
import shutil

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from inference import registry, runtime
from portal.demo.synthetic import generate_department
from portal.records.models import AIOutput, GroundTruthLabel, ModelStatus, ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def shipped(tiny_copy, tmp_path, monkeypatch):
    """The tiny model as the one shipped model."""
    root = tmp_path / "artifacts"
    root.mkdir()
    shutil.copytree(tiny_copy, root / "tiny-test-model-0.0.1")
    monkeypatch.setattr(registry, "builtin_artifacts_root", lambda: root)
    return root


def seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", studies=12, seed=5, stdout=out, **options)
    return out.getvalue()


def test_the_demo_drafts_are_written_by_the_shipped_model(shipped):
    output = seed()
    mv = ModelVersion.objects.get(name="tiny-test-model")
    assert mv.status == ModelStatus.ACTIVE
    drafted = AIOutput.objects.filter(model_version=mv).order_by("pk")
    assert drafted.exists() and "drafted by the model" in output
    assert AIOutput.objects.count() == 12  # one draft per study; an empty answer keeps the template
    for draft in drafted:
        assert draft.generation_settings == runtime.generation_settings(mv)
        assert draft.completion_tokens >= 1 and draft.latency_ms >= 0
    # Every stored model draft is what the model writes again for its stored inputs.
    again = runtime.generate(mv, "report_draft", [d.inputs for d in drafted])
    assert [g.text for g in again] == [d.text for d in drafted]


def test_the_ground_truth_labels_are_kept(shipped):
    seed()
    department = generate_department(studies=12, seed=5)
    assert GroundTruthLabel.objects.count() == sum(len(s.perturbations) for s in department.studies)


def test_template_drafts_on_request_and_without_a_shipped_model(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "builtin_artifacts_root", lambda: tmp_path / "nothing")
    with pytest.raises(CommandError, match="No model is shipped"):
        seed(drafts="model")
    seed()  # auto: the template
    assert set(AIOutput.objects.values_list("model_version__name", flat=True)) == {"concordance-template"}


def test_a_second_seed_skips_present_studies_without_drafting_them(shipped, monkeypatch):
    seed()
    monkeypatch.setattr(runtime, "generate", lambda *a: pytest.fail("nothing left to draft"))
    assert "12 already present" in seed()


def test_drafts_from_several_processes_are_the_drafts_of_one(shipped, monkeypatch):
    """The demo drafts in a pool of processes (make demo's start-up time); the texts must not change."""
    from portal.demo.management.commands import seed_demo

    monkeypatch.setattr(seed_demo, "DRAFT_CHUNK", 4)  # 12 studies: three jobs for two processes
    output = seed(draft_processes=2)
    mv = ModelVersion.objects.get(name="tiny-test-model")
    drafted = list(AIOutput.objects.filter(model_version=mv).order_by("pk"))
    assert drafted and "drafted by the model" in output
    again = runtime.generate(mv, "report_draft", [d.inputs for d in drafted])
    assert [g.text for g in again] == [d.text for d in drafted]
    assert [d.completion_tokens for d in drafted] == [g.completion_tokens for g in again]
