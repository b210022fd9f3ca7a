"""Reference-free text overlap scores: ROUGE-L (token LCS F-measure) and chrF (character n-gram F2).

Both are computed with the standard library. Inputs are capped (see constants) so a hostile 1 MB
report costs a bounded amount of time and memory; real reports are far below the caps.
"""

from __future__ import annotations

import re
from collections import Counter

_WORD_RE = re.compile(r"[^\W_]+")
#: ROUGE-L reads at most this many tokens per text (the bit-parallel LCS holds one int per token type).
ROUGE_MAX_TOKENS = 10_000
#: chrF reads at most this many non-space characters per text.
CHRF_MAX_CHARS = 50_000
CHRF_ORDER = 6
CHRF_BETA = 2.0


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison-Dix / Hyyro).

    Each token of ``b`` updates one big-int row in O(len(a) / machine word), so 10,000 x 10,000 tokens
    take well under a second instead of the 10^8 steps of the textbook table.
    """
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for index, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << index)
    full = (1 << len(a)) - 1
    row = full
    for token in b:
        match = masks.get(token)
        if match is None:
            continue
        low = row & match
        row = ((row + low) | (row - low)) & full
    return len(a) - row.bit_count()


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over lowercase word tokens (0..1; 1.0 when both texts are empty)."""
    a = _WORD_RE.findall(candidate.lower())[:ROUGE_MAX_TOKENS]
    b = _WORD_RE.findall(reference.lower())[:ROUGE_MAX_TOKENS]
    if not a and not b:
        return 1.0
    lcs = lcs_length(a, b)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def char_ngrams(text: str) -> tuple[Counter[str], ...]:
    """Character n-gram counts for n = 1..6 over the text with whitespace removed (chrF convention)."""
    squeezed = "".join(text.lower().split())[:CHRF_MAX_CHARS]
    return tuple(
        Counter(squeezed[i : i + n] for i in range(len(squeezed) - n + 1)) for n in range(1, CHRF_ORDER + 1)
    )


def chrf(
    candidate: str,
    reference: str,
    candidate_ngrams: tuple[Counter[str], ...] | None = None,
    reference_ngrams: tuple[Counter[str], ...] | None = None,
) -> float:
    """chrF (Popovic 2015, beta = 2): averaged character n-gram precision and recall, 0..1."""
    cand = candidate_ngrams if candidate_ngrams is not None else char_ngrams(candidate)
    ref = reference_ngrams if reference_ngrams is not None else char_ngrams(reference)
    precisions, recalls = [], []
    for c_counts, r_counts in zip(cand, ref, strict=True):
        c_total, r_total = sum(c_counts.values()), sum(r_counts.values())
        if c_total == 0 or r_total == 0:
            continue
        overlap = sum((c_counts & r_counts).values())
        precisions.append(overlap / c_total)
        recalls.append(overlap / r_total)
    if not precisions:
        return 1.0 if not any(cand[0]) and not any(ref[0]) else 0.0
    precision = sum(precisions) / len(precisions)
    recall = sum(recalls) / len(recalls)
    if precision + recall == 0:
        return 0.0
    beta2 = CHRF_BETA**2
    return (1 + beta2) * precision * recall / (beta2 * precision + recall)
