"""Measures of induction-head formation, batched over heads (and, under vmap, over models).

All take attention patterns `[batch, head, q_pos, k_pos]` (the `hook_pattern` site) and return
one number per head.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from mechjax.analysis.detectors import pattern_score
from mechjax.data.fewshot import LABEL_POSITIONS, QUERY_POS

LN2 = math.log(2.0)
FORMED = 0.4 * LN2  # the paper's formation threshold on the train loss


def query_ce(logits, target):
    """Cross-entropy and accuracy of the query position; logits `[batch, pos, d_vocab]`."""
    q = logits[:, QUERY_POS].astype(jnp.float32)  # [batch, d_vocab]
    logp = jax.nn.log_softmax(q, axis=-1)
    ce = -jnp.take_along_axis(logp, target[:, None], axis=-1)[:, 0]
    return ce.mean(), (q.argmax(-1) == target).mean()


def induction_strength(pattern, label_pos, distractor_pos):
    """Singh et al.: mean_b A[query -> correct label] - A[query -> other label], per head `[head]`."""
    row = pattern[:, :, QUERY_POS, :]  # [batch, head, k_pos]
    b = jnp.arange(row.shape[0])
    good = row[b, :, label_pos]  # [batch, head]
    bad = row[b, :, distractor_pos]
    return (good - bad).mean(0)


def fewshot_prev_token_score(pattern):
    """Mean attention of each label token to its exemplar (the position before it), `[head]`."""
    return jnp.stack([pattern[:, :, p, p - 1] for p in LABEL_POSITIONS], axis=-1).mean((0, 2))


def prev_token_score(pattern):
    """Mean attention from every position i >= 1 to i - 1, per head `[head]`."""
    n = pattern.shape[-1]
    return pattern_score(pattern, np.eye(n, k=-1, dtype=bool))


def induction_score(pattern, length: int, offset: int = 0):
    """Standard induction score on repeated tokens, per head `[head]`.

    Mean attention from each position of the second copy to the position just after the
    same token's first occurrence. `length` is the copy length, `offset` 1 with a BOS.
    Positional (the copy length is known), so accidental repeats inside a copy don't count.
    """
    n = pattern.shape[-1]
    q = np.arange(offset + length, offset + 2 * length)  # second-copy positions
    target = np.zeros((n, n), bool)
    target[q, q - length + 1] = True  # the token after the earlier occurrence
    return pattern_score(pattern, target)


def formation_step(steps, losses, threshold: float = FORMED):
    """First step whose loss is below `threshold` (None if it never is)."""
    for s, v in zip(steps, losses):
        if v is not None and v < threshold:
            return int(s)
    return None
