"""The byte-level BPE tokenizer of a model built here, trained on the training split only.

Byte-level, so any text (names, units, typos) can be encoded without an unknown token. The task
prefixes, the answer mark, the end-of-text token and the padding token are special tokens: each is one
id, never split or merged with its neighbours, and ``decode(..., skip_special_tokens=True)`` drops them.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from inference.prompts import ANSWER_MARK, TASK_PREFIXES

EOS_TOKEN = "<|endoftext|>"  # noqa: S105 (a token of the vocabulary, not a secret)
PAD_TOKEN = "<pad>"  # noqa: S105
#: Fixed order, so the special ids are the same for every model built here: EOS 0, PAD 1, answer 2, ...
SPECIAL_TOKENS: tuple[str, ...] = (EOS_TOKEN, PAD_TOKEN, ANSWER_MARK, *TASK_PREFIXES.values())


def tokenizer_train(texts: Iterable[str], *, vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE tokenizer of at most ``vocab_size`` tokens on ``texts``.

    Deterministic for the same texts in the same order (the BPE trainer breaks ties by token order).
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """The ids of the end-of-text and padding tokens."""
    eos, pad = tokenizer.token_to_id(EOS_TOKEN), tokenizer.token_to_id(PAD_TOKEN)
    if eos is None or pad is None:
        raise ValueError("the tokenizer has no end-of-text or padding token")
    return {"eos_token_id": eos, "pad_token_id": pad}
