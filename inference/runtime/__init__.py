"""The model runtime: generate drafts with a registered model version, one session per process.

:func:`generate` is what live drafting, re-inference and evaluation call. The first call for a model
version in a process re-hashes its artifacts against the registry (a mismatch is audited and refuses to
run), then loads ONE onnxruntime session that every later call, from any thread, reuses. Decoding is
greedy and batch-invariant (see :mod:`inference.runtime.engine`); :func:`generation_settings` is the
provenance stored beside each output.

Settings: ``INFERENCE_THREADS`` (intra-op threads per session, default 1), ``INFERENCE_PROVIDERS``
(default ``["CPUExecutionProvider"]``; ``CUDAExecutionProvider`` first when onnxruntime-gpu is
installed), ``INFERENCE_BATCH_SIZE`` (most prompts one call decodes together, default 32; continuous
batching), ``INFERENCE_RUNNING_ROWS`` (most rows a static-cache graph decodes at once, default 8),
``INFERENCE_MEMORY_BUDGET_MB`` (KV cache of one call, default 64), ``INFERENCE_GRAPH_OPTIMIZATION``
(none/basic/extended/all, default all).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import onnxruntime as ort
from django.conf import settings

from inference.prompts import PromptError, build_prompt
from inference.registry import ArtifactIntegrityError, artifact_dir_of, verify_artifacts
from inference.runtime.engine import (
    DEFAULT_RUNNING_ROWS,
    RUNTIME_NAME,
    RUNTIME_VERSION,
    DecoderEngine,
    EngineError,
    PromptTooLong,
    TextEngine,
)
from inference.runtime.seq2seq import Seq2SeqEngine
from portal.records.models import ModelVersion

__all__ = [
    "ArtifactIntegrityError",
    "Generation",
    "ModelNotRunnable",
    "PromptTooLong",
    "clear_cache",
    "generate",
    "generation_settings",
    "load",
]

DEFAULT_MAX_NEW_TOKENS = 256
#: KV cache per worker process: with the shipped model, 32 rows of ~100 tokens each (docs/runtime.md).
DEFAULT_MEMORY_BUDGET_MB = 64


@dataclasses.dataclass(frozen=True)
class Generation:
    """One generated text with its token counts and its latency (its share of its micro-batch, ms)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float


class ModelNotRunnable(Exception):
    """This version cannot run here: no local artifacts, unsupported architecture, or kind not served."""


_sessions: dict[tuple[int, str], TextEngine] = {}
#: The engine class serving each registry architecture.
ENGINES: dict[str, type[TextEngine]] = {"causal": DecoderEngine, "seq2seq": Seq2SeqEngine}
_lock = threading.Lock()


def threads() -> int:
    """Intra-op threads per session (``INFERENCE_THREADS``, default 1)."""
    return max(1, int(getattr(settings, "INFERENCE_THREADS", 1)))


def providers() -> list[str]:
    """Execution providers, in order of preference, limited to those this onnxruntime build has."""
    wanted = list(getattr(settings, "INFERENCE_PROVIDERS", None) or ["CPUExecutionProvider"])
    available = set(ort.get_available_providers())
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


def running_rows() -> int:
    """Most rows a static-cache call decodes at once (``INFERENCE_RUNNING_ROWS``, default 8)."""
    return max(1, int(getattr(settings, "INFERENCE_RUNNING_ROWS", DEFAULT_RUNNING_ROWS)))


def memory_budget_bytes() -> int | None:
    """The KV-cache budget of one generate call (``INFERENCE_MEMORY_BUDGET_MB``; 0: unbounded)."""
    megabytes = int(getattr(settings, "INFERENCE_MEMORY_BUDGET_MB", DEFAULT_MEMORY_BUDGET_MB))
    return megabytes * 1024 * 1024 if megabytes > 0 else None


def _check_runnable(model_version: ModelVersion, kind: str | None = None) -> None:
    label = f"{model_version.name} {model_version.version}"
    if not model_version.is_runnable:
        raise ModelNotRunnable(f"{label} has no local artifacts; it ran elsewhere and cannot run here")
    if model_version.architecture not in ENGINES:
        raise ModelNotRunnable(
            f"{label} is a {model_version.architecture or 'unknown'} model; this runtime serves "
            f"{' and '.join(ENGINES)} models"
        )
    if kind is not None and model_version.kinds and kind not in model_version.kinds:
        raise ModelNotRunnable(
            f"{label} does not serve {kind!r} (it serves {', '.join(model_version.kinds)})"
        )


def load(model_version: ModelVersion) -> TextEngine:
    """The process's engine for this version: verified and loaded on first use, then cached.

    Keyed by primary key AND artifact digest, so a re-registered directory never reuses a stale session.
    Raises :class:`ModelNotRunnable` or :class:`ArtifactIntegrityError` (audited by the registry).
    """
    _check_runnable(model_version)
    key = (model_version.pk, model_version.artifact_sha256)
    engine = _sessions.get(key)
    if engine is not None:
        return engine
    with _lock:
        engine = _sessions.get(key)
        if engine is None:
            verify_artifacts(model_version)
            try:
                engine = ENGINES[model_version.architecture](
                    artifact_dir_of(model_version),
                    threads=threads(),
                    providers=providers(),
                    optimization=getattr(settings, "INFERENCE_GRAPH_OPTIMIZATION", "all"),
                )
            except EngineError as exc:
                raise ModelNotRunnable(f"{model_version.name} {model_version.version}: {exc}") from exc
            if isinstance(engine, DecoderEngine):
                engine.running_rows = running_rows()
            _sessions[key] = engine
    return engine


def clear_cache() -> None:
    """Drop every loaded session (tests; a worker never needs to)."""
    with _lock:
        _sessions.clear()


def max_new_tokens_of(model_version: ModelVersion) -> int:
    """The version's answer length limit: its generation defaults, else the runtime default."""
    value = (model_version.generation_defaults or {}).get("max_new_tokens")
    return int(value) if value else int(getattr(settings, "INFERENCE_MAX_NEW_TOKENS", DEFAULT_MAX_NEW_TOKENS))


def _valid_text(prompt: str) -> str:
    """Refuse text the tokenizer cannot encode (lone UTF-16 surrogates arrive through JSON escapes)."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PromptError("inputs contain characters that are not valid Unicode text") from exc
    return prompt


def generate(
    model_version: ModelVersion, kind: str, inputs_list: Sequence[Mapping[str, Any]]
) -> list[Generation]:
    """Greedy drafts of ``kind`` for each inputs mapping, in order, with the cached session.

    Same version and inputs give byte-identical text whatever else is in the batch. Raises
    :class:`inference.prompts.PromptError` on bad inputs (before any model work),
    :class:`PromptTooLong`, :class:`ModelNotRunnable` or :class:`ArtifactIntegrityError`.
    """
    _check_runnable(model_version, kind)
    prompts = [_valid_text(build_prompt(kind, inputs)) for inputs in inputs_list]
    if not prompts:
        return []
    engine = load(model_version)
    completions = engine.generate(
        prompts,
        max_new_tokens=max_new_tokens_of(model_version),
        batch_size=int(getattr(settings, "INFERENCE_BATCH_SIZE", 32)),
        memory_budget_bytes=memory_budget_bytes(),
    )
    return [
        Generation(
            text=completion.text,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            latency_ms=round(share_ms, 3),
        )
        for completion, share_ms in completions
    ]


def generation_settings(model_version: ModelVersion) -> dict[str, Any]:
    """The decoding provenance stored with every output of this version (independent of batch size)."""
    return {
        "decoding": "greedy",
        "max_new_tokens": max_new_tokens_of(model_version),
        "runtime": f"{RUNTIME_NAME}/{RUNTIME_VERSION}",
        "onnxruntime": ort.__version__,
        "providers": providers(),
        "threads": threads(),
        "quantisation": model_version.quantisation or "fp32",
        "artifact_sha256": model_version.artifact_sha256,
    }
