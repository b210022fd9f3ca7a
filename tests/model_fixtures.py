"""Model fixtures: a tiny random GPT-2 exported with optimum, and the shipped default model, registered.

``tiny_model_version`` is a registered, runnable :class:`ModelVersion` whose artifacts are a tiny
randomly initialised GPT-2 (two layers, 32 wide) with its own byte-level BPE tokenizer, exported with
optimum (text-generation-with-past) exactly as the training pipeline exports real models. The files are
built once per ``$CONCORDANCE_VAR_DIR`` (torch and optimum are needed only to build them) and reused;
the PyTorch weights sit beside the ONNX export so tests can compare the runtime with transformers.

Other test packages use it with ``from tests.model_fixtures import tiny_model_version  # noqa: F401`` in
their conftest.py.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Bump when the recipe changes: the cache directory is named after it.
TINY_RECIPE = "tiny-gpt2-v6"
TINY_NAME = "tiny-test-model"
TINY_VERSION = "0.0.1"
TINY_MAX_NEW_TOKENS = 24
SEED = 1234
EOS = "<|endoftext|>"
PAD = "<pad>"

# A little text in the shape of real prompts and answers, so the BPE merges look like the real thing.
_CORPUS = [
    "specialty: chest",
    "modality: CR",
    "body part: CHEST",
    "study: XR CHEST 2 VIEWS",
    "indication: Cough and fever.",
    "prior: none",
    "prior: available",
    "finding: pleural effusion; laterality=left; size_mm=12 mm; severity=small",
    "finding: pneumothorax; laterality=right; critical",
    "negative: consolidation",
    "FINDINGS: Small left pleural effusion. No pneumothorax.",
    "IMPRESSION: Small left pleural effusion.",
    "The lungs are clear. The heart size is normal. Tube tip 7 cm above the carina.",
    "Dear patient, your scan shows a small amount of fluid around the left lung.",
]


@dataclasses.dataclass(frozen=True)
class TinyModel:
    """Where the tiny model's files are: the ONNX artifact directory and the PyTorch weights."""

    artifact_dir: Path
    torch_dir: Path


def model_cache_root() -> Path:
    """The per-var-dir cache of built test models."""
    var_dir = Path(os.environ.get("CONCORDANCE_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
    return var_dir / "model-cache"


def _train_tokenizer(directory: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from inference.prompts import ANSWER_MARK, TASK_PREFIXES

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=[EOS, PAD, *TASK_PREFIXES.values(), ANSWER_MARK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer.save(str(directory / "tokenizer.json"))


def _build(target: Path) -> None:
    """Build the tiny model into ``target`` (``onnx/`` artifacts and ``torch/`` weights)."""
    import torch
    from optimum.exporters.onnx import main_export
    from tokenizers import Tokenizer
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch_dir, onnx_dir = target / "torch", target / "onnx"
    torch_dir.mkdir(parents=True)
    _train_tokenizer(torch_dir)
    tok = Tokenizer.from_file(str(torch_dir / "tokenizer.json"))
    eos_id, pad_id = tok.token_to_id(EOS), tok.token_to_id(PAD)
    PreTrainedTokenizerFast(
        tokenizer_file=str(torch_dir / "tokenizer.json"),
        eos_token=EOS,
        pad_token=PAD,
        model_input_names=["input_ids", "attention_mask"],
    ).save_pretrained(torch_dir)
    torch.manual_seed(SEED)
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=1024,
        n_embd=32,
        n_layer=2,
        n_head=2,
        # Wide initial weights: varied, non-repeating answers rather than one token over and over.
        initializer_range=0.5,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        # Random weights rarely pick EOS; make it likely after some tokens, so that answers in one batch
        # end at different lengths (the case batch invariance must survive).
        model.transformer.wte.weight[eos_id] *= 1.5
    model.save_pretrained(torch_dir, safe_serialization=True)
    GenerationConfig(
        eos_token_id=eos_id, pad_token_id=pad_id, max_new_tokens=TINY_MAX_NEW_TOKENS, do_sample=False
    ).save_pretrained(torch_dir)
    main_export(str(torch_dir), output=onnx_dir, task="text-generation-with-past", do_validation=False)
    shutil.copy(torch_dir / "tokenizer.json", onnx_dir / "tokenizer.json")
    for extra in ("special_tokens_map.json", "tokenizer_config.json"):
        (onnx_dir / extra).unlink(missing_ok=True)
    card = {
        "name": TINY_NAME,
        "version": TINY_VERSION,
        "architecture": "causal",
        "kinds": ["report_draft", "history_summary", "prior_comparison", "patient_letter"],
        "specialties": [],
        "lineage": {"source": "random initialisation, for tests", "seed": SEED},
        "metrics": {},
        "generation_defaults": {"decoding": "greedy", "max_new_tokens": TINY_MAX_NEW_TOKENS},
    }
    (onnx_dir / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True), encoding="utf-8")


def build_tiny_model(root: Path | None = None) -> TinyModel:
    """The tiny model's files, built on first use (under a file lock, so parallel runs build it once)."""
    root = root or model_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / TINY_RECIPE
    with (root / f".{TINY_RECIPE}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "onnx" / "card.json").is_file():
            scratch = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
            try:
                _build(scratch / "model")
                shutil.rmtree(target, ignore_errors=True)
                (scratch / "model").rename(target)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    return TinyModel(artifact_dir=target / "onnx", torch_dir=target / "torch")


@pytest.fixture
def tiny_model_version(db):
    """A registered, runnable (candidate) version of the tiny random model serving every kind.

    Self-contained (no other fixture to import): the files are built on first use, then reused.
    """
    from audit.log import SYSTEM
    from inference.registry import model_version_register_directory

    files = build_tiny_model()
    return model_version_register_directory(directory=files.artifact_dir, actor=None, context=SYSTEM)


def default_model_dirs() -> list[Path]:
    """The shipped default models (``inference/artifacts/*`` with a model.onnx)."""
    root = Path(__file__).resolve().parent.parent / "inference" / "artifacts"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "model.onnx").is_file())


@pytest.fixture
def default_model_version(db):
    """The shipped default model, registered and active (the project ships one: its absence fails)."""
    from audit.log import SYSTEM
    from inference.registry import default_shipped_model

    if not default_model_dirs():
        pytest.fail("no shipped default model under inference/artifacts/ (see docs/models.md to rebuild it)")
    return default_shipped_model(context=SYSTEM)
