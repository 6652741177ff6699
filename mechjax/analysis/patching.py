"""Activation patching: every TransformerLens variant, each one compiled sweep.

Each function patches the clean run's activation (from `clean_cache`, e.g.
`mj.run(model, params, clean_tokens, cache="blocks.*.attn.hook_z")[1]`) into the
corrupted run at one selection (layer x head / position ...) at a time and
returns `metric(logits)` for every selection, with the same semantics and output
layout as the TransformerLens function named in its docstring.

How it runs: one jitted program per call signature. The corrupted run's
`blocks.{L}.hook_resid_pre` is computed once; the patched forwards for layer L
start there (layers < L cannot change). Selections are one-hot masks built from
a candidate index inside the program, so a whole layer's sweep is a `vmap`
(chunked with `jax.lax.map(..., batch_size=chunk_size)` to bound memory).
Metrics from `mechjax.analysis.metrics` (e.g. `logit_diff`) also let the sweep
unembed only the positions they read.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from mechjax import hooks as _hooks
from mechjax.analysis import _common
from mechjax.interventions import Intervention

# Sweep axis names -> the site axes they select.
_INDEX_AXES = {"head": ("head", "kv_head"), "pos": ("pos", "q_pos"), "k_pos": ("k_pos",)}

SITES = {
    "resid_pre": "blocks.{}.hook_resid_pre",
    "resid_mid": "blocks.{}.hook_resid_mid",
    "resid_post": "blocks.{}.hook_resid_post",
    "attn_out": "blocks.{}.hook_attn_out",
    "mlp_out": "blocks.{}.hook_mlp_out",
    "z": "blocks.{}.attn.hook_z",
    "q": "blocks.{}.attn.hook_q",
    "k": "blocks.{}.attn.hook_k",
    "v": "blocks.{}.attn.hook_v",
    "pattern": "blocks.{}.attn.hook_pattern",
    "result": "blocks.{}.attn.hook_result",
    "mlp_post": "blocks.{}.mlp.hook_post",
}


def _map(fn, xs, chunk_size):
    if chunk_size is None or chunk_size >= xs.shape[0]:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=chunk_size)


def _axis_of(index_name, axes, site):
    for i, a in enumerate(axes):
        if a in _INDEX_AXES[index_name]:
            return i
    raise ValueError(f"cannot sweep over {index_name!r} at {site!r}: its axes are {axes}")


def _one_hot_mask(i, shape, index_axes):
    """Candidate number i -> bool mask broadcastable to `shape` selecting one cell."""
    sizes = [shape[a] for a in index_axes]
    ids = jnp.unravel_index(i, sizes) if sizes else ()
    mask = jnp.ones([1] * len(shape), bool)
    for a, size, j in zip(index_axes, sizes, ids):
        oh = jnp.arange(size) == j
        mask = mask & oh.reshape([size if d == a else 1 for d in range(len(shape))])
    return mask


@functools.partial(
    jax.jit, static_argnames=("model", "site", "index", "layers", "metric", "chunk_size")
)
def _sweep(
    params,
    corrupted,
    clean_values,
    attention_mask,
    *,
    model,
    site,
    index,
    layers,
    metric,
    chunk_size,
):
    fn, positions = _common.split_metric(metric.value)
    _, corr = _common.full_forward(
        model, params, corrupted, cache="blocks.*.hook_resid_pre", attention_mask=attention_mask
    )
    out = []
    for layer, clean in zip(layers, clean_values):
        name = site.format(layer)
        axes = _hooks.site_axes(name)
        index_axes = [_axis_of(ix, axes, name) for ix in index]
        sizes = [clean.shape[a] for a in index_axes]
        resid = corr[f"blocks.{layer}.hook_resid_pre"]  # [batch, pos, d_model]

        def one(i, name=name, clean=clean, index_axes=index_axes, resid=resid, layer=layer):
            mask = _one_hot_mask(i, clean.shape, index_axes)
            iv = Intervention(site=name, op="clamp", value=clean, mask=mask)
            logits, _ = _common.forward_from(
                model,
                params,
                layer,
                resid,
                (iv,),
                attention_mask=attention_mask,
                positions=positions,
            )
            return fn(logits)

        res = _map(one, jnp.arange(math.prod(sizes)), chunk_size)
        out.append(jax.tree.map(lambda r, s=sizes: r.reshape(tuple(s) + r.shape[1:]), res))
    return jax.tree.map(lambda *r: jnp.stack(r), *out)


def activation_patch(
    model,
    params,
    corrupted_tokens,
    clean_cache,
    metric,
    site: str,
    index: tuple[str, ...] = (),
    *,
    layers=None,
    chunk_size: int | None = None,
    attention_mask=None,
):
    """Generic patching sweep: patch clean `site` of each layer, one selection at a time.

    Args:
      site: a key of `SITES` ("z", "resid_pre", "pattern", ...) or a template like
        `"blocks.{}.attn.hook_z"`.
      index: the axes swept, in output order: names from "head", "pos" (q_pos for
        patterns/scores), "k_pos". () patches the whole site per layer.
      layers: layers to sweep (default all).
      chunk_size: candidates evaluated at once (bounds memory); None = all of a layer.
      attention_mask: optional `[batch, pos]` padding mask, as for `mj.run`.

    Returns:
      `[n_layers (or len(layers)), *sizes of index]` (times the metric's own shape).
    """
    what = "activation_patch"
    cfg = _common.check_model(model, what)
    template = SITES.get(site, site)
    if "{}" not in template:
        raise ValueError(
            f"{what}: site must be one of {sorted(SITES)} or a template containing '{{}}' for the "
            f"layer (e.g. 'blocks.{{}}.attn.hook_z'), got {site!r}"
        )
    for ix in index:
        if ix not in _INDEX_AXES:
            raise ValueError(f"{what}: index entries must be in {sorted(_INDEX_AXES)}, got {ix!r}")
    if len(set(index)) != len(index):
        raise ValueError(f"{what}: index has a repeated axis: {index}")
    if not callable(metric):
        raise TypeError(f"{what}: metric must be a function logits -> scalar, got {metric!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"{what}: chunk_size must be a positive int or None, got {chunk_size!r}")
    layers = tuple(range(cfg.n_layers)) if layers is None else tuple(int(i) for i in layers)
    bad = [i for i in layers if not 0 <= i < cfg.n_layers]
    if bad:
        raise ValueError(f"{what}: layers {bad} out of range 0..{cfg.n_layers - 1}")
    _common.check_inputs(model, corrupted_tokens)
    shapes = _common.site_shapes(model, corrupted_tokens, attention_mask)
    names = [template.format(i) for i in layers]
    unknown = [n for n in names if n not in shapes]
    if unknown:
        near = _hooks.closest(unknown[0], shapes)
        raise ValueError(f"{what}: {unknown[0]!r} is not a site of this model; closest: {near}")
    _common.check_cache(clean_cache, names, what, shapes)
    for n in names:
        axes = _hooks.site_axes(n)
        for ix in index:
            _axis_of(ix, axes, n)
    clean_values = tuple(jnp.asarray(clean_cache[n]) for n in names)
    return _sweep(
        params,
        corrupted_tokens,
        clean_values,
        attention_mask,
        model=model,
        site=template,
        index=tuple(index),
        layers=layers,
        metric=_common.Static(metric),
        chunk_size=chunk_size,
    )


def _doc(tl_name, shape):
    return (
        f"Mirrors TransformerLens `patching.{tl_name}`; returns `{shape}`.\n\n"
        "Args: model, params, corrupted_tokens `[batch, pos]`, clean_cache (dict from mj.run on\n"
        "the clean tokens holding the patched site for every layer), metric (logits -> scalar),\n"
        "chunk_size (candidates per vmap chunk; None = a whole layer at once), attention_mask."
    )


def _make(site, index, tl_name, shape):
    def f(
        model,
        params,
        corrupted_tokens,
        clean_cache,
        metric,
        *,
        chunk_size=None,
        attention_mask=None,
    ):
        return activation_patch(
            model,
            params,
            corrupted_tokens,
            clean_cache,
            metric,
            site,
            index,
            chunk_size=chunk_size,
            attention_mask=attention_mask,
        )

    f.__name__ = f.__qualname__ = tl_name.removeprefix("get_act_patch_")
    f.__doc__ = _doc(tl_name, shape)
    return f


# Residual stream and block outputs, by position: [n_layers, pos].
resid_pre = _make("resid_pre", ("pos",), "get_act_patch_resid_pre", "[n_layers, pos]")
resid_mid = _make("resid_mid", ("pos",), "get_act_patch_resid_mid", "[n_layers, pos]")
resid_post = _make(
    "resid_post", ("pos",), "get_act_patch_resid_post (no TL twin)", "[n_layers, pos]"
)
attn_out = _make("attn_out", ("pos",), "get_act_patch_attn_out", "[n_layers, pos]")
mlp_out = _make("mlp_out", ("pos",), "get_act_patch_mlp_out", "[n_layers, pos]")

# Heads over all positions: [n_layers, n_heads] (k, v: n_kv_heads under GQA).
attn_head_out_all_pos = _make(
    "z", ("head",), "get_act_patch_attn_head_out_all_pos", "[n_layers, n_heads]"
)
attn_head_q_all_pos = _make(
    "q", ("head",), "get_act_patch_attn_head_q_all_pos", "[n_layers, n_heads]"
)
attn_head_k_all_pos = _make(
    "k", ("head",), "get_act_patch_attn_head_k_all_pos", "[n_layers, n_kv_heads]"
)
attn_head_v_all_pos = _make(
    "v", ("head",), "get_act_patch_attn_head_v_all_pos", "[n_layers, n_kv_heads]"
)
attn_head_pattern_all_pos = _make(
    "pattern", ("head",), "get_act_patch_attn_head_pattern_all_pos", "[n_layers, n_heads]"
)

# Heads by position: [n_layers, pos, n_heads] (TL's layout).
attn_head_out_by_pos = _make(
    "z", ("pos", "head"), "get_act_patch_attn_head_out_by_pos", "[n_layers, pos, n_heads]"
)
attn_head_q_by_pos = _make(
    "q", ("pos", "head"), "get_act_patch_attn_head_q_by_pos", "[n_layers, pos, n_heads]"
)
attn_head_k_by_pos = _make(
    "k", ("pos", "head"), "get_act_patch_attn_head_k_by_pos", "[n_layers, pos, n_kv_heads]"
)
attn_head_v_by_pos = _make(
    "v", ("pos", "head"), "get_act_patch_attn_head_v_by_pos", "[n_layers, pos, n_kv_heads]"
)
attn_head_pattern_by_pos = _make(
    "pattern",
    ("head", "pos"),
    "get_act_patch_attn_head_pattern_by_pos",
    "[n_layers, n_heads, dest_pos]",
)
attn_head_pattern_dest_src_pos = _make(
    "pattern",
    ("head", "pos", "k_pos"),
    "get_act_patch_attn_head_pattern_dest_src_pos",
    "[n_layers, n_heads, dest_pos, src_pos]",
)


def block_every(
    model, params, corrupted_tokens, clean_cache, metric, *, chunk_size=None, attention_mask=None
):
    """Mirrors TL `get_act_patch_block_every`: `[3, n_layers, pos]` for resid_pre, attn_out, mlp_out."""
    kw = dict(chunk_size=chunk_size, attention_mask=attention_mask)
    args = (model, params, corrupted_tokens, clean_cache, metric)
    return jnp.stack([resid_pre(*args, **kw), attn_out(*args, **kw), mlp_out(*args, **kw)])


def attn_head_all_pos_every(
    model, params, corrupted_tokens, clean_cache, metric, *, chunk_size=None, attention_mask=None
):
    """Mirrors TL `get_act_patch_attn_head_all_pos_every`: `[5, n_layers, n_heads]` (z, q, k, v, pattern)."""
    kw = dict(chunk_size=chunk_size, attention_mask=attention_mask)
    args = (model, params, corrupted_tokens, clean_cache, metric)
    fns = (
        attn_head_out_all_pos,
        attn_head_q_all_pos,
        attn_head_k_all_pos,
        attn_head_v_all_pos,
        attn_head_pattern_all_pos,
    )
    return jnp.stack([f(*args, **kw) for f in fns])


def attn_head_by_pos_every(
    model, params, corrupted_tokens, clean_cache, metric, *, chunk_size=None, attention_mask=None
):
    """Mirrors TL `get_act_patch_attn_head_by_pos_every`: `[5, n_layers, pos, n_heads]`.

    The pattern entry is summed-over-nothing reordered to `[n_layers, pos, n_heads]` as TL does.
    """
    kw = dict(chunk_size=chunk_size, attention_mask=attention_mask)
    args = (model, params, corrupted_tokens, clean_cache, metric)
    fns = (attn_head_out_by_pos, attn_head_q_by_pos, attn_head_k_by_pos, attn_head_v_by_pos)
    out = [f(*args, **kw) for f in fns]
    out.append(jnp.swapaxes(attn_head_pattern_by_pos(*args, **kw), 1, 2))
    return jnp.stack(out)
