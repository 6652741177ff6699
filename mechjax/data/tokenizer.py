"""Byte-level BPE tokenizers trained locally with the `tokenizers` library.

Words carry their leading space (GPT-2 style). Digit runs are chunked into pairs from the
left with the leading space kept (`" 1732"` -> `" 17"`, `"32"`; `" 19"` -> `" 19"`), so that
every number below 100 can be one token: greater-than years, arithmetic operands and
successor numbers become single tokens, as in GPT-2 for two-digit years.
"""

from __future__ import annotations

from collections.abc import Iterable

BOS = "<|endoftext|>"  # the only special token: BOS, document separator and padding


def _pre_tokenizer():
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            # isolate " ?dd" chunks first; ByteLevel's GPT-2 regex then keeps " 17" together
            pre_tokenizers.Split(Regex(r" ?\d\d?"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


def train_bpe(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2):
    """A byte-level BPE `tokenizers.Tokenizer` trained on `texts`.

    Args:
      texts: training documents (an iterable of strings; consumed once).
      vocab_size: total vocabulary including the 256 byte tokens and `<|endoftext|>` (id 0).
      min_frequency: merges seen fewer times are not learned.

    Returns:
      The tokenizer; `<|endoftext|>` is id 0 (BOS, document separator and padding).
    """
    from tokenizers import Tokenizer, decoders, models, trainers
    from tokenizers import pre_tokenizers as pt

    if vocab_size < 300:
        raise ValueError(f"train_bpe: vocab_size={vocab_size} must be >= 300 (256 bytes + merges).")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[BOS],
        initial_alphabet=pt.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok
