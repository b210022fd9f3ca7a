"""Continuous batching over a static KV cache: one preallocated slot per row, written in place.

For graphs with ``com.microsoft.GroupQueryAttention`` and a shared past/present buffer (the fused
graph of :mod:`inference.training.fused_graph` built with ``static_cache=True``). The concatenating
cache of an optimum export copies the WHOLE cache into a new buffer at every step (rows x length x
layers), which is what made a batch of 32 slower per report than a batch of 8 and a worker's memory
grow with it; here each step only appends each row's new keys and values at that row's own length.

* The cache is ``max_rows`` slots long, each as long as the longest prompt plus its answer budget,
  allocated once per call (the memory budget limits the slot count: one row always runs).
* A waiting prompt is run through the prompt step ALONE, straight into a free slot (no padding at all:
  each row's numbers depend on nothing but its own tokens), then decodes with the others.
* Running rows sit in slots ``0..n-1``; when a row finishes, the last running row's cache is moved into
  its slot (its own tokens only), so the step runs on one contiguous view of ``n`` slots.
* CPU memory only (numpy views bound to onnxruntime); a CUDA session copies the views each step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

import numpy as np


class SlotEngine(Protocol):
    """What the slot batcher needs of a decoder (see :class:`inference.runtime.engine.DecoderEngine`)."""

    eos_ids: frozenset[int]
    kv_bytes_per_token: int

    def new_cache(self, rows: int, length: int) -> list[np.ndarray]: ...

    def static_step(
        self, input_ids: np.ndarray, positions: np.ndarray, cached: np.ndarray, cache: Sequence[np.ndarray]
    ) -> np.ndarray: ...


def slot_count(max_rows: int, length: int, bytes_per_token: int, budget: int | None) -> int:
    """How many slots of ``length`` tokens fit the budget (at least one, at most ``max_rows``)."""
    if budget is None:
        return max_rows
    return max(1, min(max_rows, budget // max(1, length * bytes_per_token)))


class SlotBatcher:
    """Runs prompts through a static-cache engine, at most ``max_rows`` at once (see module doc)."""

    def __init__(self, engine: SlotEngine, *, max_rows: int, memory_budget_bytes: int | None = None) -> None:
        self.engine = engine
        self.max_rows = max(1, int(max_rows))
        self.memory_budget_bytes = memory_budget_bytes
        self.peak_rows = 0
        self.cache_bytes = 0  # what the cache of the last call took

    def run(self, prompts: Sequence[Sequence[int]], budgets: Sequence[int]) -> list[list[int]]:
        """Each prompt's greedy answer ids (EOS included when reached), in the order of ``prompts``."""
        length = max(len(p) + b for p, b in zip(prompts, budgets, strict=True))
        rows = slot_count(
            min(self.max_rows, len(prompts)), length, self.engine.kv_bytes_per_token, self.memory_budget_bytes
        )
        cache = self.engine.new_cache(rows, length)
        self.cache_bytes = sum(array.nbytes for array in cache)
        answers: list[list[int]] = [[] for _ in prompts]
        waiting = deque(range(len(prompts)))
        slots: list[int] = []  # the prompt in each running slot
        cached = np.zeros(rows, dtype=np.int64)  # tokens in each slot's cache
        while waiting or slots:
            while waiting and len(slots) < rows:
                index = waiting.popleft()
                slot = len(slots)
                token = self._prefill(prompts[index], slot, cache)
                answers[index].append(token)
                if not self._finished(token, answers[index], budgets[index]):
                    slots.append(index)
                    cached[slot] = len(prompts[index])
            if not slots:
                continue
            self.peak_rows = max(self.peak_rows, len(slots))
            count = len(slots)
            tokens = np.array([[answers[i][-1]] for i in slots], dtype=np.int64)
            logits = self.engine.static_step(
                tokens, cached[:count].reshape(-1, 1), cached[:count], [a[:count] for a in cache]
            )
            cached[:count] += 1
            chosen = np.argmax(logits, axis=-1).tolist()  # ties to the lowest id, as torch.argmax
            done = []
            for slot, (index, token) in enumerate(zip(slots, chosen, strict=True)):
                answers[index].append(token)
                if self._finished(token, answers[index], budgets[index]):
                    done.append(slot)
            for slot in reversed(done):  # highest first, so the moves below never touch a done slot
                self._release(slot, slots, cached, cache)
        return answers

    def _finished(self, token: int, answer: list[int], budget: int) -> bool:
        return token in self.engine.eos_ids or len(answer) >= budget

    def _prefill(self, prompt: Sequence[int], slot: int, cache: list[np.ndarray]) -> int:
        """Run one prompt into ``slot``'s cache; returns its first token."""
        ids = np.asarray([prompt], dtype=np.int64)
        positions = np.arange(len(prompt), dtype=np.int64).reshape(1, -1)
        logits = self.engine.static_step(
            ids, positions, np.zeros(1, dtype=np.int64), [a[slot : slot + 1] for a in cache]
        )
        return int(np.argmax(logits[0]))

    @staticmethod
    def _release(slot: int, slots: list[int], cached: np.ndarray, cache: list[np.ndarray]) -> None:
        """Free ``slot``: the last running row moves into it (its own tokens only)."""
        last = len(slots) - 1
        if slot != last:
            length = int(cached[last])
            for array in cache:
                array[slot, :, :length] = array[last, :, :length]
            cached[slot] = cached[last]
            slots[slot] = slots[last]
        slots.pop()
