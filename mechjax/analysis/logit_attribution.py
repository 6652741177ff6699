"""Logit attribution: residual-stream decompositions, direct logit attribution, logit lens.

Mirrors TransformerLens' `ActivationCache` methods (`accumulated_resid`,
`decompose_resid`, `stacked_head_results`, `apply_ln_to_stack`, `logit_attrs`) as
pure functions of a cache from `mj.run(..., cache=True)` (or the sites named in
each docstring). Stacks are `[component, batch, pos, d_model]` with a list of labels.

Every family, through the protocol (`mechjax.models`): the residual stream is that of a
layer stack (`stack=`, default the readout's: `blocks`, or `decoder.blocks` of an
encoder-decoder), and the output is read as `model.readout()` says,

    output = pool(norm(resid)) @ W + b,    W, b = model.readout_weights(params)

an LM's unembedding per position (pool None), a ViT's class head on the class token
(pool "cls") or on the mean over positions (pool "mean"). Components: the stack's input
(its layer-0 `hook_resid_pre`: token / patch + position embeddings), each head of each
attention module (`hook_z` through that head's `W_O`; cross-attention heads of a
decoder too), the attention biases (b_O) and the MLPs.

mechjax params are not LayerNorm-folded, so unlike TL the final norm's weight is
applied in the residual *direction* (`w * W[:, token]`) rather than being folded into
W; the final norm's cached scale is frozen (TL's `apply_ln_to_stack`), and the norm's
bias and `b` are constants no component owns. With that, the direct logit attributions
plus those constants sum exactly to the logit (or logit difference). Post-norm stacks
(BART) are not sums of their components and are refused.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mechjax.analysis import _common


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


def _stack(model, stack, what):
    _common.check_model(model, what)
    return _common.get_stack(model, stack, what)


def _readout(model, what):
    ro = _common.readout_of(model)
    if ro is None:
        raise ValueError(
            f"{what}: {type(model).__name__} declares no readout() (see mechjax.models)"
        )
    return ro


def _additive(st, what):
    if st.post_norm:
        raise ValueError(
            f"{what}: {st.prefix!r} is a post-norm stack (each norm follows its residual add), so "
            f"its stream is not a sum of the components' outputs; the decomposition does not apply."
        )


def _components(model, st):
    """Components of a layer in forward order: attention modules, then "mlp"."""
    order = _common.site_order(model)
    first = {a: order.index(st.site(0, f"{a}.hook_z")) for a in st.attn}
    if st.mlp:
        first["mlp"] = order.index(st.site(0, "hook_mlp_out"))
    return sorted(first, key=first.get)


def _out_site(st, layer, comp):
    return (
        st.site(layer, "hook_mlp_out") if comp == "mlp" else _common.attn_out_site(st, layer, comp)
    )


def embed_sites(model, stack=None) -> list[tuple[str, str]]:
    """(label, site) of the embedding parts that sum to the stack's layer-0 `hook_resid_pre`.

    The stream's `hook_embed` and `hook_pos_embed` (`decoder.hook_embed`, ...) when they are
    the only sites between the stream's start and layer 0; else (e.g. a norm after the
    embedding) the layer-0 `hook_resid_pre` itself, labelled "embed".
    """
    st = _common.get_stack(model, stack, "embed_sites")
    start = st.site(0, "hook_resid_pre")
    parent = st.prefix[: -len("blocks")] if st.prefix.endswith("blocks") else ""
    order = _common.site_order(model)
    before = [
        n for n in order[: order.index(start)] if n.startswith(parent) and model.stack_of(n) is None
    ]
    emb, pos = f"{parent}hook_embed", f"{parent}hook_pos_embed"
    if before == [emb]:
        return [("embed", emb)]
    if before == [emb, pos]:
        return [("embed", emb), ("pos_embed", pos)]
    return [("embed", start)]


def accumulated_resid(
    model, cache, layer=None, incl_mid=False, pos_slice=None, apply_ln=False, stack=None
):
    """Residual stream before each layer (TL `cache.accumulated_resid`).

    Needs `{stack}.*.hook_resid_pre` (+ the layer's other `hook_resid_*` sites if incl_mid:
    `hook_resid_mid`, a decoder's `hook_resid_cross`; the last block's `hook_resid_post` if
    layer is None; the final norm's `hook_scale` if apply_ln).

    Returns:
      (stack `[component, batch, pos, d_model]`, labels "0_pre", "0_mid", ..., "final_post").
    """
    st = _stack(model, stack, "accumulated_resid")
    n = st.n_layers
    layer = n if layer is None else int(layer)
    if not 0 <= layer <= n:
        raise ValueError(f"accumulated_resid: layer must be in 0..{n}, got {layer}")
    order = _common.site_order(model)
    names, labels = [], []
    for i in range(min(layer, n)):
        names.append(st.site(i, "hook_resid_pre"))
        labels.append(f"{i}_pre")
        if incl_mid:
            head = st.site(i, "hook_resid_")
            for s in order:
                kind = s[len(head) :]
                if s.startswith(head) and kind not in ("pre", "post"):
                    names.append(s)
                    labels.append(f"{i}_{kind}")
    if layer == n:
        names.append(st.site(n - 1, "hook_resid_post"))
        labels.append("final_post")
    _need(cache, names, "accumulated_resid")
    out = _slice_pos(jnp.stack([cache[k] for k in names]), pos_slice)
    if apply_ln:
        out = apply_ln_to_stack(model, out, cache, layer, pos_slice, stack=st.prefix)
    return out, labels


def decompose_resid(
    model,
    cache,
    layer=None,
    mode="all",
    incl_embeds=True,
    pos_slice=None,
    apply_ln=False,
    stack=None,
):
    """Residual stream at `layer` split into what wrote it (TL `cache.decompose_resid`).

    mode: "all", "attn" (every attention module) or "mlp". Needs the embedding sites
    (`embed_sites`: hook_embed(/pos_embed), or the layer-0 hook_resid_pre), each layer's
    `hook_{attn}_out` (`hook_attn_out`, a decoder's `hook_cross_attn_out`) and
    `hook_mlp_out`.

    Returns:
      (stack `[component, batch, pos, d_model]`, labels "embed", "pos_embed",
      "0_attn_out", ("0_cross_attn_out",) "0_mlp_out", ...). Attention output includes b_O.
    """
    if mode not in ("all", "attn", "mlp"):
        raise ValueError(f"decompose_resid: mode must be 'all', 'attn' or 'mlp', got {mode!r}")
    st = _stack(model, stack, "decompose_resid")
    _additive(st, "decompose_resid")
    layer = st.n_layers if layer is None else int(layer)
    names, labels = [], []
    if incl_embeds:
        for lab, site in embed_sites(model, st.prefix):
            names.append(site)
            labels.append(lab)
    comps = _components(model, st)
    for i in range(layer):
        for c in comps:
            if (mode == "attn" and c == "mlp") or (mode == "mlp" and c != "mlp"):
                continue
            names.append(_out_site(st, i, c))
            labels.append(f"{i}_{c}_out")
    _need(cache, names, "decompose_resid")
    out = _slice_pos(jnp.stack([cache[k] for k in names]), pos_slice)
    if apply_ln:
        out = apply_ln_to_stack(model, out, cache, layer, pos_slice, stack=st.prefix)
    return out, labels


def stacked_head_results(
    model, params, cache, layer=None, pos_slice=None, apply_ln=False, stack=None, attn="attn"
):
    """Each head's write to the residual stream (TL `cache.stacked_head_results`).

    Heads of attention module `attn` ("attn"; "cross_attn" of a decoder) of `stack`. Uses
    `{stack}.*.{attn}.hook_result` if cached, else `hook_z @ W_O` (b_O excluded, as in TL).

    Returns:
      (stack `[n_layers * n_heads, batch, pos, d_model]`, labels "L0H0", "L0H1", ... (see
      `_common.head_name`: "decoder.L0X1" for a cross-attention head)).
    """
    what = "stacked_head_results"
    st = _stack(model, stack, what)
    _common.check_attn(st, attn, what)
    layer = st.n_layers if layer is None else int(layer)
    parts, labels = [], []
    for i in range(layer):
        r = cache.get(st.site(i, f"{attn}.hook_result"))
        if r is None:
            z_name = st.site(i, f"{attn}.hook_z")
            _need(cache, [z_name], what)
            W_O = _common.param(model, params, st.site(i, attn), "W_O")
            r = jnp.einsum("bphe,hed->bphd", cache[z_name], W_O)
        parts.append(jnp.moveaxis(r, 2, 0))  # [head, batch, pos, d_model]
        labels += [_common.head_name(model, st, i, attn, h) for h in range(r.shape[2])]
    out = _slice_pos(jnp.concatenate(parts), pos_slice)
    if apply_ln:
        out = apply_ln_to_stack(model, out, cache, layer, pos_slice, stack=st.prefix)
    return out, labels


def _norm_at(model, st, layer):
    """(norm prefix, norm type) of the stream entering `layer` (n_layers: the final norm)."""
    if layer == st.n_layers:
        ro = _readout(model, "apply_ln_to_stack")
        if ro.stack != st.prefix:
            raise ValueError(
                f"apply_ln_to_stack: {st.prefix!r} is not the stack the readout reads "
                f"({ro.stack!r}); give a layer < {st.n_layers}."
            )
        return ro.norm, ro.norm_type
    first = _components(model, st)[0]
    site = st.site(layer, f"{first}.hook_q" if first != "mlp" else "mlp.hook_pre")
    return _common.norm_feeding(model, site), st.norm


def apply_ln_to_stack(model, residual_stack, cache, layer=None, pos_slice=None, stack=None):
    """Divides each component by the cached norm scale of the stream it feeds (TL semantics).

    For `layer` None / n_layers the final norm of the readout (`ln_final.hook_scale`,
    `decoder.ln_final.hook_scale`), else the norm before layer `layer`'s first attention
    (`blocks.{layer}.ln1.hook_scale`). LayerNorm also centres each component. The norm's
    weight and bias are not applied (see `residual_directions`).
    """
    st = _stack(model, stack, "apply_ln_to_stack")
    layer = st.n_layers if layer is None else int(layer)
    norm, kind = _norm_at(model, st, layer)
    if norm is None or kind is None:
        return residual_stack
    key = f"{norm}.hook_scale"
    _need(cache, [key], "apply_ln_to_stack")
    scale = _slice_pos(cache[key], pos_slice)  # [batch, pos, 1]
    x = residual_stack.astype(jnp.float32)
    if kind == "LN":
        x = x - x.mean(-1, keepdims=True)
    return x / scale


def _readout_weights(model, params, what):
    ro = _readout(model, what)
    rw = model.readout_weights(params) if hasattr(model, "readout_weights") else None
    if rw is None:
        raise ValueError(
            f"{what}: {type(model).__name__} has no linear readout (readout_weights returned "
            f"None: a head module, or no unembedding / class head)."
        )
    return ro, rw


def unembed_matrix(model, params):
    """The readout's W `[d_model, n_out]`: W_U (W_E.T when tied) of an LM, a ViT's class head."""
    return _readout_weights(model, params, "unembed_matrix")[1][0]


def _final_norm_params(model, params, ro):
    if ro.norm is None or ro.norm_type is None:
        return None, None
    w = _common.param(model, params, ro.norm, "w")
    b = _common.param(model, params, ro.norm, "b", required=False)
    return w, (b if ro.norm_type == "LN" else None)


def residual_directions(model, params, tokens):
    """`w_norm * W[:, tokens]`: the direction (in normalised-stream units) read as each output.

    tokens: int or int array (vocabulary ids of an LM, class ids of a ViT); returns
    `[*tokens.shape, d_model]`.
    """
    ro, (W, _) = _readout_weights(model, params, "residual_directions")
    d = jnp.take(W.T, jnp.asarray(tokens), axis=0)
    w, _ = _final_norm_params(model, params, ro)
    return d if w is None else d * w


def logit_attrs(model, params, residual_stack, tokens, incorrect_tokens=None):
    """Direct logit attribution of an LN-applied stack (TL `cache.logit_attrs`).

    Args:
      residual_stack: `[component, batch, pos, d_model]` after `apply_ln_to_stack` (pooled
        readouts: after pooling, pos = 1).
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
        return jnp.einsum("cbpd,d->cbp", residual_stack, d)
    if d.ndim == 2:  # [batch, d_model]
        return jnp.einsum("cbpd,bd->cbp", residual_stack, d)
    return jnp.einsum("cbpd,bpd->cbp", residual_stack, d)


def logit_constant(model, params, tokens, incorrect_tokens=None):
    """The part of the logit (difference) no component owns: `b_norm . W[:, t] + b[t]`."""
    ro, (W, b) = _readout_weights(model, params, "logit_constant")
    _, b_norm = _final_norm_params(model, params, ro)

    def const(t):
        c = jnp.zeros(jnp.shape(t), jnp.float32)
        if b_norm is not None:
            c = c + jnp.take(b_norm @ W, t)
        if b is not None:
            c = c + jnp.take(b, t)
        return c

    c = const(jnp.asarray(tokens))
    return c if incorrect_tokens is None else c - const(jnp.asarray(incorrect_tokens))


def _pool(ro, x):
    """Pools `[component, batch, pos, d_model]` as the readout does -> `[..., 1, d_model]`."""
    if ro.pool is None:
        return x
    if ro.pool == "cls":
        return x[..., :1, :]
    if ro.pool == "mean":
        return x.mean(axis=-2, keepdims=True)
    raise ValueError(f"unknown readout pool {ro.pool!r}")


def _to_readout(model, cache, ro, x, pos):
    """Components `[c, batch, pos, d]` -> normalised (cached final scale) and pooled / sliced."""
    if ro.pool is None:
        return apply_ln_to_stack(model, _slice_pos(x, pos), cache, None, pos, stack=ro.stack)
    return _pool(ro, apply_ln_to_stack(model, x, cache, None, None, stack=ro.stack))


def direct_logit_attribution(model, params, cache, tokens, incorrect_tokens=None, pos=None):
    """Per-head and per-MLP direct logit attribution to the readout.

    Args:
      tokens, incorrect_tokens: output ids (vocabulary of an LM, classes of a ViT): int,
        `[batch]`; with incorrect ones, the attribution to the logit difference.
      pos: the position read by a per-position readout (default the last); a pooled
        readout (ViT) reads what its pool says, so `pos` must be None there.

    Needs a cache with the readout stack's `*.{attn}.hook_z` (or hook_result) of every
    attention module, `hook_{attn}_out`, `hook_mlp_out`, its layer-0 `hook_resid_pre` and
    the final norm's `hook_scale` (`mj.run(..., cache=True)` has them).

    Returns dict of arrays: "heads" `[n_layers, n_heads, batch]` (and, per further attention
    module `a`, "{a}_heads", e.g. "cross_attn_heads"), "mlps" `[n_layers, batch]`,
    "attn_bias" `[n_layers, batch]` (b_O; "cross_attn_bias"), "embed" `[batch]` (the
    stack's input: token / patch + position embedding) and "constant"
    (`logit_constant`); all of them sum to the logit (difference).
    """
    what = "direct_logit_attribution"
    _common.check_model(model, what)
    ro, _ = _readout_weights(model, params, what)
    st = model.stack(ro.stack)
    _additive(st, what)
    if ro.pool is not None and pos is not None:
        raise ValueError(
            f"{what}: the readout pools ({ro.pool!r}) instead of reading a position; pass pos=None"
        )
    pos = -1 if ro.pool is None and pos is None else pos
    L = st.n_layers

    def attrs(x):
        return logit_attrs(
            model, params, _to_readout(model, cache, ro, x, pos), tokens, incorrect_tokens
        )[..., 0]

    out = {}
    for a in st.attn:
        heads, _ = stacked_head_results(model, params, cache, stack=st.prefix, attn=a)
        h = attrs(heads)
        h = h.reshape(L, -1, h.shape[-1])  # [layer, head, batch]
        outs = [_common.attn_out_site(st, i, a) for i in range(L)]
        _need(cache, outs, what)
        total = attrs(jnp.stack([cache[n] for n in outs]))
        key = "heads" if a == "attn" else f"{a}_heads"
        out[key] = h
        out[f"{a}_bias"] = total - h.sum(1)
    if st.mlp:
        ms = [st.site(i, "hook_mlp_out") for i in range(L)]
        _need(cache, ms, what)
        out["mlps"] = attrs(jnp.stack([cache[n] for n in ms]))
    e = st.site(0, "hook_resid_pre")
    _need(cache, [e], what)
    out["embed"] = attrs(cache[e][None])[0]
    out["constant"] = logit_constant(model, params, tokens, incorrect_tokens)
    return out


def _final_norm(model, params, ro, x):
    if ro.norm is None or ro.norm_type is None:
        return x
    w, b = _final_norm_params(model, params, ro)
    return _common.apply_norm(ro.norm_type, x, w, b, _common.norm_eps(model, ro.norm))


def logit_lens(model, params, cache, incl_mid=False, pos_slice=None):
    """Outputs read from the residual stream before every layer (nostalgebraist's logit lens).

    Each accumulated residual of the readout's stack gets its own final norm (fresh
    scale), then the readout's pool and linear map.

    Returns:
      (logits `[component, batch, pos, n_out]` (`[component, batch, n_out]` for a pooled
      readout), labels as in `accumulated_resid`); the last component ("final_post")
      equals the model's output.
    """
    ro, (W, b) = _readout_weights(model, params, "logit_lens")
    if ro.pool is not None and pos_slice is not None:
        raise ValueError("logit_lens: the readout pools; pos_slice must be None")
    stack, labels = accumulated_resid(
        model, cache, incl_mid=incl_mid, pos_slice=pos_slice, stack=ro.stack
    )
    x = _final_norm(model, params, ro, stack)
    if ro.pool is not None:
        x = _pool(ro, x)[..., 0, :]
    logits = x @ W
    if b is not None:
        logits = logits + b
    return logits, labels


__all__ = [
    "accumulated_resid",
    "apply_ln_to_stack",
    "decompose_resid",
    "direct_logit_attribution",
    "embed_sites",
    "logit_attrs",
    "logit_constant",
    "logit_lens",
    "residual_directions",
    "stacked_head_results",
    "unembed_matrix",
]
