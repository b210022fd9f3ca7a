"""Greedy decoding of encoder-decoder (seq2seq) models such as T5 and BART, exported with optimum.

Artifact layout (``text2text-generation-with-past``): ``encoder_model.onnx`` (``input_ids``,
``attention_mask`` -> ``last_hidden_state``) and ``model.onnx``, optimum's MERGED decoder (one graph,
both branches: ``use_cache_branch`` false on the first step, true after), whose cache is
``past_key_values.{i}.decoder|encoder.key|value``.

The encoder runs ONCE per prompt, and so does the decoder's projection of its output: the cross-
attention keys and values of the first step (``present.{i}.encoder.*``) are kept and fed to every later
step, which then only extends the self-attention cache. Prompts are right-padded for the encoder (as
transformers does) under its attention mask; all rows decode in lockstep from the start token, so the
decoder needs no padding; finished rows leave the batch. Micro-batches of at most ``max_rows``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference.runtime.engine import EngineError, PromptTooLong, TextEngine, token_ids_of

ENCODER_FILE = "encoder_model.onnx"


class Seq2SeqEngine(TextEngine):
    """An encoder-decoder model loaded once: its encoder and merged decoder sessions, its tokenizer."""

    def __init__(
        self,
        directory: Path,
        *,
        threads: int = 1,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        optimization: str = "all",
    ) -> None:
        super().__init__(directory, threads=threads, providers=providers)
        directory = Path(directory)
        if not self.config.get("is_encoder_decoder"):
            raise EngineError("config.json does not describe an encoder-decoder model")
        if not (directory / ENCODER_FILE).is_file():
            raise EngineError(f"a seq2seq model needs {ENCODER_FILE} beside model.onnx")
        start = token_ids_of(self.generation_config.get("decoder_start_token_id")) or token_ids_of(
            self.config.get("decoder_start_token_id")
        )
        if not start:
            raise EngineError("the model names no decoder start token")
        self.start_id = start[0]
        positions = self.config.get("max_position_embeddings") or self.config.get("n_positions")
        self.max_positions = int(positions) if positions else None
        self.encoder = self.open_session(directory / ENCODER_FILE, optimization)
        self.decoder = self.open_session(directory / "model.onnx", optimization)
        inputs = {i.name: i for i in self.decoder.get_inputs()}
        needed = {"input_ids", "encoder_attention_mask", "encoder_hidden_states", "use_cache_branch"}
        if not needed <= set(inputs):
            raise EngineError(
                "model.onnx is not a merged seq2seq decoder (export text2text-generation-with-past)"
            )
        self.self_names = sorted(n for n in inputs if n.startswith("past_key_values.") and ".decoder." in n)
        self.cross_names = sorted(n for n in inputs if n.startswith("past_key_values.") and ".encoder." in n)
        if not self.self_names or len(self.self_names) != len(self.cross_names):
            raise EngineError("model.onnx lacks the decoder and encoder KV-cache inputs")
        self.past_shapes = {name: inputs[name].shape for name in self.self_names + self.cross_names}

    def budget(self, prompt_tokens: int, max_new_tokens: int) -> int:
        """The encoder reads at most ``max_positions`` tokens; the answer is at most as long."""
        if self.max_positions is None:
            return max_new_tokens
        if prompt_tokens > self.max_positions:
            raise PromptTooLong(
                f"the prompt has {prompt_tokens} tokens; the model reads at most {self.max_positions}"
            )
        return min(max_new_tokens, self.max_positions - 1)

    def _empty(self, name: str, rows: int) -> np.ndarray:
        # (batch, heads, length, head_dim): heads and head_dim are fixed in the graph.
        _, heads, _, head_dim = self.past_shapes[name]
        return np.zeros((rows, int(heads), 0, int(head_dim)), dtype=np.float32)

    def _decode_step(self, tokens: np.ndarray, state: dict[str, Any], first: bool) -> tuple[np.ndarray, dict]:
        feed = {
            "input_ids": tokens.reshape(-1, 1),
            "encoder_attention_mask": state["mask"],
            "encoder_hidden_states": state["hidden"],
            "use_cache_branch": np.array([not first]),
        }
        rows = len(tokens)
        for name in self.self_names + self.cross_names:
            feed[name] = self._empty(name, rows) if first else state[name]
        outputs = [o.name for o in self.decoder.get_outputs()]
        values = dict(zip(outputs, self.decoder.run(outputs, feed), strict=True))
        new_state = dict(state)
        for name in self.self_names:
            new_state[name] = values[name.replace("past_key_values.", "present.")]
        if first:  # the cross-attention cache is computed once, from the encoder's output
            for name in self.cross_names:
                new_state[name] = values[name.replace("past_key_values.", "present.")]
        return values["logits"][:, -1, :], new_state

    def _run_batch(self, prompts: Sequence[Sequence[int]], budgets: Sequence[int]) -> list[list[int]]:
        width = max(len(p) for p in prompts)
        ids = np.full((len(prompts), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(prompts), width), dtype=np.int64)
        for row, prompt in enumerate(prompts):
            ids[row, : len(prompt)] = prompt
            mask[row, : len(prompt)] = 1
        (hidden,) = self.encoder.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})
        state: dict[str, Any] = {"hidden": hidden, "mask": mask}
        rows = np.arange(len(prompts))
        tokens = np.full(len(prompts), self.start_id, dtype=np.int64)
        answers: list[list[int]] = [[] for _ in prompts]
        first = True
        while len(rows):
            logits, state = self._decode_step(tokens, state, first)
            first = False
            tokens = np.argmax(logits, axis=-1).astype(np.int64)  # ties to the lowest id, as torch
            keep = []
            for position, (row, token) in enumerate(zip(rows.tolist(), tokens.tolist(), strict=True)):
                answers[row].append(token)
                if token not in self.eos_ids and len(answers[row]) < budgets[row]:
                    keep.append(position)
            if len(keep) < len(rows):
                index = np.asarray(keep, dtype=np.int64)
                rows, tokens = rows[index], tokens[index]
                state = {name: np.ascontiguousarray(value[index]) for name, value in state.items()}
        return answers

    def generate_ids(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        *,
        max_rows: int | None = None,
        memory_budget_bytes: int | None = None,
    ) -> list[list[int]]:
        """Greedy answers in micro-batches of ``max_rows`` (the memory budget applies to decoders)."""
        if any(not prompt for prompt in prompts):
            raise EngineError("empty prompt")
        budgets = [self.budget(len(p), max_new_tokens) for p in prompts]
        size = max_rows or max(1, len(prompts))
        answers: list[list[int]] = []
        for start in range(0, len(prompts), size):
            answers += self._run_batch(prompts[start : start + size], budgets[start : start + size])
        return answers
