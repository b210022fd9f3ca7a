"""Continuous batching for greedy decoding: rows leave when done, waiting prompts join the running batch.

A static batch runs as long as its longest answer while finished rows sit idle (or, when they leave, the
batch shrinks to a few rows): a batch of 32 was slower per report than a batch of 8 (issue #18). Here at
most ``max_rows`` rows run at once; each step, finished rows leave, and waiting prompts are run through
the prompt ("prefill") step as one group and merged into the running batch.

Why the answers stay byte-identical whatever the company: every row is left-padded and masked, and
given the position ids it would have alone, in the prefill group as in the running batch; the KV cache
columns a row never had are zeros under a zero mask. Leading columns no row uses any more are cut off
when rows leave, so the cache is as wide as the longest row still running, not as the oldest one was.

Memory: the KV cache of the running batch (past and present, both alive during a step) is kept under
``memory_budget_bytes``: a prompt is admitted only when the cache with it fits, and when the rows'
growth passes the budget the most recently admitted rows are evicted and queued again (decoding is
deterministic, so they restart and give the same answer). A single row always runs, whatever its size.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class StepEngine(Protocol):
    """What the batcher needs of a decoder (see :class:`inference.runtime.engine.DecoderEngine`)."""

    pad_id: int
    eos_ids: frozenset[int]
    kv_bytes_per_token: int

    def empty_past(self, rows: int) -> list[np.ndarray]: ...

    def step(
        self, input_ids: np.ndarray, mask: np.ndarray, positions: np.ndarray, past: Sequence[Any]
    ) -> tuple[np.ndarray, list[Any]]: ...


def _as_array(tensor: Any) -> np.ndarray:
    """A KV-cache tensor as numpy (an onnxruntime value is copied to the host)."""
    return tensor if isinstance(tensor, np.ndarray) else tensor.numpy()


@dataclasses.dataclass
class RunningBatch:
    """The rows decoding together: which prompt each row is, its mask, length, cache and next token.

    Invariant between steps: the cache and the mask have the same width (tokens seen so far, padded).
    """

    rows: np.ndarray  # index of the prompt each row decodes
    mask: np.ndarray  # (rows, width) int64, 1 where a real token is cached
    lengths: np.ndarray  # real tokens cached per row (the next token's position)
    past: list[Any]  # one (rows, kv_heads, width, head_dim) tensor per past input
    tokens: np.ndarray  # the token each row feeds next

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def width(self) -> int:
        """Columns of the cache (the longest row's tokens plus left padding)."""
        return int(self.mask.shape[1])

    def select(self, keep: Sequence[int]) -> RunningBatch:
        """Only the rows at positions ``keep``, with the leading columns none of them uses cut off."""
        index = np.asarray(keep, dtype=np.int64)
        mask = self.mask[index]
        used = np.flatnonzero(mask.any(axis=0))
        start = int(used[0]) if len(used) else mask.shape[1]
        return RunningBatch(
            rows=self.rows[index],
            mask=np.ascontiguousarray(mask[:, start:]),
            lengths=self.lengths[index],
            past=[np.ascontiguousarray(_as_array(t)[index][:, :, start:]) for t in self.past],
            tokens=self.tokens[index],
        )

    def merged(self, other: RunningBatch) -> RunningBatch:
        """Both batches as one: the narrower is left-padded (zero cache columns under a zero mask)."""
        width = max(self.width, other.width)

        def pad(mask: np.ndarray, past: list[Any]) -> tuple[np.ndarray, list[np.ndarray]]:
            extra = width - mask.shape[1]
            arrays = [_as_array(t) for t in past]
            if not extra:
                return mask, arrays
            mask = np.pad(mask, ((0, 0), (extra, 0)))
            return mask, [np.pad(a, ((0, 0), (0, 0), (extra, 0), (0, 0))) for a in arrays]

        mine, theirs = pad(self.mask, self.past), pad(other.mask, other.past)
        return RunningBatch(
            rows=np.concatenate([self.rows, other.rows]),
            mask=np.concatenate([mine[0], theirs[0]]),
            lengths=np.concatenate([self.lengths, other.lengths]),
            past=[np.concatenate(pair) for pair in zip(mine[1], theirs[1], strict=True)],
            tokens=np.concatenate([self.tokens, other.tokens]),
        )


class ContinuousBatcher:
    """Runs a list of prompts through one engine, at most ``max_rows`` at once (see module doc)."""

    def __init__(self, engine: StepEngine, *, max_rows: int, memory_budget_bytes: int | None = None) -> None:
        self.engine = engine
        self.max_rows = max(1, int(max_rows))
        self.memory_budget_bytes = memory_budget_bytes
        #: The most rows that ran at once, and how many evictions the budget forced (for tests, benches).
        self.peak_rows = 0
        # The largest cache a step of several rows ran with (a single row runs whatever its size).
        self.peak_cache_bytes = 0
        self.evictions = 0
        self.prompts: Sequence[Sequence[int]] = ()
        self.budgets: list[int] = []
        self.answers: list[list[int]] = []

    def cache_bytes(self, rows: int, width: int) -> int:
        """The KV cache of ``rows`` rows of ``width`` columns, past and present together."""
        return 2 * rows * width * self.engine.kv_bytes_per_token

    def _fits(self, rows: int, width: int) -> bool:
        return self.memory_budget_bytes is None or self.cache_bytes(rows, width) <= self.memory_budget_bytes

    def run(self, prompts: Sequence[Sequence[int]], budgets: Sequence[int]) -> list[list[int]]:
        """Each prompt's greedy answer ids (EOS included when reached), in the order of ``prompts``."""
        self.answers = [[] for _ in prompts]
        self.budgets = list(budgets)
        self.prompts = prompts
        waiting: deque[int] = deque(range(len(prompts)))
        admitted: list[int] = []  # rows in order of admission, newest last (evicted first)
        running: RunningBatch | None = None
        while waiting or running is not None:
            group = self._admit(waiting, running)
            if group:
                admitted += group
                joined = self._prefill(group)
                if joined is not None:
                    running = joined if running is None else running.merged(joined)
            if running is None:
                continue
            self.peak_rows = max(self.peak_rows, len(running))
            if len(running) > 1:
                step_bytes = self.cache_bytes(len(running), running.width + 1)
                self.peak_cache_bytes = max(self.peak_cache_bytes, step_bytes)
            running = self._decode(running)
            if running is not None:
                running = self._evict_over_budget(running, waiting, admitted)
        return self.answers

    def _admit(self, waiting: deque[int], running: RunningBatch | None) -> list[int]:
        """The waiting prompts that join now: free rows permitting, and the memory budget."""
        rows, width = (len(running), running.width) if running is not None else (0, 0)
        group: list[int] = []
        while waiting and rows + len(group) < self.max_rows:
            candidate = waiting[0]
            wider = max(width, len(self.prompts[candidate]))
            if (rows or group) and not self._fits(rows + len(group) + 1, wider + 1):
                break
            group.append(waiting.popleft())
            width = wider
        return group

    def _prefill(self, group: list[int]) -> RunningBatch | None:
        """Run the prompts of ``group`` once (left-padded together) and choose their first tokens."""
        width = max(len(self.prompts[i]) for i in group)
        input_ids = np.full((len(group), width), self.engine.pad_id, dtype=np.int64)
        mask = np.zeros((len(group), width), dtype=np.int64)
        for row, index in enumerate(group):
            prompt = self.prompts[index]
            input_ids[row, width - len(prompt) :] = prompt
            mask[row, width - len(prompt) :] = 1
        # The positions each row would have alone; padding gets 1, as transformers does.
        positions = np.where(mask == 1, np.cumsum(mask, axis=1) - 1, 1).astype(np.int64)
        logits, present = self.engine.step(input_ids, mask, positions, self.engine.empty_past(len(group)))
        batch = RunningBatch(
            rows=np.asarray(group, dtype=np.int64),
            mask=mask,
            lengths=mask.sum(axis=1),
            past=present,
            tokens=np.zeros(len(group), dtype=np.int64),
        )
        return self._choose(batch, logits)

    def _decode(self, batch: RunningBatch) -> RunningBatch | None:
        """One token for every running row."""
        mask = np.concatenate([batch.mask, np.ones((len(batch), 1), dtype=np.int64)], axis=1)
        logits, present = self.engine.step(
            batch.tokens.reshape(-1, 1), mask, batch.lengths.reshape(-1, 1).astype(np.int64), batch.past
        )
        grown = RunningBatch(batch.rows, mask, batch.lengths + 1, present, batch.tokens)
        return self._choose(grown, logits)

    def _choose(self, batch: RunningBatch, logits: np.ndarray) -> RunningBatch | None:
        """Append each row's greedy token; rows that reached EOS or their budget leave the batch."""
        # Ties go to the lowest id, as torch.argmax does.
        chosen = np.argmax(logits, axis=-1).astype(np.int64)
        keep = []
        for position, (row, token) in enumerate(zip(batch.rows.tolist(), chosen.tolist(), strict=True)):
            answer = self.answers[row]
            answer.append(token)
            if token not in self.engine.eos_ids and len(answer) < self.budgets[row]:
                keep.append(position)
        batch.tokens = chosen
        if not keep:
            return None
        return batch if len(keep) == len(batch) else batch.select(keep)

    def _evict_over_budget(
        self, batch: RunningBatch, waiting: deque[int], admitted: list[int]
    ) -> RunningBatch:
        """Evict the newest rows while the cache (one step ahead) exceeds the budget; they start again."""
        if self._fits(len(batch), batch.width + 1) or len(batch) == 1:
            return batch
        present = set(batch.rows.tolist())
        newest_first = [row for row in reversed(admitted) if row in present]
        evicted: list[int] = []
        while len(batch) - len(evicted) > 1 and not self._fits(len(batch) - len(evicted), batch.width + 1):
            evicted.append(newest_first[len(evicted)])
        for row in evicted:  # back to the front of the queue, the oldest of them first
            self.answers[row] = []
            waiting.appendleft(row)
            admitted.remove(row)
        self.evictions += len(evicted)
        gone = set(evicted)
        return batch.select([i for i, row in enumerate(batch.rows.tolist()) if row not in gone])
