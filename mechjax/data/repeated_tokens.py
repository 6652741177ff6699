"""Repeated random tokens: the classic induction-head setting.

A sequence is `L` uniformly random tokens followed by the same `L` tokens again (optionally
after a BOS token). On the second copy every token is predictable from its earlier
occurrence, so a model that forms induction heads drives the second-copy loss far below
the first-copy loss (which cannot beat ln(d_vocab)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sample(
    key,
    batch_size: int,
    length: int,
    d_vocab: int,
    bos: int | None = None,
    min_length=None,
    context: int | None = None,
):
    """Random tokens repeated once.

    Args:
      key: PRNG key.
      batch_size, length: output is `[batch, 2 * length]` (`+1` with a BOS).
      d_vocab: tokens are drawn uniformly from `[0, d_vocab)`, excluding `bos` if given.
      bos: optional token id prepended to every sequence.
      min_length: if given, each sequence repeats its first `l ~ U[min_length, length]` tokens
        (positions `l..2l-1` copy `0..l-1`) and is filled with fresh random tokens after.
        A fixed `l` lets a model "copy from `length - 1` positions back" with positional
        attention alone; varying `l` forces a real (content-based) induction head.
      context: with `min_length`, the sequence length before the BOS (default `2 * length`,
        at least that): longer sequences continue with fresh random tokens, so the repeat
        is a smaller part of each row (the zoo's induction probe varies this).

    Returns:
      int32 tokens `[batch, context or 2 * length (+1)]`; without `min_length`,
      `tokens[:, o + length + i] == tokens[:, o + i]` with `o = 1 if bos is not None else 0`.
    """
    if length < 1:
        raise ValueError(f"repeated_tokens.sample: length must be >= 1, got {length}.")
    if min_length is not None and not 1 <= min_length <= length:
        raise ValueError(
            f"repeated_tokens.sample: min_length={min_length} must be in [1, length={length}]."
        )
    if context is not None and (min_length is None or context < 2 * length):
        raise ValueError(
            f"repeated_tokens.sample: context={context} needs min_length and must be >= "
            f"2 * length = {2 * length}."
        )
    if bos is not None and not 0 <= bos < d_vocab:
        raise ValueError(f"repeated_tokens.sample: bos={bos} is outside [0, {d_vocab}).")
    n_draw = d_vocab - (bos is not None)
    if n_draw < 2:
        raise ValueError(f"repeated_tokens.sample: d_vocab={d_vocab} leaves < 2 tokens to draw.")
    k_tok, k_len = jax.random.split(key)
    if min_length is None:
        first = jax.random.randint(k_tok, (batch_size, length), 0, n_draw)
        tokens = jnp.concatenate([first, first], axis=1)  # [batch, 2 * length]
    else:
        n = context or 2 * length
        fresh = jax.random.randint(k_tok, (batch_size, n), 0, n_draw)
        ell = jax.random.randint(k_len, (batch_size, 1), min_length, length + 1)  # [batch, 1]
        pos = jnp.arange(n)[None, :]
        src = jnp.where((pos >= ell) & (pos < 2 * ell), pos - ell, pos)  # copy or keep
        tokens = jnp.take_along_axis(fresh, src, axis=1)
    if bos is not None:  # skip the BOS id so it never appears inside a sequence
        tokens = tokens + (tokens >= bos)
        tokens = jnp.concatenate([jnp.full((batch_size, 1), bos, tokens.dtype), tokens], axis=1)
    return tokens.astype(jnp.int32)


def batch(key, step, batch_size: int, length: int, d_vocab: int, bos=None, min_length=None):
    """`sample` keyed by `fold_in(key, step)`: a pure function of (key, step)."""
    return sample(jax.random.fold_in(key, step), batch_size, length, d_vocab, bos, min_length)
