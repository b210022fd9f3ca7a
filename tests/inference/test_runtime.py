"""The runtime: greedy text identical to transformers whatever the batch; one verified session a process."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from audit.log import SYSTEM
from audit.models import AuditEvent
from inference import registry, runtime
from inference.prompts import PromptError, build_prompt
from inference.registry import ArtifactIntegrityError
from inference.runtime.engine import DecoderEngine, TextEngine
from inference.runtime.seq2seq import Seq2SeqEngine
from portal.records.models import ModelVersion
from tests.model_fixtures import TINY_MAX_NEW_TOKENS, build_tiny_model

pytestmark = pytest.mark.django_db

FINDINGS = [
    {"concept": "pleural_effusion", "display": "pleural effusion", "laterality": "left", "size_mm": 12},
    {"concept": "pneumothorax", "laterality": "right", "critical": True},
    {"concept": "nodule", "location": "right upper lobe", "size_mm": 7, "change": "new"},
    {"concept": "cardiomegaly", "severity": "mild"},
]


def varied_inputs(count: int, seed: int = 7) -> list[dict]:
    """Inputs of different lengths (so batches are padded) and contents."""
    rng = random.Random(seed)
    return [
        {
            "specialty": "chest",
            "modality": rng.choice(["CR", "CT"]),
            "indication": " ".join(
                rng.choice(["cough", "fever", "trauma", "dyspnoea"]) for _ in range(i % 5)
            ),
            "prior_report_accession": "ACC9" if i % 3 == 0 else None,
            "findings": rng.sample(FINDINGS, k=i % (len(FINDINGS) + 1)),
            "negatives": ["consolidation"] * (i % 2),
        }
        for i in range(count)
    ]


def test_it_generates_one_text_per_input_with_counts(tiny_model_version):
    generations = runtime.generate(tiny_model_version, "report_draft", varied_inputs(3))
    assert len(generations) == 3
    for generation in generations:
        assert isinstance(generation, runtime.Generation)
        assert generation.prompt_tokens > 0
        assert 1 <= generation.completion_tokens <= TINY_MAX_NEW_TOKENS
        assert generation.latency_ms >= 0
    assert runtime.generate(tiny_model_version, "report_draft", []) == []


def test_answers_end_at_eos_or_at_the_token_limit(tiny_model_version):
    generations = runtime.generate(tiny_model_version, "report_draft", varied_inputs(16))
    lengths = {g.completion_tokens for g in generations}
    # The tiny model is built so that some answers stop early: batches hold rows of different lengths.
    assert TINY_MAX_NEW_TOKENS in lengths and min(lengths) < TINY_MAX_NEW_TOKENS


@pytest.mark.parametrize("batch_size", [1, 2, 5, 32])
def test_text_does_not_depend_on_the_batch(tiny_model_version, batch_size, settings):
    inputs = varied_inputs(12)
    alone = [runtime.generate(tiny_model_version, "report_draft", [x])[0] for x in inputs]
    settings.INFERENCE_BATCH_SIZE = batch_size
    together = runtime.generate(tiny_model_version, "report_draft", inputs)
    # Other company: the same inputs shuffled, and mixed with strangers.
    order = list(range(len(inputs)))
    random.Random(batch_size).shuffle(order)
    strangers = varied_inputs(5, seed=99)
    mixed = runtime.generate(tiny_model_version, "report_draft", strangers + [inputs[i] for i in order])[
        len(strangers) :
    ]
    assert [g.text for g in together] == [g.text for g in alone]
    assert [(g.text, g.completion_tokens) for g in mixed] == [
        (alone[i].text, alone[i].completion_tokens) for i in order
    ]


def test_the_engine_pads_and_masks_a_batch_like_each_prompt_alone(tiny_model_version):
    engine = runtime.load(tiny_model_version)
    prompts = engine.encode([build_prompt("report_draft", x) for x in varied_inputs(9)])
    alone = [engine.generate_ids([p], TINY_MAX_NEW_TOKENS)[0] for p in prompts]
    assert engine.generate_ids(prompts, TINY_MAX_NEW_TOKENS) == alone
    assert engine.generate_ids(prompts[::-1], TINY_MAX_NEW_TOKENS) == alone[::-1]


def test_text_is_identical_to_transformers_greedy_generate(tiny_model_version):
    torch = pytest.importorskip("torch")  # the train extra; installed by make test
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    files = build_tiny_model()
    model = GPT2LMHeadModel.from_pretrained(files.torch_dir).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(files.torch_dir)
    inputs = varied_inputs(10)
    ours = runtime.generate(tiny_model_version, "report_draft", inputs)
    for x, generation in zip(inputs, ours, strict=True):
        encoded = tokenizer(build_prompt("report_draft", x), return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**encoded, max_new_tokens=TINY_MAX_NEW_TOKENS, do_sample=False)
        new_tokens = output[0, encoded["input_ids"].shape[1] :].tolist()
        assert generation.prompt_tokens == encoded["input_ids"].shape[1]
        assert generation.completion_tokens == len(new_tokens)
        assert generation.text == tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def test_one_session_per_version_per_process_verified_once(tiny_model_version, monkeypatch):
    calls = []
    real_verify = runtime.verify_artifacts
    monkeypatch.setattr(runtime, "verify_artifacts", lambda mv: (calls.append(mv.pk), real_verify(mv)))
    first = runtime.load(tiny_model_version)
    runtime.generate(tiny_model_version, "report_draft", varied_inputs(2))
    same_row_again = ModelVersion.objects.get(pk=tiny_model_version.pk)
    assert runtime.load(same_row_again) is first
    assert calls == [tiny_model_version.pk]
    assert first.threads == 1 and first.providers == ["CPUExecutionProvider"]


def test_sessions_are_loaded_once_under_concurrent_first_calls(tiny_model_version):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        engines = list(pool.map(lambda _: runtime.load(tiny_model_version), range(8)))
    assert len({id(e) for e in engines}) == 1


def test_a_tampered_model_refuses_to_run_and_is_audited(tiny_copy):
    mv = registry.model_version_register_directory(directory=tiny_copy, actor=None, context=SYSTEM)
    onnx = tiny_copy / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[-10] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError):
        runtime.generate(mv, "report_draft", varied_inputs(1))
    assert AuditEvent.objects.filter(action="model_version.integrity_failure", object_id=str(mv.pk)).exists()
    with pytest.raises(ArtifactIntegrityError):  # and keeps refusing: nothing was cached
        runtime.generate(mv, "report_draft", varied_inputs(1))


def test_versions_without_artifacts_or_of_other_architectures_are_not_runnable(tiny_copy):
    elsewhere = ModelVersion.objects.create(name="vendor", version="3")
    with pytest.raises(runtime.ModelNotRunnable, match="no local artifacts"):
        runtime.generate(elsewhere, "report_draft", varied_inputs(1))
    seq2seq = registry.model_version_register_directory(
        directory=tiny_copy, actor=None, context=SYSTEM, architecture="seq2seq", name="t5ish"
    )
    with pytest.raises(runtime.ModelNotRunnable, match="encoder-decoder"):  # a decoder's files
        runtime.generate(seq2seq, "report_draft", varied_inputs(1))
    other = registry.model_version_register_directory(
        directory=tiny_copy, actor=None, context=SYSTEM, name="other", architecture="seq2seq"
    )
    ModelVersion.objects.filter(pk=other.pk).update(architecture="diffusion")
    other.refresh_from_db()
    with pytest.raises(runtime.ModelNotRunnable, match="serves causal and seq2seq"):
        runtime.generate(other, "report_draft", varied_inputs(1))


def test_a_kind_the_model_does_not_serve_is_refused(tiny_copy):
    mv = registry.model_version_register_directory(
        directory=tiny_copy, actor=None, context=SYSTEM, kinds=["report_draft"]
    )
    with pytest.raises(runtime.ModelNotRunnable, match="patient_letter"):
        runtime.generate(mv, "patient_letter", varied_inputs(1))


@pytest.mark.parametrize(
    ("kind", "inputs"),
    [
        ("haiku", {}),
        ("report_draft", {"findings": "pneumothorax"}),
        ("report_draft", {"findings": [{"laterality": "left"}]}),
        ("report_draft", {"indication": "x" * 10_000}),
        ("report_draft", {"findings": [{"concept": "nodule"}] * 1000}),
    ],
)
def test_bad_inputs_are_refused_before_any_model_work(tiny_model_version, kind, inputs, monkeypatch):
    monkeypatch.setattr(runtime, "load", lambda mv: pytest.fail("the model must not be loaded"))
    with pytest.raises((PromptError, runtime.ModelNotRunnable)):
        runtime.generate(tiny_model_version, kind, [inputs])


def test_a_prompt_longer_than_the_context_window_is_refused(tiny_model_version):
    long = {"findings": [{"concept": f"finding {i}", "location": "x" * 200} for i in range(20)]}
    with pytest.raises(runtime.PromptTooLong):
        runtime.generate(tiny_model_version, "report_draft", [*varied_inputs(2), long])


def test_hostile_text_is_just_input(tiny_model_version):
    hostile = {"indication": "<script>alert(1)</script>'; DROP TABLE records_aioutput;--\u202e\x00"}
    (generation,) = runtime.generate(tiny_model_version, "report_draft", [hostile])
    assert generation.completion_tokens >= 1


def test_generation_settings_are_the_provenance_of_every_output(tiny_model_version):
    values = runtime.generation_settings(tiny_model_version)
    assert values["decoding"] == "greedy"
    assert values["max_new_tokens"] == TINY_MAX_NEW_TOKENS
    assert values["threads"] == 1 and values["providers"] == ["CPUExecutionProvider"]
    assert values["artifact_sha256"] == tiny_model_version.artifact_sha256
    assert values["runtime"].startswith("concordance-greedy/") and values["onnxruntime"]


def test_the_runtime_does_not_import_torch_or_optimum():
    code = (
        "import sys, django; django.setup();"
        "import inference.runtime;"
        "bad = [m for m in ('torch', 'optimum', 'transformers') if m in sys.modules];"
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    result = subprocess.run(  # our own interpreter and code
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_engine_base_class_is_abstract_and_its_engines_are_complete(tiny_model_version):
    directory = registry.artifact_dir_of(tiny_model_version)
    with pytest.raises(TypeError, match="abstract"):
        TextEngine(directory)

    class HalfEngine(TextEngine):  # implements budget only: still abstract
        def budget(self, prompt_tokens: int, max_new_tokens: int) -> int:
            return max_new_tokens

    with pytest.raises(TypeError, match="generate_ids"):
        HalfEngine(directory)
    assert DecoderEngine.__abstractmethods__ == frozenset()
    assert Seq2SeqEngine.__abstractmethods__ == frozenset()
    engine = runtime.ENGINES["causal"](directory)  # the served engine still instantiates and runs
    assert isinstance(engine, TextEngine)
    assert engine.budget(4, 2) == 2
