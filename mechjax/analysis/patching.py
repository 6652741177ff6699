"""Activation patching: every TransformerLens variant, each one compiled sweep.

Each function patches the clean run's activation (from `clean_cache`, e.g.
`mj.run(model, params, clean_tokens, cache="blocks.*.attn.hook_z")[1]`) into the
corrupted run at one selection (layer x head / position ...) at a time and
returns `metric(logits)` for every selection, with the same semantics and output
layout as the TransformerLens function named in its docstring.

Works on every model family through the model protocol (`mechjax.models`): the
site names any layer stack (`blocks`, `encoder.blocks`, `decoder.blocks`; e.g.
`site="cross_z", stack="decoder.blocks"` sweeps cross-attention heads).

How it runs: one jitted program per call signature. The corrupted run's
`model.resume_sites(stack, L)` (e.g. `blocks.{L}.hook_resid_pre`) are computed once;
the patched forwards for layer L start there (layers < L cannot change). Selections are one-hot masks built from
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

# Short names -> the site inside a block (relative to `{stack}.{layer}.`).
SITES = {
    "resid_pre": "hook_resid_pre",
    "resid_mid": "hook_resid_mid",
    "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
    "z": "attn.hook_z",
    "q": "attn.hook_q",
    "k": "attn.hook_k",
    "v": "attn.hook_v",
    "pattern": "attn.hook_pattern",
    "result": "attn.hook_result",
    "mlp_post": "mlp.hook_post",
    "cross_attn_out": "hook_cross_attn_out",
    "cross_z": "cross_attn.hook_z",
    "cross_q": "cross_attn.hook_q",
    "cross_k": "cross_attn.hook_k",
    "cross_v": "cross_attn.hook_v",
    "cross_pattern": "cross_attn.hook_pattern",
    "cross_result": "cross_attn.hook_result",
}


def site_template(model, site: str, stack: str | None = None, what: str = "patching"):
    """(template with '{}' for the layer, Stack) for a short name or a template."""
    stacks = model.layer_stacks()
    if site in SITES:
        if stack is None:
            stack = stacks[-1].prefix  # the stack next to the readout
        s = model.stack(stack)
        return s.template(SITES[site]), s
    if "{}" not in site:
        raise ValueError(
            f"{what}: site must be one of {sorted(SITES)} or a template containing '{{}}' for the "
            f"layer (e.g. 'blocks.{{}}.attn.hook_z'), got {site!r}"
        )
    prefix = site.split(".{}", 1)[0]
    if stack is not None and stack != prefix:
        raise ValueError(f"{what}: template {site!r} is not in stack {stack!r}")
    return site, model.stack(prefix)


def layer_sites(model, template, st, layers, inputs, attention_mask, what):
    """Host-side prologue of a per-layer sweep: `(layers, inputs, site_info, names)`.

    Resolves `layers` (default: every layer of stack `st`) and checks them, converts and
    checks the inputs, and checks that `template.format(layer)` is a site for each layer.
    """
    layers = tuple(range(st.n_layers)) if layers is None else tuple(int(i) for i in layers)
    bad = [i for i in layers if not 0 <= i < st.n_layers]
    if bad:
        raise ValueError(f"{what}: layers {bad} out of range 0..{st.n_layers - 1}")
    inputs = _common.as_arrays(inputs)
    _common.check_inputs(model, inputs, attention_mask)
    info = _common.site_info(model, inputs, attention_mask)
    names = tuple(template.format(i) for i in layers)
    unknown = [n for n in names if n not in info]
    if unknown:
        near = _hooks.closest(unknown[0], info)
        raise ValueError(f"{what}: {unknown[0]!r} is not a site of this model; closest: {near}")
    return layers, inputs, info, names


def _map(fn, xs, chunk_size):
    if chunk_size is None or chunk_size >= xs.shape[0]:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=chunk_size)


def _axis_of(index_name, axes, site):
    if axes is None:
        raise ValueError(f"cannot sweep over {index_name!r} at {site!r}: it declares no axes")
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
    jax.jit,
    static_argnames=("model", "site", "stack", "index_axes", "layers", "metric", "chunk_size"),
)
def _sweep(
    params,
    corrupted,
    clean_values,
    attention_mask,
    *,
    model,
    site,
    stack,
    index_axes,
    layers,
    metric,
    chunk_size,
):
    fn, positions = _common.metric_positions(metric.value, model, "activation_patch")
    need = tuple(dict.fromkeys(n for layer in layers for n in model.resume_sites(stack, layer)))
    _, corr = _common.full_forward(
        model, params, corrupted, cache=need, attention_mask=attention_mask
    )
    out = []
    for layer, clean, ax in zip(layers, clean_values, index_axes):
        name = site.format(layer)
        sizes = [clean.shape[a] for a in ax]
        state = {n: corr[n] for n in model.resume_sites(stack, layer)}

        def one(i, name=name, clean=clean, ax=ax, state=state, layer=layer):
            mask = _one_hot_mask(i, clean.shape, ax)
            iv = Intervention(site=name, op="clamp", value=clean, mask=mask)
            logits, _ = _common.resume(
                model,
                params,
                corrupted,
                stack,
                layer,
                state,
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
    stack: str | None = None,
):
    """Generic patching sweep: patch clean `site` of each layer, one selection at a time.

    Args:
      site: a key of `SITES` ("z", "resid_pre", "pattern", "cross_z", ...) or a template like
        `"blocks.{}.attn.hook_z"` / `"decoder.blocks.{}.cross_attn.hook_z"`.
      stack: the layer stack a short site name refers to (default: the model's last stack,
        e.g. `blocks`, or `decoder.blocks` of an encoder-decoder).
      index: the axes swept, in output order: names from "head", "pos" (q_pos for
        patterns/scores), "k_pos". () patches the whole site per layer.
      layers: layers to sweep (default all).
      chunk_size: candidates evaluated at once (bounds memory); None = all of a layer.
      attention_mask: optional `[batch, pos]` padding mask, as for `mj.run`.

    Returns:
      `[n_layers (or len(layers)), *sizes of index]` (times the metric's own shape).
    """
    what = "activation_patch"
    _common.check_model(model, what)
    template, st = site_template(model, site, stack, what)
    for ix in index:
        if ix not in _INDEX_AXES:
            raise ValueError(f"{what}: index entries must be in {sorted(_INDEX_AXES)}, got {ix!r}")
    if len(set(index)) != len(index):
        raise ValueError(f"{what}: index has a repeated axis: {index}")
    if not callable(metric):
        raise TypeError(f"{what}: metric must be a function logits -> scalar, got {metric!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"{what}: chunk_size must be a positive int or None, got {chunk_size!r}")
    layers, corrupted_tokens, info, names = layer_sites(
        model, template, st, layers, corrupted_tokens, attention_mask, what
    )
    shapes = {k: v[0] for k, v in info.items()}
    _common.check_cache(clean_cache, names, what, shapes)
    index_axes = tuple(tuple(_axis_of(ix, info[n][1], n) for ix in index) for n in names)
    clean_values = tuple(jnp.asarray(clean_cache[n]) for n in names)
    return _sweep(
        params,
        corrupted_tokens,
        clean_values,
        attention_mask,
        model=model,
        site=template,
        stack=st.prefix,
        index_axes=index_axes,
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
