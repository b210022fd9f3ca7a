"""Bring your own model: tiny random GPT-2, Llama, Qwen2, Phi-3, Mistral, T5 and BART models.

Each configuration is written here in code (no download), given random weights and a tokenizer built
locally, saved as a Hugging Face directory, then taken through what a hospital does with its own model:
``register_model`` (optimum export), drafting (text byte-identical to transformers' greedy ``generate``
on the same weights, alone and in batches), and a re-inference run over a small cohort that must
reproduce every draft (100%).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.log import SYSTEM
from inference import runtime
from inference.models import ReinferenceRun, RunStatus
from inference.prompts import build_prompt
from inference.reinference import chunks, runs
from inference.reinference.cohort import CohortFilter
from inference.training.external import ExternalRequest, external_model_register
from tests.inference.test_runtime import varied_inputs
from tests.model_fixtures import EOS, PAD, _train_tokenizer
from tests.reinference.conftest import make_cohort  # noqa: F401

torch = pytest.importorskip("torch")  # the train extra; installed by make test
transformers = pytest.importorskip("transformers")

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
MAX_NEW = 12
SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}


def _config(arch: str, vocab: int, eos: int, pad: int):
    """A tiny configuration of ``arch`` (grouped-query attention where the architecture has it)."""
    ids = {"vocab_size": vocab, "eos_token_id": eos, "pad_token_id": pad, "bos_token_id": eos}
    decoder = {**SMALL, "num_key_value_heads": 2, "max_position_embeddings": 512, **ids}
    if arch == "gpt2":
        return transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=512, **ids)
    if arch == "llama":
        return transformers.LlamaConfig(**decoder)
    if arch == "qwen2":
        return transformers.Qwen2Config(**decoder)
    if arch == "mistral":
        return transformers.MistralConfig(**decoder, sliding_window=None)
    if arch == "phi3":
        return transformers.Phi3Config(**decoder)
    if arch == "t5":
        return transformers.T5Config(
            d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=pad, **ids
        )
    return transformers.BartConfig(
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=512,
        decoder_start_token_id=eos,
        forced_eos_token_id=None,
        **ids,
    )


def hospital_model(arch: str, directory: Path):
    """Save a random-weight ``arch`` model with its tokenizer as a Hugging Face directory."""
    from tokenizers import Tokenizer

    directory.mkdir(parents=True)
    _train_tokenizer(directory)
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    eos, pad = tokenizer.token_to_id(EOS), tokenizer.token_to_id(PAD)
    config = _config(arch, tokenizer.get_vocab_size(), eos, pad)
    # Wide random weights: varied answers rather than one token over and over.
    config.initializer_range, config.initializer_factor = 0.3, 15.0
    torch.manual_seed(11)
    auto = (
        transformers.AutoModelForSeq2SeqLM if config.is_encoder_decoder else transformers.AutoModelForCausalLM
    )
    model = auto.from_config(config).eval()
    with torch.no_grad():  # and an end-of-text that random weights do not pick first every time
        model.get_output_embeddings().weight[eos] *= 0.2
    model.save_pretrained(directory, safe_serialization=True)
    transformers.GenerationConfig(
        eos_token_id=eos,
        pad_token_id=pad,
        decoder_start_token_id=getattr(config, "decoder_start_token_id", None),
        max_new_tokens=MAX_NEW,
        do_sample=False,
    ).save_pretrained(directory)
    return model, transformers.PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"))


def transformers_text(model, tokenizer, prompt: str) -> str:
    encoded = tokenizer(prompt, return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        output = model.generate(**encoded, max_new_tokens=MAX_NEW, do_sample=False, num_beams=1)
    start = 1 if model.config.is_encoder_decoder else encoded["input_ids"].shape[1]  # the start token
    return tokenizer.decode(output[0, start:].tolist(), skip_special_tokens=True).strip()


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2", "mistral", "phi3", "t5", "bart"])
def test_a_hospital_model_is_exported_registered_drafts_and_reproduces(arch, tmp_path, settings, make_cohort):  # noqa: F811
    settings.VAR_DIR = tmp_path / "var"
    model, tokenizer = hospital_model(arch, tmp_path / f"hospital-{arch}")
    mv = external_model_register(
        request=ExternalRequest(
            path=tmp_path / f"hospital-{arch}",
            specialties=["chest"],
            name=f"byom-{arch}",
            version="1",
            activate=True,
        ),
        actor=None,
        context=SYSTEM,
    )
    assert mv.architecture == ("seq2seq" if model.config.is_encoder_decoder else "causal")
    assert mv.status == "active" and mv.artifacts["model.onnx"]

    inputs = varied_inputs(6)
    drafts = runtime.generate(mv, "report_draft", inputs)
    expected = [transformers_text(model, tokenizer, build_prompt("report_draft", x)) for x in inputs]
    assert all(expected) and [g.text for g in drafts] == expected
    settings.INFERENCE_BATCH_SIZE = 1
    assert [g.text for g in runtime.generate(mv, "report_draft", inputs)] == expected

    make_cohort(4, mv)
    run = runs.reinference_run_create(
        model_version=mv, cohort=CohortFilter(), chunk_size=2, actor=None, context=SYSTEM
    )
    for chunk in run.chunks.order_by("index").values_list("pk", flat=True):
        chunks.reinference_chunk_process(chunk_id=chunk)
    run = ReinferenceRun.objects.get(pk=run.pk)
    assert run.status == RunStatus.COMPLETED, run.status
    assert (run.total, run.done, run.failed) == (4, 4, 0), [(r.status, r.error) for r in run.results.all()]
    results = list(run.results.all())
    assert len(results) == 4 and all(r.reproduced for r in results)
