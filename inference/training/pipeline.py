"""The model build pipeline: corpus -> tokenizer -> model -> optimum ONNX export -> evaluation -> card ->
registered ModelVersion.

Nothing is half-written: the artifact directory is built under a hidden staging name beside its final
place, renamed into place only when complete, and removed again if registration fails. Every check that
can fail on the request (specialties, dates, name, version, target directory, an empty corpus) runs
before anything is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from audit import log as audit
from inference import registry
from portal.records.models import ModelStatus, ModelVersion, Specialty

from .common import (
    BuildRequest,
    TrainingError,
    default_out_dir,
    default_version,
    label_check,
    library_versions,
)
from .corpus import TARGETS, Corpus, Pair, corpus_build
from .evaluate import GreedyDecoder, evaluate_kind
from .export import onnx_export, optimisation_settings
from .tokenizer import EOS_TOKEN, PAD_TOKEN, SPECIAL_TOKENS, special_ids, tokenizer_train
from .trainer import examples_encode, model_train

logger = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file."""
    return registry.file_sha256(path)


def request_validate(request: BuildRequest) -> tuple[BuildRequest, Path]:
    """Check the request; returns it with its version filled in, and the final artifact directory."""
    specialties = list(dict.fromkeys(request.specialties))
    unknown = sorted(set(specialties) - set(Specialty.values))
    if not specialties or unknown:
        raise TrainingError(
            f"Unknown specialty {', '.join(unknown) or '(none given)'}; "
            f"expected one of {', '.join(Specialty.values)} or 'all'."
        )
    if request.since and request.until and request.since > request.until:
        raise TrainingError("--since must not be after --until.")
    version = request.version or default_version()
    label_check("name", request.name)
    label_check("version", version)
    kinds = list(request.kinds) if request.kinds is not None else None
    if kinds is not None and (not kinds or set(kinds) - set(TARGETS)):
        raise TrainingError(f"Kinds must be among {', '.join(TARGETS)}.")
    if request.settings.max_steps < 1 or request.settings.threads < 1 or request.settings.batch_size < 1:
        raise TrainingError("--max-steps, --threads and the batch size must be at least 1.")
    if request.eval_max < 1:
        raise TrainingError("--eval-max must be at least 1.")
    if ModelVersion.objects.filter(name=request.name, version=version).exists():
        raise TrainingError(f"{request.name} {version} is already registered; choose another version.")
    out_dir = Path(request.out_dir) if request.out_dir else default_out_dir(request.name, version)
    out_dir = out_dir.resolve()
    if out_dir.exists():
        raise TrainingError(f"{out_dir} already exists; the pipeline never overwrites a model.")
    return replace(request, specialties=specialties, version=version, kinds=kinds), out_dir


def _generation_config(ids: dict[str, int], max_new_tokens: int) -> dict[str, Any]:
    return {
        "do_sample": False,
        "num_beams": 1,
        "max_new_tokens": max_new_tokens,
        "bos_token_id": ids["eos_token_id"],
        "eos_token_id": ids["eos_token_id"],
        "pad_token_id": ids["pad_token_id"],
    }


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


@dataclasses.dataclass
class _Trained:
    """What training left in the staging directory, for evaluation and the card."""

    tokenizer: Any
    ids: dict[str, int]
    train_pairs: list[Pair]
    too_long: int
    max_new_tokens: int
    train_stats: dict[str, Any]
    weights_sha256: str


def _train(request: BuildRequest, corpus: Corpus, staging: Path, progress: Callable[[str], None]) -> _Trained:
    """Tokenizer, training, ONNX export and generation config into ``staging``."""
    train_settings = request.settings
    train_pairs = [p for p in corpus.of("train") if p.kind in corpus.kinds]
    progress(f"corpus: {len(train_pairs)} training pairs for {', '.join(corpus.kinds)}")
    tokenizer = tokenizer_train(
        (text for p in train_pairs for text in (p.prompt, p.target)), vocab_size=train_settings.vocab_size
    )
    tokenizer.save(str(staging / "tokenizer.json"))
    ids = special_ids(tokenizer)
    examples, too_long = examples_encode(
        tokenizer, [(p.prompt, p.target) for p in train_pairs], max_length=train_settings.n_positions
    )
    if not examples:
        raise TrainingError("Every training pair is longer than the model's context.")
    longest_answer = max(sum(1 for label in e.labels if label >= 0) for e in examples)
    max_new_tokens = min(train_settings.n_positions, longest_answer + longest_answer // 4 + 8)
    progress(f"training {train_settings.max_steps} steps on {len(examples)} examples")
    model, train_stats = model_train(
        examples,
        tokenizer,
        train_settings,
        progress=lambda step, loss: progress(f"step {step}/{train_settings.max_steps} loss {loss:.4f}"),
    )
    with tempfile.TemporaryDirectory(prefix="hf-model-") as hf_dir:
        model.save_pretrained(hf_dir)
        weights = Path(hf_dir) / "model.safetensors"
        weights_sha256 = file_sha256(weights) if weights.is_file() else ""
        progress("exporting to ONNX and optimising the graph")
        onnx_export(Path(hf_dir), staging)
    _write_json(staging / "generation_config.json", _generation_config(ids, max_new_tokens))
    return _Trained(tokenizer, ids, train_pairs, too_long, max_new_tokens, train_stats, weights_sha256)


def _evaluate(
    request: BuildRequest, corpus: Corpus, staging: Path, trained: _Trained
) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """Greedy decoding of the exported graph on the held-out split: metrics and two samples per kind."""
    decoder = GreedyDecoder(staging, threads=request.settings.threads)
    metrics: dict[str, Any] = {"kinds": {}}
    samples: dict[str, list[dict[str, str]]] = {}
    for kind in corpus.kinds:
        held_out: list[Pair] = corpus.of("eval", kind)[: request.eval_max]
        kind_metrics, outputs = evaluate_kind(decoder, held_out, max_new_tokens=trained.max_new_tokens)
        metrics["kinds"][kind] = kind_metrics
        samples[kind] = [
            {"accession": p.accession, "output": o} for p, o in zip(held_out[:2], outputs, strict=False)
        ]
    draft = metrics["kinds"].get("report_draft", {})
    metrics["facts_right_share"] = draft.get("facts_right_share")
    metrics["reports_entirely_right_share"] = draft.get("reports_entirely_right_share")
    metrics["training"] = trained.train_stats
    metrics["evaluation"] = (
        "greedy decoding of the ONNX graph (batch 1) on the held-out split, compared with the signed "
        "reports by the discrepancy engine (inference.compare.compare)"
    )
    return metrics, samples


def _build(
    request: BuildRequest, corpus: Corpus, staging: Path, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Write every artifact file into ``staging``; returns the card."""
    trained = _train(request, corpus, staging, progress)
    progress("evaluating on the held-out reports")
    metrics, samples = _evaluate(request, corpus, staging, trained)
    card = _card(request, corpus, staging, trained, metrics, samples)
    _write_json(staging / registry.CARD_FILE, card)
    return card


def _card(
    request: BuildRequest,
    corpus: Corpus,
    staging: Path,
    trained: _Trained,
    metrics: dict[str, Any],
    samples: dict[str, list[dict[str, str]]],
) -> dict[str, Any]:
    """The model card: what the model serves, how it was made from what, how well it did, its files."""
    kinds, ids, train_settings = corpus.kinds, trained.ids, request.settings
    lineage = dict(corpus.lineage)
    lineage["pairs_too_long"] = trained.too_long
    lineage["train_pairs_sha256"] = corpus_digest(trained.train_pairs)
    generation_defaults = {
        "decoding": "greedy",
        "max_new_tokens": trained.max_new_tokens,
        "eos_token_id": ids["eos_token_id"],
        "pad_token_id": ids["pad_token_id"],
    }
    files = {path.name: file_sha256(path) for path in sorted(staging.iterdir()) if path.is_file()}
    return {
        "name": request.name,
        "version": request.version,
        "architecture": "causal",
        "model_type": "gpt2",
        "kinds": kinds,
        "kinds_left_out": [k for k in TARGETS if k not in kinds] + ["patient_letter"],
        "specialties": sorted(request.specialties),
        "serves": "one model for every specialty listed in 'specialties'",
        "quantisation": "fp32",
        "prompt": "inference.prompts.build_prompt(kind, inputs); the answer follows, ending at EOS",
        "targets": {k: TARGETS[k].description for k in kinds},
        "tokenizer": {
            "type": "byte-level BPE (tokenizers)",
            "vocab_size": trained.tokenizer.get_vocab_size(),
            "special_tokens": list(SPECIAL_TOKENS),
            "eos_token": EOS_TOKEN,
            "pad_token": PAD_TOKEN,
            **ids,
        },
        "lineage": lineage,
        "metrics": metrics,
        "samples": samples,
        "settings": {
            **train_settings.as_dict(),
            "parameters": trained.train_stats["parameters"],
            "eval_max": request.eval_max,
            "optimisation": optimisation_settings(),
        },
        "seed": train_settings.seed,
        "threads": train_settings.threads,
        "weights_sha256": trained.weights_sha256,
        "generation_defaults": generation_defaults,
        "libraries": library_versions(),
        "command": request.command,
        "files": files,
    }


def model_build(
    *,
    request: BuildRequest,
    actor: AbstractBaseUser | None,
    context: audit.AuditContext,
    progress: Callable[[str], None] | None = None,
) -> ModelVersion:
    """Build, evaluate and register a model from the department's signed reports (see module doc).

    Raises :class:`TrainingError` for a request that cannot be built; nothing is written then.
    """
    say = progress or (lambda message: logger.info("%s", message))
    request, out_dir = request_validate(request)
    corpus = corpus_build(
        specialties=request.specialties, since=request.since, until=request.until, kinds=request.kinds
    )
    if not corpus.kinds:
        raise TrainingError(
            f"No usable signed reports for {', '.join(request.specialties)} in that period "
            f"({corpus.lineage['reports_read']} read, excluded: {corpus.lineage['excluded'] or 'none'})."
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        card = _build(request, corpus, staging, say)
        staging.chmod(0o755)  # mkdtemp makes it private; workers running as another user must read it
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        return registry.model_version_register(
            directory=out_dir,
            name=request.name,
            version=request.version,
            architecture="causal",
            kinds=card["kinds"],
            specialties=card["specialties"],
            card=card,
            lineage=card["lineage"],
            metrics=card["metrics"],
            generation_defaults=card["generation_defaults"],
            quantisation="fp32",
            status=ModelStatus.ACTIVE if request.activate else ModelStatus.CANDIDATE,
            actor=actor,
            context=context,
        )
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise


def corpus_digest(pairs: Sequence[Pair]) -> str:
    """SHA-256 over the training pairs' text: two builds with equal digests saw equal data."""
    digest = hashlib.sha256()
    for p in pairs:
        digest.update(f"{p.kind}\x1f{p.prompt}\x1f{p.target}\x1e".encode())
    return digest.hexdigest()
