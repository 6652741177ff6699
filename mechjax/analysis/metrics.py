"""Patching metrics: functions of the model's output -> scalar.

Per-position outputs (`logits [batch, pos, d_vocab]` of an LM or a decoder): a metric built
here also records which positions it reads (`.positions`), so sweeps unembed only those
positions: same values, without the `pos x d_model x d_vocab` unembedding of every
patched forward (a third of GPT-2-small's FLOPs). Pooled outputs (a ViT's class logits
`[batch, class]`): `class_logit_diff`, or any plain function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True, eq=False)
class LogitMetric:
    """A metric that reads only `positions` of the logits.

    `metric(logits)` on full logits `[batch, pos, d_vocab]` equals
    `metric.fn(logits[:, positions])`; sweeps call `fn` on logits computed only there.
    """

    fn: Callable
    positions: tuple[int, ...]

    def __call__(self, logits):
        if jnp.ndim(logits) < 3:
            raise ValueError(
                f"this metric reads positions {self.positions} of per-position logits "
                f"[batch, pos, d_vocab], got shape {jnp.shape(logits)}; for class logits "
                f"[batch, class] use metrics.class_logit_diff."
            )
        return self.fn(logits[:, list(self.positions)])


def _token_logit(logits, tokens):
    """logits [batch, d_vocab], tokens int or [batch] -> [batch]."""
    tokens = jnp.asarray(tokens)
    if tokens.ndim == 0:
        return logits[:, tokens]
    return jnp.take_along_axis(logits, tokens[:, None], axis=-1)[:, 0]


def logit_diff(correct, wrong, pos: int = -1, reduce: str = "mean") -> LogitMetric:
    """logit[correct] - logit[wrong] at position `pos`, averaged (or summed) over the batch.

    Args:
      correct, wrong: token ids, an int or one per example `[batch]`.
      pos: the position read (default the last).
      reduce: "mean", "sum" or "none" (returns `[batch]`).
    """
    if reduce not in ("mean", "sum", "none"):
        raise ValueError(f"logit_diff: reduce must be 'mean', 'sum' or 'none', got {reduce!r}")

    def fn(logits):  # [batch, 1, d_vocab]
        lg = logits[:, 0].astype(jnp.float32)
        d = _token_logit(lg, correct) - _token_logit(lg, wrong)  # [batch]
        return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda x: x}[reduce](d)

    return LogitMetric(fn, (int(pos),))


def class_logit_diff(correct, wrong, reduce: str = "mean") -> Callable:
    """logit[correct] - logit[wrong] of class logits `[batch, class]` (a ViT's output).

    Args:
      correct, wrong: class ids, an int or one per example `[batch]`.
      reduce: "mean", "sum" or "none" (returns `[batch]`).
    """
    if reduce not in ("mean", "sum", "none"):
        raise ValueError(
            f"class_logit_diff: reduce must be 'mean', 'sum' or 'none', got {reduce!r}"
        )

    def fn(logits):  # [batch, class]
        if jnp.ndim(logits) != 2:
            raise ValueError(
                f"class_logit_diff reads class logits [batch, class], got shape "
                f"{jnp.shape(logits)}; for per-position logits use metrics.logit_diff."
            )
        lg = logits.astype(jnp.float32)
        d = _token_logit(lg, correct) - _token_logit(lg, wrong)
        return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda x: x}[reduce](d)

    return fn


def normalized(metric: Callable, clean_value, corrupted_value) -> Callable:
    """(metric - corrupted) / (clean - corrupted): 0 = corrupted behaviour, 1 = clean.

    Keeps `.positions` of a `LogitMetric`.
    """
    c, k = jnp.float32(clean_value), jnp.float32(corrupted_value)
    if isinstance(metric, LogitMetric):
        inner = metric.fn
        return LogitMetric(lambda lg: (inner(lg) - k) / (c - k), metric.positions)
    return lambda lg: (metric(lg) - k) / (c - k)


def next_token_loss(logits, tokens):
    """Per-position language-model loss (nats): `-log p(tokens[:, i+1] | ..i)`. `[batch, pos-1]`.

    logits `[batch, pos, d_vocab]` from `mj.run` on `tokens` `[batch, pos]`; computed in fp32.
    """
    logp = jax.nn.log_softmax(jnp.asarray(logits)[:, :-1].astype(jnp.float32), -1)
    return -jnp.take_along_axis(logp, jnp.asarray(tokens)[:, 1:, None], -1)[..., 0]
