"""Head detectors, batched over heads and examples: each returns `[n_layers, n_heads]`.

Attention-based scores (previous-token, duplicate-token, induction) come from one
forward caching every `hook_pattern`; weight-based scores (copying, successor) from
the OV circuits; the retrieval score from one compiled greedy-decoding loop.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mechjax.analysis import _common
from mechjax.data import repeated_tokens
from mechjax.models.transformer import activation


def repeated_random_tokens(key, batch: int, seq_len: int, d_vocab: int, bos: int | None = None):
    """`[batch, 2 * seq_len (+1 with bos)]`: random tokens, then the same tokens again.

    `mechjax.data.repeated_tokens.fixed` (JAX key used as given; tokens never equal `bos`).
    """
    return repeated_tokens.fixed(key, batch, seq_len, d_vocab, bos)


@functools.partial(jax.jit, static_argnames=("model",))
def _patterns(params, tokens, *, model):
    _, cache = _common.full_forward(model, params, tokens, cache="blocks.*.attn.hook_pattern")
    n = model.cfg.n_layers
    return jnp.stack([cache[f"blocks.{i}.attn.hook_pattern"] for i in range(n)])


def _score(model, params, tokens, target):
    """Mean over (batch, query) rows that have a target of the attention mass on the targets.

    target: bool `[batch, q_pos, k_pos]`.
    """
    _common.check_model(model, "detector")
    pats = _patterns(params, jnp.asarray(tokens), model=model)  # [layer, batch, head, q, k]
    return jax.vmap(lambda p: pattern_score(p, target))(pats)  # [layer, head]


def pattern_score(pattern, target):
    """Per-head attention mass on `target`, averaged over the (batch, query) rows that have one.

    The scoring behind every attention detector, for patterns you already hold (e.g. the
    clamped `hook_pattern` of a training eval): pattern `[batch, head, q_pos, k_pos]`, target
    bool `[batch, q_pos, k_pos]` or `[q_pos, k_pos]`. Returns `[head]`.
    """
    t = jnp.broadcast_to(jnp.asarray(target, jnp.float32), (pattern.shape[0],) + pattern.shape[2:])
    t = t[:, None]  # [batch, 1, q, k]
    mass = jnp.sum(pattern.astype(jnp.float32) * t, axis=-1)  # [batch, head, q]
    rows = (jnp.sum(t, axis=-1) > 0).astype(jnp.float32)  # [batch, 1, q]
    n = jnp.maximum(jnp.sum(rows, axis=(0, 2)), 1.0)
    return jnp.sum(mass * rows, axis=(0, 2)) / n  # [head]


def previous_token_score(model, params, tokens):
    """Mean attention from each position i >= 1 to i - 1 (TL's "previous_token_head")."""
    b, p = np.shape(tokens)
    tgt = np.broadcast_to(np.eye(p, k=-1, dtype=bool), (b, p, p))
    return _score(model, params, tokens, tgt)


def duplicate_token_score(model, params, tokens):
    """Mean attention from a token to its earlier occurrences (rows with one)."""
    t = jnp.asarray(tokens)
    p = t.shape[1]
    same = t[:, :, None] == t[:, None, :]
    earlier = jnp.tril(jnp.ones((p, p), bool), k=-1)
    return _score(model, params, tokens, same & earlier)


def induction_score(model, params, tokens):
    """Mean attention from position i to every j with tokens[j-1] == tokens[i], j <= i.

    On `repeated_random_tokens` this is TL's induction score: attention to the token after
    the previous occurrence of the current token.
    """
    t = jnp.asarray(tokens)
    p = t.shape[1]
    prev = jnp.concatenate([jnp.full_like(t[:, :1], -1), t[:, :-1]], axis=1)  # token before j
    match = t[:, :, None] == prev[:, None, :]  # [batch, q, k]
    causal = jnp.tril(jnp.ones((p, p), bool), k=-1)  # j < i: the copied token must be earlier
    return _score(model, params, tokens, match & causal)


def _p(params):
    return _common.variables(params)["params"]


def ov_matrices(model, params):
    """W_V[h] @ W_O[h] per head: `[n_layers, n_heads, d_model, d_model]` (GQA-expanded)."""
    cfg, p = _common.check_model(model, "ov_matrices"), _p(params)
    out = []
    for i in range(cfg.n_layers):
        a = p[f"blocks_{i}"]["attn"]
        W_V = jnp.repeat(a["W_V"], cfg.n_heads // cfg.kv_heads, axis=0)
        out.append(jnp.einsum("hde,hem->hdm", W_V, a["W_O"]))
    return jnp.stack(out)


def copying_score(model, params):
    """Positive-eigenvalue share of each head's full OV circuit W_E W_V W_O W_U (Elhage et al.).

    score = sum(lambda) / sum(|lambda|) over the eigenvalues (computed on the equivalent
    `[d_head, d_head]` matrix W_O W_U W_E W_V, which has the same nonzero spectrum). 1 = the
    head copies the tokens it attends to; 0 for a head whose OV circuit is zero. Norms ignored.
    """
    cfg, p = _common.check_model(model, "copying_score"), _p(params)
    from mechjax.analysis.logit_attribution import unembed_matrix

    W_U = unembed_matrix(model, params).astype(jnp.float32)  # [d_model, d_vocab]
    UE = W_U @ p["W_E"].astype(jnp.float32)  # [d_model, d_model]
    scores = []
    for i in range(cfg.n_layers):
        a = p[f"blocks_{i}"]["attn"]
        W_V = jnp.repeat(a["W_V"], cfg.n_heads // cfg.kv_heads, axis=0)
        # Cyclic reordering of W_E W_V W_O W_U: [head, d_head, d_head] = W_O (W_U W_E) W_V
        small = jnp.einsum("hem,mn,hnf->hef", a["W_O"], UE, W_V)
        # Host eig: jnp.linalg.eigvals (non-symmetric) is not available on every backend.
        lam = np.linalg.eigvals(np.asarray(small, np.float64))
        num, den = lam.real.sum(-1), np.abs(lam).sum(-1)
        scores.append(np.where(den > 1e-12, num / np.maximum(den, 1e-300), 0.0))
    return np.stack(scores).astype(np.float32)


def _norm(cfg, x, w, b):
    if cfg.normalization_type is None:
        return x
    if cfg.normalization_type == "LN":
        x = x - x.mean(-1, keepdims=True)
    x = x / jnp.sqrt((x**2).mean(-1, keepdims=True) + cfg.eps) * w
    return x + b if cfg.normalization_type == "LN" else x


def effective_embedding(model, params):
    """MLP0(W_E): block 0's MLP applied to each token embedding (attention skipped).

    `[d_vocab, d_model]`; plain W_E for attention-only models (Gould et al. read OV
    circuits on this, since GPT-2's first MLP acts as an extended embedding).
    """
    cfg, p = _common.check_model(model, "effective_embedding"), _p(params)
    E = p["W_E"].astype(jnp.float32)
    if cfg.attn_only:
        return E
    blk = p["blocks_0"]
    ln2 = blk.get("ln2", {})
    x = _norm(cfg, E, ln2.get("w"), ln2.get("b"))
    m, act = blk["mlp"], activation(cfg.act_fn)
    lin = x @ m["W_in"] + (m["b_in"] if "b_in" in m else 0.0)
    if cfg.gated_mlp:
        post = act(x @ m["W_gate"] + (m["b_gate"] if "b_gate" in m else 0.0)) * lin
    else:
        post = act(lin)
    return post @ m["W_out"] + (m["b_out"] if "b_out" in m else 0.0)


def successor_score(model, params, groups):
    """Succession score per head (Gould et al. 2024): `[n_layers, n_heads]`.

    For every token t in an ordered group (e.g. ids of "1", "2", ..., or Monday..Sunday),
    the head's effective OV logits `W_U^T . OV_h . ln1(MLP0(W_E[t]))` restricted to the
    group's tokens; a success if the successor of t (the next token in the group) has the
    largest logit. Score = fraction of successes over all (t, succ(t)) pairs of all groups.

    Args:
      groups: sequence of sequences of token ids, each in successor order (>= 2 ids).
    """
    cfg, p = _common.check_model(model, "successor_score"), _p(params)
    groups = [list(map(int, g)) for g in groups]
    if not groups or any(len(g) < 2 for g in groups):
        raise ValueError(
            "successor_score: groups must be a non-empty list of >= 2 ordered token ids each"
        )
    bad = [t for g in groups for t in g if not 0 <= t < cfg.d_vocab]
    if bad:
        raise ValueError(f"successor_score: token ids {bad[:5]} outside [0, {cfg.d_vocab})")
    from mechjax.analysis.logit_attribution import unembed_matrix

    W_U = unembed_matrix(model, params).astype(jnp.float32)
    emb = effective_embedding(model, params)
    ov = ov_matrices(model, params)  # [layer, head, d_model, d_model]
    hits = jnp.zeros((cfg.n_layers, cfg.n_heads))
    total = 0
    for g in groups:
        ids = jnp.asarray(g)
        for i in range(cfg.n_layers):
            ln1 = p[f"blocks_{i}"].get("ln1", {})
            x = _norm(cfg, emb[ids], ln1.get("w"), ln1.get("b"))  # [group, d_model]
            out = jnp.einsum("gd,hdm->hgm", x, ov[i])  # [head, group, d_model]
            logits = out @ W_U[:, ids]  # [head, group, group]: restricted to the group's tokens
            best = jnp.argmax(logits[:, :-1], axis=-1)  # [head, group - 1]
            hits = hits.at[i].add(jnp.sum(best == jnp.arange(1, len(g))[None], axis=-1))
        total += len(g) - 1
    return hits / total


@functools.partial(jax.jit, static_argnames=("model", "n_steps"))
def _greedy_retrieval(params, tokens, lengths, needle_start, needle_end, *, model, n_steps):
    """Greedy decoding in a right-padded buffer (causal: padding is never seen)."""
    b = tokens.shape[0]
    L, H = model.cfg.n_layers, model.cfg.n_heads
    rows = jnp.arange(b)

    def step(s, carry):
        buf, score = carry
        cur = lengths - 1 + s  # [batch] position whose logits give the next token
        logits, cache = _common.full_forward(model, params, buf, cache="blocks.*.attn.hook_pattern")
        nxt = jnp.argmax(logits[rows, cur], axis=-1).astype(buf.dtype)  # [batch]
        pats = jnp.stack([cache[f"blocks.{i}.attn.hook_pattern"] for i in range(L)])
        # Advanced indices on axes 1 and 3 put the batch axis first: [batch, layer, head, k].
        top = jnp.moveaxis(
            jnp.argmax(pats[:, rows, :, cur, :], axis=-1), 0, 1
        )  # [layer, batch, head]
        src = buf[rows[None, :, None], top]  # token at the attended position
        inside = (top >= needle_start[None, :, None]) & (top < needle_end[None, :, None])
        hit = inside & (src == nxt[None, :, None])
        size = (needle_end - needle_start).astype(jnp.float32)[None, :, None]
        score = score + hit.astype(jnp.float32) / size
        buf = buf.at[rows, cur + 1].set(nxt)
        return buf, score

    init = (tokens, jnp.zeros((L, b, H), jnp.float32))
    buf, score = jax.lax.fori_loop(0, n_steps, step, init)
    return jnp.moveaxis(score, 1, 0), buf  # [batch, layer, head]


def retrieval_score(model, params, prompts, needle_spans, n_steps: int, lengths=None):
    """Retrieval score per example and head during greedy decoding (Wu et al. 2024).

    At each of `n_steps` greedy steps, each head's top-1 attended key (from the position
    being decoded) counts 1/|needle| if it lies in the needle span and holds the token just
    generated. One compiled loop (no KV cache: the right-padded buffer is re-run each step).

    Args:
      prompts: int `[batch, pos]`; each prompt occupies the first `lengths[b]` positions
        (default all); the rest is buffer for the generated tokens.
      needle_spans: int `[batch, 2]` (start, end) of the needle in each prompt.
      n_steps: tokens to generate; needs `lengths + n_steps <= pos`.

    Returns:
      (scores `[batch, n_layers, n_heads]`, tokens `[batch, pos]` with the generations).
      Average the scores over the examples whose answer was right; heads > 0.1 are
      retrieval heads in the paper.
    """
    cfg = _common.check_model(model, "retrieval_score")
    prompts = jnp.asarray(prompts)
    b, n = prompts.shape
    lengths = np.full(b, n - n_steps) if lengths is None else np.asarray(lengths)
    spans = np.asarray(needle_spans)
    if spans.shape != (b, 2):
        raise ValueError(
            f"retrieval_score: needle_spans must be [batch, 2] = ({b}, 2), got {spans.shape}"
        )
    if np.any(lengths + n_steps > n) or np.any(lengths < 1):
        raise ValueError(
            f"retrieval_score: prompts of length {lengths.tolist()} + {n_steps} steps must fit in {n} positions"
        )
    if np.any(spans[:, 0] >= spans[:, 1]) or np.any(spans[:, 1] > lengths):
        raise ValueError(
            "retrieval_score: each needle span must be a non-empty (start, end) inside its prompt"
        )
    if cfg.positional_embedding_type == "standard" and n > cfg.n_ctx:
        raise ValueError(f"retrieval_score: {n} positions exceed n_ctx={cfg.n_ctx}")
    return _greedy_retrieval(
        params,
        prompts,
        jnp.asarray(lengths),
        jnp.asarray(spans[:, 0]),
        jnp.asarray(spans[:, 1]),
        model=model,
        n_steps=int(n_steps),
    )
