"""Evaluate an exported model: greedy answers of the ONNX graph on held-out pairs, scored against the
signed reports with the discrepancy engine.

The decoding loop here is deliberately the plainest one (batch of one, key/value cache, argmax, stop at
end-of-text): the numbers in a card describe what the graph itself answers, independent of the
serving runtime's batching.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from inference.compare import CATEGORIES, compare
from inference.compare.metrics import chrf

from .corpus import Pair


class GreedyDecoder:
    """Greedy decoding over an artifact directory's ``model.onnx`` and ``tokenizer.json``."""

    def __init__(self, directory: Path, *, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(directory / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        self.eos = int(config["eos_token_id"])
        self.max_positions = int(config.get("n_positions") or config.get("max_position_embeddings") or 1024)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.past_names = [n for n in self.inputs if n.startswith("past_key_values.")]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def _empty_past(self, name: str) -> np.ndarray:
        # Shapes are (batch, heads, past_length, head_dim); only batch and past_length are symbolic.
        shape = [d if isinstance(d, int) else 0 for d in self.inputs[name].shape]
        shape[0] = 1
        return np.zeros(shape, dtype=np.float32)

    def generate_ids(self, prompt: str, max_new_tokens: int) -> list[int]:
        """The answer's token ids (without the end-of-text token)."""
        ids = self.tokenizer.encode(prompt).ids
        budget = min(max_new_tokens, self.max_positions - len(ids))
        feed: dict[str, np.ndarray] = {name: self._empty_past(name) for name in self.past_names}
        step_ids = np.array([ids], dtype=np.int64)
        length, answer = 0, []
        while len(answer) < budget:
            width = step_ids.shape[1]
            feed["input_ids"] = step_ids
            feed["attention_mask"] = np.ones((1, length + width), dtype=np.int64)
            if "position_ids" in self.inputs:
                feed["position_ids"] = np.arange(length, length + width, dtype=np.int64)[None, :]
            results = dict(zip(self.outputs, self.session.run(self.outputs, feed), strict=True))
            token = int(np.argmax(results["logits"][0, -1]))
            if token == self.eos:
                break
            answer.append(token)
            length += width
            for name in self.past_names:
                feed[name] = results[name.replace("past_key_values.", "present.")]
            step_ids = np.array([[token]], dtype=np.int64)
        return answer

    def generate(self, prompt: str, max_new_tokens: int) -> str:
        """The decoded answer text."""
        return self.tokenizer.decode(self.generate_ids(prompt, max_new_tokens), skip_special_tokens=True)


def _engine_scores(outputs: Sequence[str], pairs: Sequence[Pair]) -> dict[str, Any]:
    matched = significant = entirely_right = 0
    per_category: dict[str, Counter[str]] = {c: Counter() for c in CATEGORIES}
    for text, pair in zip(outputs, pairs, strict=True):
        result = compare(text, pair.target)
        matched += int(result.scores["matched_findings"])
        significant += len(result.significant)
        entirely_right += not result.significant
        for d in result.discrepancies:
            per_category[d.category][d.significance] += 1
    facts = matched + significant
    return {
        # A fact is a finding of the signed report (or one the model invented): right when matched
        # without a significant discrepancy. GREEN's formula with the engine's rule-based counts.
        "facts_right_share": round(matched / facts, 4) if facts else 1.0,
        "facts_matched": matched,
        "significant_discrepancies": significant,
        "reports_entirely_right_share": round(entirely_right / len(pairs), 4),
        "per_category": {c: dict(sorted(per_category[c].items())) for c in CATEGORIES},
    }


def evaluate_kind(
    decoder: GreedyDecoder, pairs: Sequence[Pair], *, max_new_tokens: int
) -> tuple[dict[str, Any], list[str]]:
    """Metrics of one kind on its held-out pairs, and the generated texts (same order)."""
    outputs = [decoder.generate(p.prompt, max_new_tokens) for p in pairs]
    metrics: dict[str, Any] = {
        "pairs": len(pairs),
        "exact_match_share": round(
            sum(o.strip() == p.target.strip() for o, p in zip(outputs, pairs, strict=True)) / len(pairs), 4
        ),
        "empty_outputs": sum(1 for o in outputs if not o.strip()),
        "chrf_mean": round(
            sum(chrf(o, p.target) for o, p in zip(outputs, pairs, strict=True)) / len(pairs), 4
        ),
    }
    if pairs[0].kind in ("report_draft", "prior_comparison"):
        metrics.update(_engine_scores(outputs, pairs))
    return metrics, outputs
