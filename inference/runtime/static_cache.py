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
  its slot (its own tokens only), so every step runs on contiguous views of the slots.
* Each view of the slots is bound once (:class:`BoundStep`): its inputs, its logits and its slots'
  cache are numpy buffers onnxruntime reads and writes where they lie; a step only writes a few
  integers into them (no binding, OrtValues or logits array made per step).
* When ONE row runs (batch 1, or the tail of a batch) and the graph returns the logits of several
  positions, a step feeds the row's pending token plus up to ``guess_tokens`` tokens guessed from its
  own context (:mod:`.speculation`) and keeps every guess greedy decoding confirms: the same text in
  fewer weight reads. Unconfirmed guesses leave stale cache entries past the row's length, which the
  next step overwrites (a row's length, not the buffer, says what is cached). onnxruntime's
  GroupQueryAttention takes several new tokens over a cache for one row at a time only.
* CPU memory only (numpy views bound to onnxruntime).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import onnxruntime as ort

from inference.runtime.speculation import PromptLookup


class BoundStep:
    """One prebound run of a static-cache decoder over a fixed view of the cache's slots.

    The input ids, positions, lengths and logits are preallocated numpy arrays, bound to onnxruntime
    once along with the cache views (as both past input and present output, so onnxruntime appends
    to the cache in place); each :meth:`run` only copies the step's few integers into them. Saves the
    binding, the ~2 x layers OrtValues and the logits allocation every step used to make.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        names: Sequence[tuple[str, str]],
        cache: Sequence[np.ndarray],
        new_tokens: int,
        logits_shape: tuple[int, int],
    ) -> None:
        rows = int(cache[0].shape[0])
        self.input_ids = np.zeros((rows, new_tokens), dtype=np.int64)
        self.positions = np.zeros((rows, new_tokens), dtype=np.int64)
        self.seqlens = np.zeros(rows, dtype=np.int32)
        self.total = np.zeros((), dtype=np.int32)
        # The graph gives the last position's logits, or every position's (then the last is read).
        steps, vocab = logits_shape
        self.logits = np.zeros((rows, steps or new_tokens, vocab), dtype=np.float32)
        self.session = session
        self.binding = session.io_binding()
        # The OrtValues share the numpy buffers; they are kept so the buffers outlive the binding.
        self._values = []
        feeds = {
            "input_ids": self.input_ids,
            "position_ids": self.positions,
            "seqlens_k": self.seqlens,
            "total_sequence_length": self.total,
        }
        for name, array in feeds.items():
            self._bind(name, array, output=False)
        self._bind("logits", self.logits, output=True)
        for (past, present), array in zip(names, cache, strict=True):
            value = self._bind(past, array, output=False)
            self.binding.bind_ortvalue_output(present, value)

    def _bind(self, name: str, array: np.ndarray, *, output: bool) -> ort.OrtValue:
        value = ort.OrtValue.ortvalue_from_numpy(array)
        self._values.append(value)
        if output:
            self.binding.bind_ortvalue_output(name, value)
        else:
            self.binding.bind_ortvalue_input(name, value)
        return value

    def run(self, input_ids: np.ndarray, positions: np.ndarray, cached: np.ndarray) -> np.ndarray:
        """The logits of the last positions the graph returns (rows x positions x vocab, the bound
        buffer itself, valid until the next run); ``cached``: tokens already in each row's cache, which
        grows by the new tokens in place."""
        self.input_ids[...] = input_ids
        self.positions[...] = positions
        np.add(cached, input_ids.shape[1] - 1, out=self.seqlens, casting="unsafe")
        self.total[...] = self.seqlens.max() + 1
        self.session.run_with_iobinding(self.binding)
        return self.logits


class SlotEngine(Protocol):
    """What the slot batcher needs of a decoder (see :class:`inference.runtime.engine.DecoderEngine`)."""

    eos_ids: frozenset[int]
    kv_bytes_per_token: int
    guess_tokens: int  # guessed tokens a one-row step may check (0: the graph returns one position)

    def new_cache(self, rows: int, length: int) -> list[np.ndarray]: ...

    def bound_step(self, cache: Sequence[np.ndarray], new_tokens: int) -> BoundStep: ...


def slot_count(max_rows: int, length: int, bytes_per_token: int, budget: int | None) -> int:
    """How many slots of ``length`` tokens fit the budget (at least one, at most ``max_rows``)."""
    if budget is None:
        return max_rows
    return max(1, min(max_rows, budget // max(1, length * bytes_per_token)))


class SlotBatcher:
    """Runs prompts through a static-cache engine, at most ``max_rows`` at once (see module doc)."""

    def __init__(
        self,
        engine: SlotEngine,
        *,
        max_rows: int,
        memory_budget_bytes: int | None = None,
    ) -> None:
        self.engine = engine
        self.max_rows = max(1, int(max_rows))
        self.memory_budget_bytes = memory_budget_bytes
        self.peak_rows = 0
        self.cache_bytes = 0  # what the cache of the last call took
        # One-row steps that checked guesses, and the guessed tokens greedy decoding confirmed.
        self.speculative_steps = 0
        self.confirmed_guesses = 0

    def run(self, prompts: Sequence[Sequence[int]], budgets: Sequence[int]) -> list[list[int]]:
        """Each prompt's greedy answer ids (EOS included when reached), in the order of ``prompts``."""
        length = max(len(p) + b for p, b in zip(prompts, budgets, strict=True))
        rows = slot_count(
            min(self.max_rows, len(prompts)), length, self.engine.kv_bytes_per_token, self.memory_budget_bytes
        )
        cache = self.engine.new_cache(rows, length)
        self.cache_bytes = sum(array.nbytes for array in cache)
        self._cache, self._bound = cache, {}  # decode runs, bound once per (running rows, new tokens)
        self._lookups: dict[int, PromptLookup] = {}  # a row's context, once it has run alone
        answers: list[list[int]] = [[] for _ in prompts]
        waiting = deque(range(len(prompts)))
        slots: list[int] = []  # the prompt in each running slot
        cached = np.zeros(rows, dtype=np.int64)  # tokens in each slot's cache
        tokens = np.zeros((rows, 1), dtype=np.int64)  # the token each slot feeds next
        while waiting or slots:
            while waiting and len(slots) < rows:
                index = waiting.popleft()
                slot = len(slots)
                token = self._prefill(prompts[index], slot, cache)
                answers[index].append(token)
                if not self._finished(token, answers[index], budgets[index]):
                    slots.append(index)
                    cached[slot] = len(prompts[index])
                    tokens[slot, 0] = token
            if not slots:
                continue
            self.peak_rows = max(self.peak_rows, len(slots))
            if len(slots) == 1 and self.engine.guess_tokens:
                i = slots[0]
                done = self._speculate(i, prompts[i], answers[i], budgets[i], cached, tokens)
            else:
                done = self._step(slots, answers, budgets, cached, tokens)
            for slot in reversed(done):  # highest first, so the moves below never touch a done slot
                self._lookups.pop(slots[slot], None)
                self._release(slot, slots, cached, tokens, cache)
        return answers

    def _bound_step(self, count: int, new_tokens: int) -> BoundStep:
        """The run over the first ``count`` slots feeding ``new_tokens`` a row, bound on first use."""
        step = self._bound.get((count, new_tokens))
        if step is None:
            views = [array[:count] for array in self._cache]
            step = self._bound[(count, new_tokens)] = self.engine.bound_step(views, new_tokens)
        return step

    def _step(
        self,
        slots: list[int],
        answers: list[list[int]],
        budgets: Sequence[int],
        cached: np.ndarray,
        tokens: np.ndarray,
    ) -> list[int]:
        """One token for every running row; returns the slots whose row finished."""
        count = len(slots)
        logits = self._bound_step(count, 1).run(tokens[:count], cached[:count].reshape(-1, 1), cached[:count])
        tokens[:count, 0] = np.argmax(logits[:, -1], axis=-1)  # ties to the lowest id, as torch.argmax
        cached[:count] += 1
        done = []
        for slot, (index, token) in enumerate(zip(slots, tokens[:count, 0].tolist(), strict=True)):
            answers[index].append(token)
            if self._finished(token, answers[index], budgets[index]):
                done.append(slot)
        return done

    def _speculate(
        self,
        index: int,
        prompt: Sequence[int],
        answer: list[int],
        budget: int,
        cached: np.ndarray,
        tokens: np.ndarray,
    ) -> list[int]:
        """One step of the single running row (slot 0) checking guessed tokens; ``[0]`` when it finished.

        Fed: the pending token and the guesses; the model's choice after each fed token is that
        place's greedy token, and is valid as long as every guess before it was confirmed.
        """
        lookup = self._lookups.get(index)
        if lookup is None:
            lookup = self._lookups[index] = PromptLookup([*prompt, *answer])
        # Never guess past the answer budget (the cache is sized for it).
        guesses = lookup.guess(min(self.engine.guess_tokens, budget - len(answer) - 1))
        fed = 1 + len(guesses)
        step = self._bound_step(1, fed)
        ids = np.array([[int(tokens[0, 0]), *guesses]], dtype=np.int64)
        positions = cached[:1].reshape(1, 1) + np.arange(fed, dtype=np.int64)
        chosen = np.argmax(step.run(ids, positions, cached[:1])[0, -fed:], axis=-1).tolist()
        self.speculative_steps += 1
        kept, finished = 0, False
        for place, token in enumerate(chosen):
            answer.append(token)
            kept += 1
            finished = self._finished(token, answer, budget)
            if finished or place == len(guesses) or guesses[place] != token:
                break
        self.confirmed_guesses += kept - 1
        if finished:
            return [0]
        lookup.extend(chosen[:kept])
        cached[0] += kept  # the pending token and the confirmed guesses
        tokens[0, 0] = chosen[kept - 1]
        return []

    def _finished(self, token: int, answer: list[int], budget: int) -> bool:
        return token in self.engine.eos_ids or len(answer) >= budget

    def _prefill(self, prompt: Sequence[int], slot: int, cache: list[np.ndarray]) -> int:
        """Run one prompt into ``slot``'s cache; returns its first token."""
        ids = np.asarray([prompt], dtype=np.int64)
        positions = np.arange(len(prompt), dtype=np.int64).reshape(1, -1)
        step = self.engine.bound_step([a[slot : slot + 1] for a in cache], len(prompt))
        return int(np.argmax(step.run(ids, positions, np.zeros(1, dtype=np.int64))[0, -1]))

    @staticmethod
    def _release(
        slot: int, slots: list[int], cached: np.ndarray, tokens: np.ndarray, cache: list[np.ndarray]
    ) -> None:
        """Free ``slot``: the last running row moves into it (its own tokens only)."""
        last = len(slots) - 1
        if slot != last:
            length = int(cached[last])
            for array in cache:
                array[slot, :, :length] = array[last, :, :length]
            cached[slot] = cached[last]
            tokens[slot] = tokens[last]
            slots[slot] = slots[last]
        slots.pop()
