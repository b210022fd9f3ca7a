"""Train a small GPT-2-style decoder from scratch on prompt/target pairs, deterministically.

The loss covers the answer and its end-of-text token only (the prompt is context, not something to
learn to write). Determinism: a fixed seed for weights, batch order and dropout, deterministic torch
kernels and a fixed intra-op thread count. The same seed and thread count give byte-identical weights;
another thread count changes the order of float reductions and so the weights (measured here).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer
from transformers import GPT2Config, GPT2LMHeadModel

from .common import TrainSettings
from .tokenizer import special_ids

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    """One tokenised pair: ids of prompt + answer + EOS, and the labels (-100 over the prompt)."""

    input_ids: list[int]
    labels: list[int]


def examples_encode(
    tokenizer: Tokenizer, pairs: Sequence[tuple[str, str]], *, max_length: int
) -> tuple[list[Example], int]:
    """Tokenise ``(prompt, target)`` pairs; returns the examples and how many were too long to keep.

    Prompt and target are encoded separately and joined, exactly as generation sees them: the prompt
    alone, then the answer token by token.
    """
    eos = special_ids(tokenizer)["eos_token_id"]
    examples, too_long = [], 0
    prompts = tokenizer.encode_batch([p for p, _ in pairs])
    targets = tokenizer.encode_batch([t for _, t in pairs])
    for prompt, target in zip(prompts, targets, strict=True):
        ids = prompt.ids + target.ids + [eos]
        if len(ids) > max_length:
            too_long += 1
            continue
        labels = [IGNORE_INDEX] * len(prompt.ids) + target.ids + [eos]
        examples.append(Example(ids, labels))
    return examples, too_long


def model_config(settings: TrainSettings, tokenizer: Tokenizer) -> GPT2Config:
    """The GPT-2 configuration for this tokenizer (its EOS doubles as BOS, as in GPT-2)."""
    ids = special_ids(tokenizer)
    return GPT2Config(
        vocab_size=tokenizer.get_vocab_size(),
        n_positions=settings.n_positions,
        n_embd=settings.n_embd,
        n_layer=settings.n_layer,
        n_head=settings.n_head,
        resid_pdrop=settings.dropout,
        embd_pdrop=settings.dropout,
        attn_pdrop=settings.dropout,
        bos_token_id=ids["eos_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=ids["pad_token_id"],
    )


def _batch(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(e.input_ids) for e in examples)
    ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in examples]
    labels = [e.labels + [IGNORE_INDEX] * (width - len(e.labels)) for e in examples]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in examples]
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
        "attention_mask": torch.tensor(mask, dtype=torch.long),
    }


def _epoch_batches(examples: Sequence[Example], size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches, each of examples of similar length (less padding, about half the compute).

    Shuffled, then sorted by length within windows of 32 batches, then the batches shuffled: still a
    random order of random batches, and a pure function of the generator's state.
    """
    order = list(range(len(examples)))
    rng.shuffle(order)
    window = size * 32
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: (len(examples[i].input_ids), i))
        batches += [chunk[j : j + size] for j in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return batches


def _lr_at(step: int, settings: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak."""
    if step < settings.warmup_steps:
        return settings.learning_rate * (step + 1) / settings.warmup_steps
    span = max(1, settings.max_steps - settings.warmup_steps)
    progress = min(1.0, (step - settings.warmup_steps) / span)
    ratio = settings.min_lr_ratio + (1 - settings.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return settings.learning_rate * ratio


def set_determinism(settings: TrainSettings) -> None:
    """Seed every generator torch uses and pin the kernels and thread count."""
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    torch.use_deterministic_algorithms(True)


def model_train(
    examples: Sequence[Example],
    tokenizer: Tokenizer,
    settings: TrainSettings,
    *,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[GPT2LMHeadModel, dict[str, float]]:
    """Train a fresh model on ``examples`` for ``settings.max_steps`` steps.

    Returns the model (in eval mode) and training statistics (final loss, seconds, parameters).
    """
    if not examples:
        raise ValueError("no training examples")
    set_determinism(settings)
    model = GPT2LMHeadModel(model_config(settings, tokenizer))
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.learning_rate,
        betas=(0.9, 0.98),
    )
    pad_id = special_ids(tokenizer)["pad_token_id"]
    order_rng = random.Random(settings.seed)
    batches: list[list[int]] = []
    started = time.monotonic()
    recent: list[float] = []
    for step in range(settings.max_steps):
        if not batches:
            batches = _epoch_batches(examples, settings.batch_size, order_rng)
        batch = _batch([examples[i] for i in batches.pop()], pad_id)
        for group in optimiser.param_groups:
            group["lr"] = _lr_at(step, settings)
        loss = model(**batch).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimiser.step()
        recent = [*recent[-49:], float(loss.detach())]
        if progress is not None and (step + 1) % 50 == 0:
            progress(step + 1, sum(recent) / len(recent))
    model.eval()
    stats = {
        "final_loss": round(sum(recent) / len(recent), 4),
        "train_seconds": round(time.monotonic() - started, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "examples": len(examples),
    }
    return model, stats
