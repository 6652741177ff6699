"""Head detectors, batched over heads and examples: each returns `[n_layers, n_heads]`.

Attention-based scores come from one forward caching every `hook_pattern` of one
attention module of one stack (`stack=`, default the readout's; `attn="attn"`):

* token-sequence scores (previous-token, duplicate-token, induction) need the token ids
  of the stream the stack runs on and self-attention over it: an LM's tokens, an
  encoder-decoder's decoder (or token encoder) stream (`inputs["decoder"]`, the entry
  named by the stack's label; or pass `stream_tokens=`). Elsewhere (a ViT's images, a
  cross-attention module) they raise a ValueError saying so;
* patch-grid scores (a ViT): `class_token_score` (attention from the patches to the class
  token) and `neighbour_score` (attention to the adjacent patches of the grid).

Weight-based scores (copying, successor) come from the OV circuits of a token model
(token embedding `W_E` and a vocabulary readout); the retrieval score from one compiled
greedy-decoding loop of a single-stream LM.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mechjax.analysis import _common
from mechjax.data import repeated_tokens


def repeated_random_tokens(key, batch: int, seq_len: int, d_vocab: int, bos: int | None = None):
    """`[batch, 2 * seq_len (+1 with bos)]`: random tokens, then the same tokens again.

    `mechjax.data.repeated_tokens.fixed` (JAX key used as given; tokens never equal `bos`).
    """
    return repeated_tokens.fixed(key, batch, seq_len, d_vocab, bos)


@functools.partial(jax.jit, static_argnames=("model", "stack", "attn"))
def _patterns(params, inputs, attention_mask, *, model, stack, attn):
    st = model.stack(stack)
    names = tuple(st.site(i, f"{attn}.hook_pattern") for i in range(st.n_layers))
    _, cache = _common.full_forward(
        model, params, inputs, cache=names, attention_mask=attention_mask
    )
    return jnp.stack([cache[n] for n in names])  # [layer, batch, head, q_pos, k_pos]


def _pattern_shape(model, inputs, st, attn, attention_mask, what):
    _common.check_attn(st, attn, what)
    inputs = _common.as_arrays(inputs)
    _common.check_inputs(model, inputs, attention_mask)
    info = _common.site_info(model, inputs, attention_mask)
    return inputs, info[st.site(0, f"{attn}.hook_pattern")][0]  # [batch, head, q, k]


def _score(model, params, inputs, target, st, attn, attention_mask=None):
    """Mean over (batch, query) rows that have a target of the attention mass on the targets.

    target: bool `[batch, q_pos, k_pos]` (or `[q_pos, k_pos]`).
    """
    pats = _patterns(params, inputs, attention_mask, model=model, stack=st.prefix, attn=attn)
    return jax.vmap(lambda p: pattern_score(p, target))(pats)  # [layer, head]


def _token_stream(model, params, inputs, what, stack, attn, stream_tokens, attention_mask):
    """(inputs, Stack, int tokens [batch, pos]) for a token-sequence score, or ValueError."""
    _common.check_model(model, what)
    st = _common.get_stack(model, stack, what)
    inputs, shape = _pattern_shape(model, inputs, st, attn, attention_mask, what)
    tokens = stream_tokens
    if tokens is None:
        if isinstance(inputs, dict):
            lab = _common.stack_label(model, st)
            tokens = inputs.get(lab) if lab else inputs.get("tokens")
        else:
            tokens = inputs
    ok = tokens is not None and not isinstance(tokens, dict)
    ok = ok and jnp.issubdtype(jnp.result_type(tokens), jnp.integer) and np.ndim(tokens) == 2
    if not ok:
        raise ValueError(
            f"{what} needs the token ids of the stream {st.prefix!r} runs on (int [batch, pos]); "
            f"{type(model).__name__}'s inputs give none there (e.g. images). For a ViT use "
            f"class_token_score / neighbour_score; otherwise pass stream_tokens=."
        )
    tokens = jnp.asarray(tokens)
    if shape[-2] != shape[-1] or shape[-1] != tokens.shape[1]:
        raise ValueError(
            f"{what}: {st.site(0, f'{attn}.hook_pattern')} is [batch, head, {shape[-2]}, "
            f"{shape[-1]}], not self-attention over the {tokens.shape[1]} tokens given; "
            f"token-sequence scores need self-attention over the token stream (not "
            f"cross-attention)."
        )
    return inputs, st, tokens


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


def previous_token_score(
    model, params, tokens, *, stack=None, attn="attn", stream_tokens=None, attention_mask=None
):
    """Mean attention from each position i >= 1 to i - 1 (TL's "previous_token_head").

    `tokens`: the model's inputs (an LM's token ids; an encoder-decoder's dict, scored on
    the stream of `stack`). Returns `[n_layers, n_heads]` of `stack`.
    """
    inputs, st, t = _token_stream(
        model, params, tokens, "previous_token_score", stack, attn, stream_tokens, attention_mask
    )
    b, p = t.shape
    tgt = np.broadcast_to(np.eye(p, k=-1, dtype=bool), (b, p, p))
    return _score(model, params, inputs, tgt, st, attn, attention_mask)


def duplicate_token_score(
    model, params, tokens, *, stack=None, attn="attn", stream_tokens=None, attention_mask=None
):
    """Mean attention from a token to its earlier occurrences (rows with one)."""
    inputs, st, t = _token_stream(
        model, params, tokens, "duplicate_token_score", stack, attn, stream_tokens, attention_mask
    )
    p = t.shape[1]
    same = t[:, :, None] == t[:, None, :]
    earlier = jnp.tril(jnp.ones((p, p), bool), k=-1)
    return _score(model, params, inputs, same & earlier, st, attn, attention_mask)


def induction_score(
    model, params, tokens, *, stack=None, attn="attn", stream_tokens=None, attention_mask=None
):
    """Mean attention from position i to every j with tokens[j-1] == tokens[i], j <= i.

    On `repeated_random_tokens` this is TL's induction score: attention to the token after
    the previous occurrence of the current token.
    """
    inputs, st, t = _token_stream(
        model, params, tokens, "induction_score", stack, attn, stream_tokens, attention_mask
    )
    p = t.shape[1]
    prev = jnp.concatenate([jnp.full_like(t[:, :1], -1), t[:, :-1]], axis=1)  # token before j
    match = t[:, :, None] == prev[:, None, :]  # [batch, q, k]
    causal = jnp.tril(jnp.ones((p, p), bool), k=-1)  # j < i: the copied token must be earlier
    return _score(model, params, inputs, match & causal, st, attn, attention_mask)


def _grid_layout(model, shape, what, n_prefix, grid):
    """(n_prefix, (rows, cols)) of a patch stream of `shape[-1]` positions."""
    n = shape[-1]
    if shape[-2] != n:
        raise ValueError(f"{what} needs self-attention over the patch stream, got pattern {shape}")
    if n_prefix is None:
        ro = _common.readout_of(model)
        n_prefix = 1 if ro is not None and ro.pool == "cls" else 0
    m = n - n_prefix
    if grid is None:
        r = int(round(np.sqrt(m)))
        if r * r != m:
            raise ValueError(
                f"{what}: {m} positions after the {n_prefix} leading ones are not a square grid; "
                f"pass grid=(rows, cols) (and n_prefix=, the positions before the patches)."
            )
        grid = (r, r)
    grid = tuple(int(g) for g in grid)
    if len(grid) != 2 or grid[0] * grid[1] != m:
        raise ValueError(f"{what}: grid {grid} does not hold the {m} patch positions")
    return int(n_prefix), grid


def class_token_score(model, params, images, *, stack=None, attn="attn", class_position=None):
    """Mean attention from every other position to the class token: `[n_layers, n_heads]`.

    For models whose stream has a class token (`readout().pool == "cls"`: position 0, as in
    `mj.ViT`), or pass `class_position`.
    """
    what = "class_token_score"
    _common.check_model(model, what)
    st = _common.get_stack(model, stack, what)
    inputs, shape = _pattern_shape(model, images, st, attn, None, what)
    if class_position is None:
        ro = _common.readout_of(model)
        if ro is None or ro.pool != "cls":
            raise ValueError(
                f"{what}: {type(model).__name__} declares no class token (its readout pool is "
                f"{getattr(ro, 'pool', None)!r}, not 'cls'); pass class_position= if it has one."
            )
        class_position = 0
    b, n = shape[0], shape[-1]
    c = int(class_position) % n
    tgt = np.zeros((n, n), bool)
    tgt[:, c] = True
    tgt[c] = False  # the class token's own row does not count
    return _score(model, params, inputs, np.broadcast_to(tgt, (b, n, n)), st, attn)


def neighbour_score(
    model, params, images, *, stack=None, attn="attn", radius=1, grid=None, n_prefix=None
):
    """Mean attention from each patch to the other patches within `radius` on the grid.

    Chebyshev distance (radius 1: the 8 surrounding patches); the patch itself and the
    leading non-patch positions (the class token; `n_prefix`, default 1 with a "cls"
    readout, else 0) are not targets. `grid` (rows, cols) defaults to a square grid; the
    patches are in row-major order (`mechjax.models.axes`). `[n_layers, n_heads]`.
    """
    what = "neighbour_score"
    _common.check_model(model, what)
    st = _common.get_stack(model, stack, what)
    inputs, shape = _pattern_shape(model, images, st, attn, None, what)
    k, (rows, cols) = _grid_layout(model, shape, what, n_prefix, grid)
    r, c = np.divmod(np.arange(rows * cols), cols)
    dist = np.maximum(np.abs(r[:, None] - r[None]), np.abs(c[:, None] - c[None]))
    n = shape[-1]
    tgt = np.zeros((n, n), bool)
    tgt[k:, k:] = (dist <= int(radius)) & (dist > 0)
    return _score(model, params, inputs, np.broadcast_to(tgt, (shape[0], n, n)), st, attn)


def ov_matrices(model, params, *, stack=None, attn="attn"):
    """W_V[h] @ W_O[h] per head: `[n_layers, n_heads, d_model, d_model]` (GQA-expanded)."""
    what = "ov_matrices"
    _common.check_model(model, what)
    st = _common.get_stack(model, stack, what)
    _common.check_attn(st, attn, what)
    out = []
    for i in range(st.n_layers):
        a = _common.module_params(model, params, st.site(i, attn))
        W_V = jnp.repeat(a["W_V"], st.n_heads // st.n_kv_heads, axis=0)
        out.append(jnp.einsum("hde,hem->hdm", W_V, a["W_O"]))
    return jnp.stack(out)


def token_embedding(model, params, stack=None):
    """The token embedding `W_E [d_vocab, d_model]` feeding `stack`'s stream.

    Found by name (TransformerLens' `W_E`) in the stream's module (`params["decoder"]` for
    `decoder.blocks`) or at the top level; ValueError for models without one (a ViT).
    """
    st = _common.get_stack(model, stack, "token_embedding")
    parent = st.prefix[: -len(".blocks")] if st.prefix.endswith(".blocks") else ""
    for prefix in ([parent] if parent else []) + [""]:
        try:
            sub = _common.module_params(model, params, prefix)
        except ValueError:
            continue
        if "W_E" in sub:
            return jnp.asarray(sub["W_E"])
    raise ValueError(
        f"{type(model).__name__} has no token embedding W_E for {st.prefix!r} (e.g. a ViT embeds "
        f"patches); token-based weight scores do not apply."
    )


def _vocab_readout(model, params, what):
    """(W_E, W_U) of a token model whose readout maps back onto the token vocabulary."""
    from mechjax.analysis.logit_attribution import unembed_matrix

    ro = _common.readout_of(model)
    if ro is None or ro.pool is not None:
        raise ValueError(
            f"{what} needs a per-token vocabulary readout; {type(model).__name__}'s is "
            f"{'missing' if ro is None else f'pooled ({ro.pool!r}: a class head)'}."
        )
    W_E = token_embedding(model, params, ro.stack).astype(jnp.float32)
    W_U = unembed_matrix(model, params).astype(jnp.float32)  # [d_model, d_vocab_out]
    if W_U.shape[1] != W_E.shape[0]:
        raise ValueError(
            f"{what}: the readout has {W_U.shape[1]} outputs but the token embedding "
            f"{W_E.shape[0]} rows; the score compares tokens in and out."
        )
    return ro, W_E, W_U


def copying_score(model, params):
    """Positive-eigenvalue share of each head's full OV circuit W_E W_V W_O W_U (Elhage et al.).

    score = sum(lambda) / sum(|lambda|) over the eigenvalues (computed on the equivalent
    `[d_head, d_head]` matrix W_O W_U W_E W_V, which has the same nonzero spectrum). 1 = the
    head copies the tokens it attends to; 0 for a head whose OV circuit is zero. Norms
    ignored. Heads of the readout's stack (self-attention).
    """
    ro, W_E, W_U = _vocab_readout(model, params, "copying_score")
    st = model.stack(ro.stack)
    UE = W_U @ W_E  # [d_model, d_model]
    scores = []
    for i in range(st.n_layers):
        a = _common.module_params(model, params, st.site(i, "attn"))
        W_V = jnp.repeat(a["W_V"], st.n_heads // st.n_kv_heads, axis=0)
        # Cyclic reordering of W_E W_V W_O W_U: [head, d_head, d_head] = W_O (W_U W_E) W_V
        small = jnp.einsum("hem,mn,hnf->hef", a["W_O"], UE, W_V)
        # Host eig: jnp.linalg.eigvals (non-symmetric) is not available on every backend.
        lam = np.linalg.eigvals(np.asarray(small, np.float64))
        num, den = lam.real.sum(-1), np.abs(lam).sum(-1)
        scores.append(np.where(den > 1e-12, num / np.maximum(den, 1e-300), 0.0))
    return np.stack(scores).astype(np.float32)


def _apply_module(model, params, prefix, x):
    """The module at site prefix `prefix` (a norm, an MLP) applied to `x`, without hooks."""
    m = _common.module_of(model, prefix).clone(parent=None)
    return m.apply({"params": _common.module_params(model, params, prefix)}, x)


def _norm_into(model, params, site, x):
    """`x` through the norm feeding `site` (identity if none)."""
    norm = _common.norm_feeding(model, site)
    return x if norm is None else _apply_module(model, params, norm, x).astype(jnp.float32)


def effective_embedding(model, params, stack=None):
    """MLP0(W_E): the stack's block-0 MLP applied to each token embedding (attention skipped).

    `[d_vocab, d_model]`; plain W_E for attention-only stacks (Gould et al. read OV
    circuits on this, since GPT-2's first MLP acts as an extended embedding).
    """
    _common.check_model(model, "effective_embedding")
    st = _common.get_stack(model, stack, "effective_embedding")
    E = token_embedding(model, params, st.prefix).astype(jnp.float32)
    if not st.mlp:
        return E
    x = _norm_into(model, params, st.site(0, "mlp.hook_pre"), E)
    return _apply_module(model, params, st.site(0, "mlp"), x).astype(jnp.float32)


def successor_score(model, params, groups):
    """Succession score per head (Gould et al. 2024): `[n_layers, n_heads]`.

    For every token t in an ordered group (e.g. ids of "1", "2", ..., or Monday..Sunday),
    the head's effective OV logits `W_U^T . OV_h . ln1(MLP0(W_E[t]))` restricted to the
    group's tokens; a success if the successor of t (the next token in the group) has the
    largest logit. Score = fraction of successes over all (t, succ(t)) pairs of all groups.
    Heads of the readout's stack (self-attention).

    Args:
      groups: sequence of sequences of token ids, each in successor order (>= 2 ids).
    """
    ro, W_E, W_U = _vocab_readout(model, params, "successor_score")
    st = model.stack(ro.stack)
    groups = [list(map(int, g)) for g in groups]
    if not groups or any(len(g) < 2 for g in groups):
        raise ValueError(
            "successor_score: groups must be a non-empty list of >= 2 ordered token ids each"
        )
    d_vocab = W_E.shape[0]
    bad = [t for g in groups for t in g if not 0 <= t < d_vocab]
    if bad:
        raise ValueError(f"successor_score: token ids {bad[:5]} outside [0, {d_vocab})")
    emb = effective_embedding(model, params, st.prefix)
    ov = ov_matrices(model, params, stack=st.prefix)  # [layer, head, d_model, d_model]
    hits = jnp.zeros((st.n_layers, st.n_heads))
    total = 0
    for g in groups:
        ids = jnp.asarray(g)
        for i in range(st.n_layers):
            x = _norm_into(model, params, st.site(i, "attn.hook_q"), emb[ids])  # [group, d_model]
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
    st = model.stack(model.readout().stack)
    L, H = st.n_layers, st.n_heads
    names = tuple(st.site(i, "attn.hook_pattern") for i in range(L))
    rows = jnp.arange(b)

    def step(s, carry):
        buf, score = carry
        cur = lengths - 1 + s  # [batch] position whose logits give the next token
        logits, cache = _common.full_forward(model, params, buf, cache=names)
        nxt = jnp.argmax(logits[rows, cur], axis=-1).astype(buf.dtype)  # [batch]
        pats = jnp.stack([cache[n] for n in names])
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
    what = "retrieval_score"
    _common.check_model(model, what)
    ro = _common.readout_of(model)
    if (
        ro is None
        or ro.pool is not None
        or ro.site is None
        or isinstance(prompts, dict)
        or not jnp.issubdtype(jnp.result_type(prompts), jnp.integer)
    ):
        raise ValueError(
            f"{what} decodes greedily: it needs a single-stream token model (int prompts "
            f"[batch, pos], per-position logits), not {type(model).__name__} with these inputs."
        )
    _common.check_inputs(model, prompts)
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
    return _greedy_retrieval(
        params,
        prompts,
        jnp.asarray(lengths),
        jnp.asarray(spans[:, 0]),
        jnp.asarray(spans[:, 1]),
        model=model,
        n_steps=int(n_steps),
    )
