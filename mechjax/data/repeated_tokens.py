"""Repeated random tokens: the classic induction-head setting, generated in one place.

A sequence is `length` uniformly random tokens followed by the same tokens again (optionally
after a BOS token). On the second copy every token is predictable from its earlier
occurrence, so a model that forms induction heads drives the second-copy loss far below
the first-copy loss (which cannot beat ln(d_vocab)).

* :func:`fixed` -- BOS + `length` random tokens shown `repeats` times. Takes a JAX key (a
  jittable JAX array) or a NumPy `Generator` / int seed (a NumPy array: fixed host-side eval
  sets such as the zoo's head scores).
* :func:`sample` -- the training sampler: the fixed form, or (with `min_length`) a repeat of
  random length inside a longer context of fresh tokens.
* :func:`batch` -- `sample` keyed by `fold_in(key, step)`, a pure function of (key, step).

Tokens never equal `bos`: they are drawn from the `d_vocab - 1` other ids (the draw is shifted
past `bos`), so with `bos=0` they are `1..d_vocab-1`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _n_draw(fn: str, length: int, d_vocab: int, bos: int | None, repeats: int = 2) -> int:
    """Checks the shared arguments; returns how many token ids can be drawn."""
    if length < 1:
        raise ValueError(f"repeated_tokens.{fn}: length must be >= 1, got {length}.")
    if repeats < 1:
        raise ValueError(f"repeated_tokens.{fn}: repeats must be >= 1, got {repeats}.")
    if bos is not None and not 0 <= bos < d_vocab:
        raise ValueError(f"repeated_tokens.{fn}: bos={bos} is outside [0, {d_vocab}).")
    n_draw = d_vocab - (bos is not None)
    if n_draw < 2:
        raise ValueError(f"repeated_tokens.{fn}: d_vocab={d_vocab} leaves < 2 tokens to draw.")
    return n_draw


def _with_bos(xp, tokens, bos: int | None):
    """`tokens` shifted past `bos` (so it never appears inside), then `bos` prepended; int32."""
    if bos is not None:
        tokens = tokens + (tokens >= bos)
        col = xp.full((tokens.shape[0], 1), bos, tokens.dtype)
        tokens = xp.concatenate([col, tokens], axis=1)
    return tokens.astype(xp.int32)


def fixed(key, batch_size: int, length: int, d_vocab: int, bos: int | None = None, repeats=2):
    """`length` random tokens shown `repeats` times, optionally after a BOS token.

    Args:
      key: a JAX PRNG key (used as given: one `jax.random.randint` draw; returns a JAX array,
        jittable), or a `numpy.random.Generator` or int seed (one `Generator.integers` draw;
        returns a NumPy array).
      batch_size, length: output is `[batch, repeats * length]` (`+1` with a BOS).
      d_vocab: tokens are drawn uniformly from `[0, d_vocab)`, excluding `bos` if given.
      bos: optional token id prepended to every sequence.
      repeats: how many times the random tokens are shown (2: once repeated).

    Returns:
      int32 tokens with `tokens[:, o + r * length + i] == tokens[:, o + i]` for every copy `r`,
      `o = 1 if bos is not None else 0`.
    """
    n_draw = _n_draw("fixed", length, d_vocab, bos, repeats)
    if isinstance(key, (int, np.integer, np.random.Generator)):
        first = np.random.default_rng(key).integers(0, n_draw, (batch_size, length))
        return _with_bos(np, np.concatenate([first] * repeats, axis=1), bos)
    first = jax.random.randint(key, (batch_size, length), 0, n_draw)
    return _with_bos(jnp, jnp.concatenate([first] * repeats, axis=1), bos)


def sample(
    key,
    batch_size: int,
    length: int,
    d_vocab: int,
    bos: int | None = None,
    min_length=None,
    context: int | None = None,
):
    """Random tokens repeated once (JAX, jittable).

    Args:
      key: PRNG key; it is split and the first half draws the tokens, so without `min_length`
        this is `fixed(jax.random.split(key)[0], batch_size, length, d_vocab, bos)`.
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
    n_draw = _n_draw("sample", length, d_vocab, bos)
    if min_length is not None and not 1 <= min_length <= length:
        raise ValueError(
            f"repeated_tokens.sample: min_length={min_length} must be in [1, length={length}]."
        )
    if context is not None and (min_length is None or context < 2 * length):
        raise ValueError(
            f"repeated_tokens.sample: context={context} needs min_length and must be >= "
            f"2 * length = {2 * length}."
        )
    k_tok, k_len = jax.random.split(key)
    if min_length is None:
        return fixed(k_tok, batch_size, length, d_vocab, bos)
    n = context or 2 * length
    fresh = jax.random.randint(k_tok, (batch_size, n), 0, n_draw)
    ell = jax.random.randint(k_len, (batch_size, 1), min_length, length + 1)  # [batch, 1]
    pos = jnp.arange(n)[None, :]
    src = jnp.where((pos >= ell) & (pos < 2 * ell), pos - ell, pos)  # copy or keep
    return _with_bos(jnp, jnp.take_along_axis(fresh, src, axis=1), bos)


def batch(key, step, batch_size: int, length: int, d_vocab: int, bos=None, min_length=None):
    """`sample` keyed by `fold_in(key, step)`: a pure function of (key, step)."""
    return sample(jax.random.fold_in(key, step), batch_size, length, d_vocab, bos, min_length)
