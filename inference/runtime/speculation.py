"""Guessing a row's next tokens from its own prompt, for speculative greedy decoding (prompt lookup).

A decode step of one row reads every weight of the model to produce one token (memory-bound at batch
1: docs/runtime.md). A step fed the pending token plus a few GUESSED tokens reads the weights once and
returns the model's choice after each of them; every guess that equals the model's own choice is a
token gained, the first wrong guess and everything after it are dropped. The text is the greedy text
whatever is guessed: a guess is only kept when it is the token greedy decoding chooses at that place.

Guesses come from the row's own context (prompt and answer so far): the tokens that followed the latest
earlier occurrence of its last three, two or one tokens (a draft report repeats the laterality,
locations and sizes of its findings). They depend on that row's tokens alone, so a prompt is run the
same way, and gives the same answer, whatever else runs.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Longest n-gram looked up (then shorter ones), as transformers' ``prompt_lookup`` does.
MAX_NGRAM = 3


class PromptLookup:
    """The tokens of one row, with the latest end of every n-gram (n <= MAX_NGRAM) seen before its tail."""

    def __init__(self, tokens: Sequence[int]) -> None:
        self.tokens: list[int] = []
        # n-gram -> index of its last token, for n-grams ending before the last token.
        self._ends: dict[tuple[int, ...], int] = {}
        self.extend(tokens)

    def extend(self, tokens: Sequence[int]) -> None:
        """Append tokens (the row's accepted answer tokens)."""
        for token in tokens:
            self._index_tail()
            self.tokens.append(int(token))

    def _index_tail(self) -> None:
        """Record the n-grams ending at the current last token (before another one follows it)."""
        end = len(self.tokens) - 1
        for n in range(1, min(MAX_NGRAM, end + 1) + 1):
            self._ends[tuple(self.tokens[end - n + 1 : end + 1])] = end

    def guess(self, count: int) -> list[int]:
        """Up to ``count`` tokens that followed the latest earlier occurrence of the longest tail n-gram."""
        if count <= 0:
            return []
        tokens = self.tokens
        for n in range(min(MAX_NGRAM, len(tokens)), 0, -1):
            end = self._ends.get(tuple(tokens[-n:]))
            if end is not None:
                return tokens[end + 1 : end + 1 + count]
        return []
