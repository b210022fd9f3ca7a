"""Derived versions: the fused graph (same weights, same drafts) and int8, each a version of its own."""

from __future__ import annotations

import json
import sys

import pytest
from django.core.management import CommandError, call_command

from audit.log import SYSTEM
from inference import registry, runtime
from inference.training.variants import VariantError, VariantRequest, variant_build
from portal.core.errors import InvalidRecord, RecordConflict
from portal.records.models import AIOutput, AIOutputKind, ModelVersion
from tests.inference.test_runtime import varied_inputs
from tests.reinference.conftest import make_cohort  # noqa: F401

pytestmark = pytest.mark.django_db

onnx = pytest.importorskip("onnx")  # the train extra; installed by make test


@pytest.fixture(autouse=True)
def _private_var_dir(settings, tmp_path):
    """Variants are written under VAR_DIR/models: each test gets its own."""
    settings.VAR_DIR = tmp_path / "var"


@pytest.fixture(autouse=True)
def _stored_drafts(request, make_cohort):  # noqa: F811
    """Stored report drafts: the variants are evaluated on their inputs."""
    if "tiny_model_version" in request.fixturenames:
        make_cohort(6, request.getfixturevalue("tiny_model_version"))


def build(parent: ModelVersion, variant: str, version: str) -> ModelVersion:
    request = VariantRequest(model_version=parent, variant=variant, version=version, eval_prompts=6)
    return variant_build(request=request, actor=None, context=SYSTEM)


def test_the_fused_graph_is_its_own_version_and_writes_the_parents_drafts(tiny_model_version):
    fused = build(tiny_model_version, "fused", "0.0.1-fused")
    assert (fused.name, fused.version, fused.parent_id) == (
        tiny_model_version.name,
        "0.0.1-fused",
        tiny_model_version.pk,
    )
    assert fused.artifact_sha256 != tiny_model_version.artifact_sha256
    assert fused.artifacts["tokenizer.json"] == tiny_model_version.artifacts["tokenizer.json"]
    assert fused.card["graph"] == "gpt2-fused-gqa-static-cache-last4" and fused.quantisation == "fp32"
    assert fused.metrics["variant_evaluation"]["identical_to_parent_share"] == 1.0
    inputs = varied_inputs(12)
    assert [g.text for g in runtime.generate(fused, "report_draft", inputs)] == [
        g.text for g in runtime.generate(tiny_model_version, "report_draft", inputs)
    ]


def test_a_variants_card_shows_its_own_drafts_as_samples(tiny_model_version):
    fused = build(tiny_model_version, "fused", "0.0.1-fused")
    samples = fused.card["samples"]["report_draft"]
    latest = list(AIOutput.objects.filter(kind=AIOutputKind.REPORT_DRAFT).order_by("-pk")[:2])
    assert [s["accession"] for s in samples] == [o.study.accession_number for o in latest]
    ours = [g.text for g in runtime.generate(fused, "report_draft", [o.inputs for o in latest])]
    assert [s["output"] for s in samples] == ours
    assert set(fused.card["samples"]) == {"report_draft"}  # none of the parent's samples of other kinds


def test_the_fused_graph_runs_fewer_kernels(tiny_model_version):
    fused = build(tiny_model_version, "fused", "0.0.1-fused")
    count = {
        mv.version: len(onnx.load(str(registry.artifact_dir_of(mv) / "model.onnx")).graph.node)
        for mv in (fused, tiny_model_version)
    }
    assert count["0.0.1-fused"] * 3 < count[tiny_model_version.version]


def test_int8_is_its_own_version_with_its_own_hashes_and_evaluation(tiny_model_version):
    int8 = build(tiny_model_version, "int8", "0.0.1-int8")
    assert int8.quantisation == "int8" and int8.card["quantisation"] == "int8"
    assert int8.artifact_sha256 != tiny_model_version.artifact_sha256
    assert int8.parent_id == tiny_model_version.pk
    evaluation = int8.metrics["variant_evaluation"]
    assert evaluation["prompts"] == 6 and 0 <= evaluation["identical_to_parent_share"] <= 1
    assert runtime.generation_settings(int8)["quantisation"] == "int8"
    ops = {node.op_type for node in onnx.load(str(registry.artifact_dir_of(int8) / "model.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"}
    (generation,) = runtime.generate(int8, "report_draft", varied_inputs(1))
    assert generation.completion_tokens >= 1


def test_the_registry_refuses_to_call_int8_the_same_model(tiny_model_version):
    int8 = build(tiny_model_version, "int8", "0.0.1-int8")
    directory = registry.artifact_dir_of(int8)
    card = json.loads((directory / "card.json").read_text())
    with pytest.raises(RecordConflict):  # the parent's name and version name other bytes
        registry.model_version_register_directory(
            directory=directory, actor=None, context=SYSTEM, version=tiny_model_version.version
        )
    with pytest.raises(InvalidRecord, match="int8"):  # nor may it pass for fp32 under any version
        registry.model_version_register(
            directory=directory,
            name="renamed",
            version="1",
            architecture="causal",
            kinds=["report_draft"],
            specialties=[],
            card=card,
            lineage={},
            metrics={},
            generation_defaults={},
            quantisation="fp32",
            actor=None,
            context=SYSTEM,
        )
    assert not ModelVersion.objects.filter(name="renamed").exists()


@pytest.mark.parametrize("version", ["0.0.1", "../escape", "x" * 80, "<script>"])
def test_bad_or_taken_versions_are_refused_and_nothing_is_written(
    tiny_model_version, version, settings, tmp_path
):
    before = ModelVersion.objects.count()
    with pytest.raises((VariantError, ValueError)):
        build(tiny_model_version, "int8", version)
    assert ModelVersion.objects.count() == before
    models = tmp_path.parent / "models"
    assert not any(p.name.startswith(".") for p in models.glob("*")) if models.exists() else True


def test_an_unknown_variant_or_an_int8_parent_is_refused(tiny_model_version):
    with pytest.raises(VariantError, match="Unknown variant"):
        build(tiny_model_version, "int4", "0.0.1-int4")
    int8 = build(tiny_model_version, "int8", "0.0.1-int8")
    with pytest.raises(VariantError, match="fp32"):
        build(int8, "fused", "0.0.1-int8-fused")


def test_the_command_registers_a_variant_and_refuses_bad_requests(tiny_model_version):
    reference = f"{tiny_model_version.name}:{tiny_model_version.version}"
    call_command("optimise_model", reference, "--variant", "fused", "--version", "0.0.2")
    assert (
        ModelVersion.objects.get(name=tiny_model_version.name, version="0.0.2").parent_id
        == tiny_model_version.pk
    )
    with pytest.raises(CommandError):
        call_command("optimise_model", "nobody:1", "--variant", "fused", "--version", "0.0.3")
    with pytest.raises(CommandError):
        call_command(
            "optimise_model", reference, "--variant", "fused", "--version", "0.0.4", "--eval-prompts", "0"
        )


def test_the_fused_static_cache_graph_writes_what_transformers_writes(tiny_model_version):
    torch = pytest.importorskip("torch")
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    from inference.prompts import build_prompt
    from tests.model_fixtures import TINY_MAX_NEW_TOKENS, build_tiny_model

    fused = build(tiny_model_version, "fused", "0.0.1-fused")
    files = build_tiny_model()
    model = GPT2LMHeadModel.from_pretrained(files.torch_dir).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(files.torch_dir)
    inputs = varied_inputs(8)
    for x, generation in zip(inputs, runtime.generate(fused, "report_draft", inputs), strict=True):
        encoded = tokenizer(build_prompt("report_draft", x), return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**encoded, max_new_tokens=TINY_MAX_NEW_TOKENS, do_sample=False)
        new_tokens = output[0, encoded["input_ids"].shape[1] :].tolist()
        assert generation.text == tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def test_without_stored_drafts_there_is_nothing_to_evaluate_and_nothing_is_written(tiny_copy, tmp_path):
    from portal.records.models import AIOutput

    parent = registry.model_version_register_directory(directory=tiny_copy, actor=None, context=SYSTEM)
    assert not AIOutput.objects.exists()
    with pytest.raises(VariantError, match="No stored report drafts"):
        build(parent, "fused", "0.0.1-fused")
    assert not list((tmp_path / "var").rglob("*.onnx"))
    assert ModelVersion.objects.count() == 1


def test_without_the_train_extra_a_variant_says_to_install_it_and_writes_nothing(
    tiny_model_version, monkeypatch, tmp_path
):
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.delitem(sys.modules, "inference.training.fused_graph", raising=False)  # import it afresh
    reference = f"{tiny_model_version.name}:{tiny_model_version.version}"
    for variant in ("fused", "int8"):
        with pytest.raises(CommandError, match=r"onnx is not installed.*pip install '\.\[train\]'"):
            call_command("optimise_model", reference, "--variant", variant, "--version", f"0.0.9-{variant}")
    assert ModelVersion.objects.count() == 1
    assert not list((tmp_path / "var").rglob("*.onnx"))
