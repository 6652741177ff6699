"""Logit attribution: residual-stream decompositions, direct logit attribution, logit lens.

Mirrors TransformerLens' `ActivationCache` methods (`accumulated_resid`,
`decompose_resid`, `stacked_head_results`, `apply_ln_to_stack`, `logit_attrs`) as
pure functions of a cache from `mj.run(..., cache=True)` (or the sites named in
each docstring). Stacks are `[component, batch, pos, d_model]` with a list of labels.

mechjax params are not LayerNorm-folded, so unlike TL the final norm's weight is
applied in the residual *direction* (`ln_final.w * W_U[:, token]`) rather than being
folded into `W_U`; the norm's bias and `b_U` are constants no component owns. With
that, the direct logit attributions of `decompose_resid` plus those constants sum
exactly to the logit.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mechjax.analysis import _common


def _p(params):
    return _common.variables(params)["params"]


def _need(cache, names, what):
    _common.check_cache(cache, list(names), what)


def _slice_pos(x, pos_slice, axis=-2):
    if pos_slice is None:
        return x
    if isinstance(pos_slice, int):
        idx = [pos_slice]
    elif isinstance(pos_slice, slice):
        idx = pos_slice
    else:
        idx = list(pos_slice)
    return jnp.take(x, np.arange(x.shape[axis])[idx], axis=axis)


def _n_layers(model):
    return _common.check_model(model, "logit_attribution").n_layers


def accumulated_resid(model, cache, layer=None, incl_mid=False, pos_slice=None, apply_ln=False):
    """Residual stream before each layer (TL `cache.accumulated_resid`).

    Needs `blocks.*.hook_resid_pre` (+ `hook_resid_mid` if incl_mid, the last block's
    `hook_resid_post` if layer is None, `ln_final.hook_scale` if apply_ln).

    Returns:
      (stack `[component, batch, pos, d_model]`, labels "0_pre", "0_mid", ..., "final_post").
    """
    n = _n_layers(model)
    layer = n if layer is None else int(layer)
    if not 0 <= layer <= n:
        raise ValueError(f"accumulated_resid: layer must be in 0..{n}, got {layer}")
    names, labels = [], []
    for i in range(min(layer, n)):
        names.append(f"blocks.{i}.hook_resid_pre")
        labels.append(f"{i}_pre")
        if incl_mid:
            names.append(f"blocks.{i}.hook_resid_mid")
            labels.append(f"{i}_mid")
    if layer == n:
        names.append(f"blocks.{n - 1}.hook_resid_post")
        labels.append("final_post")
    _need(cache, names, "accumulated_resid")
    stack = _slice_pos(jnp.stack([cache[k] for k in names]), pos_slice)
    if apply_ln:
        stack = apply_ln_to_stack(model, stack, cache, layer, pos_slice)
    return stack, labels


def decompose_resid(
    model, cache, layer=None, mode="all", incl_embeds=True, pos_slice=None, apply_ln=False
):
    """Residual stream at `layer` split into what wrote it (TL `cache.decompose_resid`).

    mode: "all", "attn" or "mlp". Needs hook_embed (+ hook_pos_embed for learned
    positions), `blocks.*.hook_attn_out`, `blocks.*.hook_mlp_out`.

    Returns:
      (stack `[component, batch, pos, d_model]`, labels "embed", "pos_embed",
      "0_attn_out", "0_mlp_out", ...). Attention output includes b_O.
    """
    if mode not in ("all", "attn", "mlp"):
        raise ValueError(f"decompose_resid: mode must be 'all', 'attn' or 'mlp', got {mode!r}")
    cfg = _common.check_model(model, "decompose_resid")
    layer = cfg.n_layers if layer is None else int(layer)
    names, labels = [], []
    if incl_embeds:
        names.append("hook_embed")
        labels.append("embed")
        if cfg.positional_embedding_type == "standard":
            names.append("hook_pos_embed")
            labels.append("pos_embed")
    for i in range(layer):
        if mode != "mlp":
            names.append(f"blocks.{i}.hook_attn_out")
            labels.append(f"{i}_attn_out")
        if mode != "attn" and not cfg.attn_only:
            names.append(f"blocks.{i}.hook_mlp_out")
            labels.append(f"{i}_mlp_out")
    _need(cache, names, "decompose_resid")
    stack = _slice_pos(jnp.stack([cache[k] for k in names]), pos_slice)
    if apply_ln:
        stack = apply_ln_to_stack(model, stack, cache, layer, pos_slice)
    return stack, labels


def stacked_head_results(model, params, cache, layer=None, pos_slice=None, apply_ln=False):
    """Each head's write to the residual stream (TL `cache.stacked_head_results`).

    Uses `blocks.*.attn.hook_result` if cached, else `hook_z @ W_O` (b_O excluded, as in TL).

    Returns:
      (stack `[n_layers * n_heads, batch, pos, d_model]`, labels "L0H0", "L0H1", ...).
    """
    cfg = _common.check_model(model, "stacked_head_results")
    layer = cfg.n_layers if layer is None else int(layer)
    p, parts, labels = _p(params), [], []
    for i in range(layer):
        r = cache.get(f"blocks.{i}.attn.hook_result")
        if r is None:
            _need(cache, [f"blocks.{i}.attn.hook_z"], "stacked_head_results")
            z = cache[f"blocks.{i}.attn.hook_z"]
            r = jnp.einsum("bphe,hed->bphd", z, p[f"blocks_{i}"]["attn"]["W_O"])
        parts.append(jnp.moveaxis(r, 2, 0))  # [head, batch, pos, d_model]
        labels += [f"L{i}H{h}" for h in range(cfg.n_heads)]
    stack = _slice_pos(jnp.concatenate(parts), pos_slice)
    if apply_ln:
        stack = apply_ln_to_stack(model, stack, cache, layer, pos_slice)
    return stack, labels


def apply_ln_to_stack(model, stack, cache, layer=None, pos_slice=None):
    """Divides each component by the cached norm scale of the stream it feeds (TL semantics).

    For `layer` None / n_layers the final norm (`ln_final.hook_scale`), else
    `blocks.{layer}.ln1.hook_scale`. LayerNorm also centres each component. The norm's
    weight and bias are not applied (see `residual_directions`).
    """
    cfg = _common.check_model(model, "apply_ln_to_stack")
    if cfg.normalization_type is None:
        return stack
    layer = cfg.n_layers if layer is None else int(layer)
    key = "ln_final.hook_scale" if layer == cfg.n_layers else f"blocks.{layer}.ln1.hook_scale"
    _need(cache, [key], "apply_ln_to_stack")
    scale = _slice_pos(cache[key], pos_slice)  # [batch, pos, 1]
    x = stack.astype(jnp.float32)
    if cfg.normalization_type == "LN":
        x = x - x.mean(-1, keepdims=True)
    return x / scale


def unembed_matrix(model, params):
    """W_U `[d_model, d_vocab_out]` (W_E.T for tied embeddings)."""
    cfg, p = _common.check_model(model, "unembed"), _p(params)
    return p["W_E"].T if cfg.tie_embeddings else p["W_U"]


def residual_directions(model, params, tokens):
    """`ln_final.w * W_U[:, tokens]`: the direction (in normalised-stream units) read as each logit.

    tokens: int or int array; returns `[*tokens.shape, d_model]`.
    """
    cfg, p = _common.check_model(model, "residual_directions"), _p(params)
    d = jnp.take(unembed_matrix(model, params).T, jnp.asarray(tokens), axis=0)
    if cfg.normalization_type is not None and cfg.final_norm:
        d = d * p["ln_final"]["w"]
    return d


def logit_attrs(model, params, stack, tokens, incorrect_tokens=None):
    """Direct logit attribution of an LN-applied stack (TL `cache.logit_attrs`).

    Args:
      stack: `[component, batch, pos, d_model]` after `apply_ln_to_stack`.
      tokens, incorrect_tokens: int, `[batch]` or `[batch, pos]` ids; with incorrect
        tokens, the attribution to the logit difference.

    Returns:
      `[component, batch, pos]`.
    """
    tok = jnp.asarray(tokens)
    d = residual_directions(model, params, tok)
    if incorrect_tokens is not None:
        d = d - residual_directions(model, params, incorrect_tokens)
    if d.ndim == 1:  # one token for everything
        return jnp.einsum("cbpd,d->cbp", stack, d)
    if d.ndim == 2:  # [batch, d_model]
        return jnp.einsum("cbpd,bd->cbp", stack, d)
    return jnp.einsum("cbpd,bpd->cbp", stack, d)


def logit_constant(model, params, tokens, incorrect_tokens=None):
    """The part of the logit (difference) no component owns: ln_final.b . W_U[:, t] + b_U[t]."""
    cfg, p = _common.check_model(model, "logit_constant"), _p(params)
    W_U, tok = unembed_matrix(model, params), jnp.asarray(tokens)

    def const(t):
        c = jnp.zeros(jnp.shape(t), jnp.float32)
        if cfg.normalization_type == "LN" and cfg.final_norm:
            c = c + jnp.take(p["ln_final"]["b"] @ W_U, t)
        if cfg.unembed_bias and not cfg.tie_embeddings:
            c = c + jnp.take(p["b_U"], t)
        return c

    c = const(tok)
    return c if incorrect_tokens is None else c - const(jnp.asarray(incorrect_tokens))


def direct_logit_attribution(model, params, cache, tokens, incorrect_tokens=None, pos=-1):
    """Per-head and per-MLP direct logit attribution at position `pos`.

    Needs a cache with `blocks.*.attn.hook_z` (or hook_result), hook_attn_out,
    hook_mlp_out, hook_embed(/pos_embed) and `ln_final.hook_scale`
    (`mj.run(..., cache=True)` has them).

    Returns dict of arrays: "heads" `[n_layers, n_heads, batch]`, "mlps" `[n_layers, batch]`,
    "attn_bias" `[n_layers, batch]` (b_O), "embed" `[batch]` (token + position
    embedding) and "constant" (`logit_constant`); all of them sum to the logit (difference).
    """
    cfg = _common.check_model(model, "direct_logit_attribution")
    L, H = cfg.n_layers, cfg.n_heads
    heads, _ = stacked_head_results(model, params, cache, pos_slice=pos, apply_ln=True)
    heads = logit_attrs(model, params, heads, tokens, incorrect_tokens)[..., 0]
    parts, labels = decompose_resid(model, cache, pos_slice=pos, apply_ln=True)
    parts = logit_attrs(model, params, parts, tokens, incorrect_tokens)[..., 0]
    by = dict(zip(labels, parts))
    attn = jnp.stack([by[f"{i}_attn_out"] for i in range(L)])
    heads = heads.reshape(L, H, -1)
    out = dict(
        heads=heads,
        attn_bias=attn - heads.sum(1),
        embed=by["embed"] + (by["pos_embed"] if "pos_embed" in by else 0.0),
        constant=logit_constant(model, params, tokens, incorrect_tokens),
    )
    if not cfg.attn_only:
        out["mlps"] = jnp.stack([by[f"{i}_mlp_out"] for i in range(L)])
    return out


def _final_norm(model, params, x):
    cfg, p = model.cfg, _p(params)
    if cfg.normalization_type is None or not cfg.final_norm:
        return x
    x = x.astype(jnp.float32)
    if cfg.normalization_type == "LN":
        x = x - x.mean(-1, keepdims=True)
    x = x / jnp.sqrt((x**2).mean(-1, keepdims=True) + cfg.eps) * p["ln_final"]["w"]
    if cfg.normalization_type == "LN":
        x = x + p["ln_final"]["b"]
    return x


def logit_lens(model, params, cache, incl_mid=False, pos_slice=None):
    """Logits read from the residual stream before every layer (nostalgebraist's logit lens).

    Each accumulated residual gets its own final norm (fresh scale), then the unembed.

    Returns:
      (logits `[component, batch, pos, d_vocab_out]`, labels as in `accumulated_resid`);
      the last component ("final_post") equals the model's logits.
    """
    stack, labels = accumulated_resid(model, cache, incl_mid=incl_mid, pos_slice=pos_slice)
    cfg, p = model.cfg, _p(params)
    logits = _final_norm(model, params, stack) @ unembed_matrix(model, params)
    if cfg.unembed_bias and not cfg.tie_embeddings:
        logits = logits + p["b_U"]
    return logits, labels
