"""Greedy decoding over onnxruntime, numpy and tokenizers: no torch, no optimum, no Django.

A worker imports this instead of optimum's ORTModel: optimum imports torch (~3 s and ~400 MB per
process) for a loop this module does in a few dozen lines. :class:`TextEngine` holds what every served
model shares (tokenizer, special tokens, providers, the ``generate`` loop); :class:`DecoderEngine` runs
a causal decoder: an optimum export (text-generation-with-past: inputs ``input_ids``,
``attention_mask``, optionally ``position_ids`` and ``past_key_values.{i}.key|value``; outputs
``logits`` and ``present.{i}.key|value``), or the fused graph with a static cache (``seqlens_k``,
``total_sequence_length`` instead of the mask). Encoder-decoder models: :mod:`.seq2seq`.

Reproducibility is the point: the same prompt gives the same tokens whatever the batch size and
whatever the other prompts in the batch. Rows are left-padded, masked and given the position ids each
row would have alone (as transformers does) in :mod:`.batching`, or each keeps its own slot of a static
cache in :mod:`.static_cache`; everything runs in fp32 with a fixed thread count. Tests check it
against every prompt alone and against transformers.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from inference.runtime.batching import ContinuousBatcher
from inference.runtime.static_cache import BoundStep, SlotBatcher

RUNTIME_NAME = "concordance-greedy"
RUNTIME_VERSION = "1"
# Tokens tried as end-of-text when neither config names one (GPT-2, T5/BART, Llama spellings).
_EOS_SPELLINGS = ("<|endoftext|>", "</s>", "<eos>", "[EOS]")
_PAD_SPELLINGS = ("<pad>", "[PAD]", "<|padding|>")
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
#: The model metadata key naming how many trailing positions' logits a graph returns (fused_graph).
LOGIT_POSITIONS_KEY = "concordance.logit_positions"
#: Most rows a static-cache call decodes at once, whatever its batch size (a batch of 32 prompts runs
#: 8 rows, the others join as rows finish). From ~8 rows up a step costs about the same per row (the
#: attention kernel runs per row and head over each row's cache) and measured on a quiet machine a
#: batch running ~13 rows was 11% slower per report than one running 8 (docs/runtime.md).
DEFAULT_RUNNING_ROWS = 8
#: Most guessed tokens a one-row static-cache step checks. Measured on the shipped model (batch 1,
#: docs/runtime.md): a step fed 4 tokens costs ~1.2x one fed 1, and 3 guesses gain the most.
GUESS_TOKENS = 3


class EngineError(Exception):
    """The artifact directory cannot be served by this engine (layout, architecture, missing token)."""


class PromptTooLong(EngineError):
    """The prompt leaves no room for an answer within the model's context window."""


@dataclasses.dataclass(frozen=True)
class Completion:
    """One generated answer: the decoded text and the token counts (completion counts the EOS too)."""

    text: str
    token_ids: tuple[int, ...]
    prompt_tokens: int
    completion_tokens: int


@dataclasses.dataclass(frozen=True)
class DecoderShape:
    """What the KV cache looks like, from config.json: layers, key/value heads and head size."""

    layers: int
    kv_heads: int
    head_dim: int
    max_positions: int | None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DecoderShape:
        """Read GPT-2 (``n_layer``...), Llama/Mistral (``num_hidden_layers``...) and similar spellings."""

        def first(*keys: str) -> Any:
            for key in keys:
                if config.get(key) is not None:
                    return config[key]
            return None

        layers = first("n_layer", "num_hidden_layers", "num_layers")
        heads = first("n_head", "num_attention_heads", "num_heads")
        hidden = first("n_embd", "hidden_size", "d_model")
        if not (layers and heads and hidden):
            raise EngineError("config.json does not name the layer count, head count and width")
        kv_heads = first("num_key_value_heads", "n_head_kv", "multi_query_group_num") or heads
        head_dim = first("head_dim") or hidden // heads
        max_positions = first("n_positions", "max_position_embeddings", "n_ctx")
        return cls(int(layers), int(kv_heads), int(head_dim), int(max_positions) if max_positions else None)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    value = json.loads(path.read_text(encoding="utf-8"))
    return value if isinstance(value, dict) else {}


def token_ids_of(value: Any) -> list[int]:
    """A config's token id or list of ids, as a list (empty when absent)."""
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, list) else [value])]


def session_options(*, threads: int, optimization: str = "all") -> ort.SessionOptions:
    """One intra-op thread by default: one worker process per core scales better than threads, and a
    fixed thread count keeps results reproducible."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    levels = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise EngineError(
            f"unknown graph optimisation level {optimization!r}; use one of {', '.join(levels)}"
        )
    options.graph_optimization_level = levels[optimization]
    # Idle worker threads spinning would steal the other workers' cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class TextEngine(abc.ABC):
    """What every served model shares: tokenizer, special tokens, providers, and the generate loop.

    Subclasses load their sessions and implement :meth:`budget` and :meth:`generate_ids` (abstract: a
    subclass that forgets one fails when it is instantiated, not halfway through a run).
    """

    def __init__(
        self,
        directory: Path,
        *,
        threads: int = 1,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        directory = Path(directory)
        self.config = _read_json(directory / "config.json")
        generation = _read_json(directory / "generation_config.json")
        self.generation_config = generation
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.eos_ids = frozenset(
            token_ids_of(generation.get("eos_token_id"))
            or token_ids_of(self.config.get("eos_token_id"))
            or self._token(_EOS_SPELLINGS)
        )
        if not self.eos_ids:
            raise EngineError("the model names no end-of-text token")
        pad = (
            token_ids_of(generation.get("pad_token_id"))
            or token_ids_of(self.config.get("pad_token_id"))
            or self._token(_PAD_SPELLINGS)
        )
        # Padded positions are masked out, so any id works; EOS is what transformers falls back to.
        self.pad_id = pad[0] if pad else min(self.eos_ids)
        self.default_max_new_tokens = int(generation.get("max_new_tokens") or 256)
        available = set(ort.get_available_providers())
        self.providers = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        self.threads = threads
        # Where the KV cache lives between steps: the GPU's memory when CUDA serves, else the CPU's.
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"

    def _token(self, spellings: Sequence[str]) -> list[int]:
        for spelling in spellings:
            token_id = self.tokenizer.token_to_id(spelling)
            if token_id is not None:
                return [token_id]
        return []

    def open_session(self, path: Path, optimization: str) -> ort.InferenceSession:
        """An onnxruntime session of one graph with this engine's threads and providers."""
        return ort.InferenceSession(
            str(path),
            sess_options=session_options(threads=self.threads, optimization=optimization),
            providers=self.providers,
        )

    # --- tokens ------------------------------------------------------------------------------------

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prompt (with the tokenizer's own post-processing, as in training)."""
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(prompts))]

    def decode(self, token_ids: Sequence[int]) -> str:
        """The answer text: special tokens dropped, surrounding whitespace trimmed."""
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=True).strip()

    @abc.abstractmethod
    def budget(self, prompt_tokens: int, max_new_tokens: int) -> int:
        """How many tokens may be generated after a prompt of this length; :class:`PromptTooLong`."""

    @abc.abstractmethod
    def generate_ids(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        *,
        max_rows: int | None = None,
        memory_budget_bytes: int | None = None,
    ) -> list[list[int]]:
        """Greedy answer ids of each prompt (EOS included when reached), in order."""

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int | None = None,
        batch_size: int = 32,
        memory_budget_bytes: int | None = None,
    ) -> list[tuple[Completion, float]]:
        """Complete every prompt; returns each completion with its share of the call's wall time (ms).

        Prompts are run shortest first (less padding), at most ``batch_size`` rows at once; the
        answers are returned in the order of ``prompts``. The text depends on neither choice.
        """
        limit = max_new_tokens or self.default_max_new_tokens
        encoded = self.encode(prompts)
        for ids in encoded:
            self.budget(len(ids), limit)  # refuse an overlong prompt before any work is done
        if not encoded:
            return []
        order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), i))
        began = time.perf_counter()
        generated = self.generate_ids(
            [encoded[i] for i in order],
            limit,
            max_rows=max(1, batch_size),
            memory_budget_bytes=memory_budget_bytes,
        )
        share_ms = (time.perf_counter() - began) * 1000 / len(encoded)
        results: list[tuple[Completion, float] | None] = [None] * len(encoded)
        for index, ids in zip(order, generated, strict=True):
            answer = [t for t in ids if t not in self.eos_ids]
            completion = Completion(
                text=self.decode(answer),
                token_ids=tuple(ids),
                prompt_tokens=len(encoded[index]),
                completion_tokens=len(ids),
            )
            results[index] = (completion, share_ms)
        return [r for r in results if r is not None]


class DecoderEngine(TextEngine):
    """A causal decoder loaded once: its onnxruntime session, tokenizer and special tokens."""

    def __init__(
        self,
        directory: Path,
        *,
        threads: int = 1,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        optimization: str = "all",
        running_rows: int = DEFAULT_RUNNING_ROWS,
    ) -> None:
        super().__init__(directory, threads=threads, providers=providers)
        #: Most rows a static-cache call decodes at once (the concatenating cache runs its batch size).
        self.running_rows = max(1, int(running_rows))
        if self.config.get("is_encoder_decoder"):
            raise EngineError("an encoder-decoder (seq2seq) model: serve it with Seq2SeqEngine")
        self.shape = DecoderShape.from_config(self.config)
        self.decoder = self.open_session(Path(directory) / "model.onnx", optimization)
        inputs = {i.name: i for i in self.decoder.get_inputs()}
        # GroupQueryAttention graphs keep a static cache written in place (inference.runtime.static_cache).
        self.static_cache = "seqlens_k" in inputs and "total_sequence_length" in inputs
        if "input_ids" not in inputs or not (self.static_cache or "attention_mask" in inputs):
            raise EngineError("model.onnx lacks input_ids or attention_mask")
        if self.static_cache and "position_ids" not in inputs:
            raise EngineError("a static-cache model.onnx must take position_ids")
        if self.static_cache and self.device != "cpu":
            # Its cache is host memory bound in place; on a GPU the concatenating graph keeps the
            # cache in device memory instead (bench/gpu_inference.py).
            raise EngineError("a static-cache graph is served on CPU only; use the fused MHA graph on GPU")
        self.past_names = [
            (f"past_key_values.{layer}.key", f"past_key_values.{layer}.value")
            for layer in range(self.shape.layers)
        ]
        missing = [name for pair in self.past_names for name in pair if name not in inputs]
        if missing:
            raise EngineError(
                "model.onnx has no KV-cache inputs matching config.json (export it with "
                "task text-generation-with-past)"
            )
        self.past_input_names = [name for pair in self.past_names for name in pair]
        self.uses_position_ids = "position_ids" in inputs
        self.past_dtype = _ORT_DTYPES.get(inputs[self.past_names[0][0]].type, np.float32)
        outputs = [o.name for o in self.decoder.get_outputs()]
        self.present_names = [
            (f"present.{layer}.key", f"present.{layer}.value") for layer in range(self.shape.layers)
        ]
        self.output_names = ["logits", *[name for pair in self.present_names for name in pair]]
        if any(name not in outputs for name in self.output_names):
            raise EngineError("model.onnx lacks logits or present.* outputs")
        # Past input and present output of each cache tensor (bound to the same buffer when static).
        self.cache_names = list(zip(self.past_input_names, self.output_names[1:], strict=True))
        logits = next(o for o in self.decoder.get_outputs() if o.name == "logits").shape
        vocab = logits[-1] if isinstance(logits[-1], int) else int(self.config.get("vocab_size") or 0)
        if self.static_cache and not vocab:
            raise EngineError("a static-cache model.onnx must declare its vocabulary size (logits shape)")
        # How many trailing positions' logits a run returns: fixed in the graph (1: the last only), or
        # named in its metadata (the static graph's last few, to check guesses), else all it is fed.
        declared = self.decoder.get_modelmeta().custom_metadata_map.get(LOGIT_POSITIONS_KEY)
        self.logit_positions: int | None = (
            logits[1] if isinstance(logits[1], int) else int(declared) if declared else None
        )
        self.vocab = vocab
        # Guessed tokens a one-row static step may check (inference.runtime.speculation): as many as
        # the graph returns logits for after the pending token, at most GUESS_TOKENS.
        positions = self.logit_positions or GUESS_TOKENS + 1
        self.guess_tokens = min(GUESS_TOKENS, positions - 1) if self.static_cache else 0

    def budget(self, prompt_tokens: int, max_new_tokens: int) -> int:
        """How many tokens may be generated after a prompt of this length (context window permitting)."""
        if self.shape.max_positions is None:
            return max_new_tokens
        room = self.shape.max_positions - prompt_tokens
        if room < 1:
            raise PromptTooLong(
                f"the prompt has {prompt_tokens} tokens; the model reads at most {self.shape.max_positions}"
            )
        return min(max_new_tokens, room)

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes one cached token of one row takes in the KV cache (keys and values of every layer)."""
        itemsize = np.dtype(self.past_dtype).itemsize
        return 2 * self.shape.layers * self.shape.kv_heads * self.shape.head_dim * itemsize

    def empty_past(self, rows: int) -> list[np.ndarray]:
        """A KV cache of ``rows`` rows and no tokens, one array per past input."""
        empty = np.zeros((rows, self.shape.kv_heads, 0, self.shape.head_dim), dtype=self.past_dtype)
        return [empty] * len(self.past_input_names)

    def step(
        self, input_ids: np.ndarray, mask: np.ndarray, positions: np.ndarray, past: Sequence[Any]
    ) -> tuple[np.ndarray, list[Any]]:
        """One run of the decoder: the last position's logits (rows x vocab, numpy) and the new cache.

        I/O binding keeps the cache in onnxruntime's memory on the session's device (CPU, or the GPU
        with CUDAExecutionProvider) from one step to the next instead of copying it out to numpy and
        back each step. ``past`` holds numpy arrays or the onnxruntime values a previous step returned.
        """
        binding = self.decoder.io_binding()
        binding.bind_cpu_input("input_ids", input_ids)
        binding.bind_cpu_input("attention_mask", mask)
        if self.uses_position_ids:
            binding.bind_cpu_input("position_ids", positions)
        for name, tensor in zip(self.past_input_names, past, strict=True):
            if isinstance(tensor, np.ndarray):
                binding.bind_cpu_input(name, tensor)
            else:
                binding.bind_ortvalue_input(name, tensor)
        binding.bind_output("logits", "cpu")  # argmax runs here; the cache stays on the device
        for name in self.output_names[1:]:
            binding.bind_output(name, self.device)
        self.decoder.run_with_iobinding(binding)
        logits_value, *present = binding.get_outputs()
        return logits_value.numpy()[:, -1, :], present

    def new_cache(self, rows: int, length: int) -> list[np.ndarray]:
        """A static KV cache: ``rows`` slots of ``length`` tokens, one array per past input."""
        shape = (rows, self.shape.kv_heads, length, self.shape.head_dim)
        return [np.zeros(shape, dtype=self.past_dtype) for _ in self.past_input_names]

    def bound_step(self, cache: Sequence[np.ndarray], new_tokens: int) -> BoundStep:
        """A prebound static-cache run over these slot views (contiguous) feeding ``new_tokens`` a row."""
        positions = min(new_tokens, self.logit_positions or new_tokens)
        return BoundStep(self.decoder, self.cache_names, cache, new_tokens, (positions, self.vocab))

    def generate_ids(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        *,
        max_rows: int | None = None,
        memory_budget_bytes: int | None = None,
    ) -> list[list[int]]:
        """Greedy continuation of each prompt, up to and including EOS, with continuous batching.

        At most ``max_rows`` rows run at once (default: all; a static cache: at most
        ``running_rows``); a finished row leaves at once and a waiting prompt takes its place.
        ``memory_budget_bytes`` bounds the KV cache (see :mod:`inference.runtime.batching`). The
        answers depend on none of these settings.
        """
        if any(not prompt for prompt in prompts):
            raise EngineError("empty prompt")
        budgets = [self.budget(len(p), max_new_tokens) for p in prompts]
        rows = max_rows or max(1, len(prompts))
        if self.static_cache:
            rows = min(rows, self.running_rows)
        batcher_class = SlotBatcher if self.static_cache else ContinuousBatcher
        batcher = batcher_class(self, max_rows=rows, memory_budget_bytes=memory_budget_bytes)
        return batcher.run([list(p) for p in prompts], budgets)
