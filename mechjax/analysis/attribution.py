"""Attribution patching: first-order estimates of activation-patching sweeps.

`attribute(...)` takes the same arguments as `patching.activation_patch` and
estimates the same quantity -- the metric after patching each selection of the
clean activation into the corrupted run -- from one corrupted forward and one
backward pass (Nanda 2023, "attribution patching"):

    metric(corrupted) + sum_{cells in selection} (clean - corrupted) * d metric / d act

With `ig_steps=n` the gradient is averaged over `n` forwards whose inputs
(`blocks.0.hook_resid_pre`) are interpolated from corrupted to clean (integrated
gradients, as in EAP-IG, Hanna et al. 2024); the steps are one vmapped program.
The estimate is exact when the metric is linear in the patched site.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mechjax import hooks as _hooks
from mechjax.analysis import _common
from mechjax.analysis.patching import _axis_of, _map, site_template
from mechjax.interventions import Intervention


def _reduce_to(prod, index_axes):
    """Sum `prod` over every axis except `index_axes`; result in the order of `index_axes`."""
    others = tuple(a for a in range(prod.ndim) if a not in index_axes)
    r = jnp.sum(prod, axis=others)
    order = np.argsort(np.argsort(index_axes))  # rank of each requested axis among the kept
    return jnp.transpose(r, tuple(order)) if r.ndim > 1 else r


def grads_at_sites(model, params, inputs, metric, names, *, resid0=None, attention_mask=None):
    """(metric value, activations, d metric / d activation) at `names`, traced.

    `resid0` overrides the input to block 0 (used for integrated gradients).
    """
    fn, positions = _common.split_metric(metric)
    if resid0 is None:
        resid0 = model.apply(_common.variables(params), inputs, method="embed")

    def f(deltas):
        ivs = tuple(
            Intervention(site=n, op="steer", value=d, scale=jnp.float32(1.0))
            for n, d in zip(names, deltas)
        )
        logits, cache = _common.forward_from(
            model,
            params,
            0,
            resid0,
            ivs,
            cache=tuple(names),
            attention_mask=attention_mask,
            positions=positions,
        )
        return fn(logits), cache

    shapes = jax.eval_shape(lambda: f(tuple(jnp.zeros((), jnp.float32) for _ in names))[1])
    zeros = tuple(jnp.zeros(shapes[n].shape, jnp.float32) for n in names)
    (val, acts), grads = jax.value_and_grad(f, has_aux=True)(zeros)
    return val, acts, grads


@functools.partial(
    jax.jit, static_argnames=("model", "names", "index_axes", "metric", "ig_steps", "chunk_size")
)
def _attribute(
    params,
    corrupted,
    clean_values,
    clean_resid0,
    attention_mask,
    *,
    model,
    names,
    index_axes,
    metric,
    ig_steps,
    chunk_size,
):
    val, acts, grads = grads_at_sites(
        model, params, corrupted, metric.value, names, attention_mask=attention_mask
    )
    if ig_steps:
        corr0 = model.apply(_common.variables(params), corrupted, method="embed")
        alphas = (jnp.arange(ig_steps, dtype=jnp.float32) + 0.5) / ig_steps  # midpoint rule

        def step(a):
            r0 = corr0 + a * (clean_resid0 - corr0)
            return grads_at_sites(
                model,
                params,
                corrupted,
                metric.value,
                names,
                resid0=r0,
                attention_mask=attention_mask,
            )[2]

        grads = jax.tree.map(lambda g: jnp.mean(g, axis=0), _map(step, alphas, chunk_size))
    out = []
    for n, clean, g, ia in zip(names, clean_values, grads, index_axes):
        prod = (clean.astype(jnp.float32) - acts[n].astype(jnp.float32)) * g
        out.append(_reduce_to(prod, ia))
    return val + jnp.stack(out)


def attribute(
    model,
    params,
    corrupted_tokens,
    clean_cache,
    metric,
    site: str,
    index: tuple[str, ...] = (),
    *,
    layers=None,
    ig_steps: int | None = None,
    chunk_size: int | None = None,
    attention_mask=None,
):
    """Attribution-patching estimate of `patching.activation_patch` with the same arguments.

    Args:
      site, index, layers, attention_mask: as in `patching.activation_patch`.
      ig_steps: None for plain gradients; n > 0 averages gradients over n inputs
        interpolated corrupted -> clean (needs `blocks.0.hook_resid_pre` in clean_cache).
      chunk_size: integration steps evaluated at once (memory bound).

    Returns:
      `[n_layers, *index sizes]`: estimated metric after each patch (same layout as the
      exact sweep, so `compare(exact, approx)` applies directly).
    """
    what = "attribute"
    cfg = _common.check_model(model, what)
    template, _ = site_template(model, site, None, what)
    if ig_steps is not None and (not isinstance(ig_steps, int) or ig_steps < 1):
        raise ValueError(f"{what}: ig_steps must be None or a positive int, got {ig_steps!r}")
    layers = tuple(range(cfg.n_layers)) if layers is None else tuple(int(i) for i in layers)
    _common.check_inputs(model, corrupted_tokens)
    shapes = _common.site_shapes(model, corrupted_tokens, attention_mask)
    names = tuple(template.format(i) for i in layers)
    unknown = [n for n in names if n not in shapes]
    if unknown:
        raise ValueError(
            f"{what}: {unknown[0]!r} is not a site of this model; closest: {_hooks.closest(unknown[0], shapes)}"
        )
    needed = list(names) + (["blocks.0.hook_resid_pre"] if ig_steps else [])
    _common.check_cache(clean_cache, needed, what, shapes)
    axes_of = {
        k: a for k, (_, a) in _common.site_info(model, corrupted_tokens, attention_mask).items()
    }
    index_axes = tuple(tuple(_axis_of(ix, axes_of[n], n) for ix in index) for n in names)
    clean_resid0 = clean_cache["blocks.0.hook_resid_pre"] if ig_steps else None
    return _attribute(
        params,
        corrupted_tokens,
        tuple(jnp.asarray(clean_cache[n]) for n in names),
        clean_resid0,
        attention_mask,
        model=model,
        names=names,
        index_axes=index_axes,
        metric=_common.Static(metric),
        ig_steps=ig_steps,
        chunk_size=chunk_size,
    )


def attn_head_out_all_pos(model, params, corrupted_tokens, clean_cache, metric, **kw):
    """Attribution estimate of `patching.attn_head_out_all_pos`: `[n_layers, n_heads]`."""
    return attribute(model, params, corrupted_tokens, clean_cache, metric, "z", ("head",), **kw)


def attn_head_out_by_pos(model, params, corrupted_tokens, clean_cache, metric, **kw):
    """Attribution estimate of `patching.attn_head_out_by_pos`: `[n_layers, pos, n_heads]`."""
    return attribute(
        model, params, corrupted_tokens, clean_cache, metric, "z", ("pos", "head"), **kw
    )


def compare(exact, approx) -> dict:
    """How well an attribution estimate tracks exact patching (host-side numbers).

    Returns dict: pearson, spearman (rank correlation), max_abs_err, n.
    """
    e = np.asarray(exact, np.float64).reshape(-1)
    a = np.asarray(approx, np.float64).reshape(-1)
    if e.shape != a.shape:
        raise ValueError(
            f"compare: shapes differ: exact {np.shape(exact)} vs approx {np.shape(approx)}"
        )

    def corr(x, y):
        x, y = x - x.mean(), y - y.mean()
        d = np.sqrt((x * x).sum() * (y * y).sum())
        return float((x * y).sum() / d) if d > 0 else float("nan")

    def ranks(x):
        r = np.empty(len(x))
        r[np.argsort(x, kind="stable")] = np.arange(len(x))
        return r

    return dict(
        pearson=corr(e, a),
        spearman=corr(ranks(e), ranks(a)),
        max_abs_err=float(np.max(np.abs(e - a))) if e.size else 0.0,
        n=int(e.size),
    )


def _ln_backward(kind, g_n, n, scale):
    """Cotangent at a norm's input from one at its normalised output n (before w, b).

    LN: n = c / s, c = x - mean(x), s = sqrt(mean(c^2) + eps) -> (g - mean g - n mean(g n)) / s;
    RMS drops the centring terms. Exact, eps included.
    """
    gn = jnp.mean(g_n * n, axis=-1, keepdims=True)
    if kind == "LN":
        return (g_n - jnp.mean(g_n, axis=-1, keepdims=True) - n * gn) / scale
    return (g_n - n * gn) / scale


@functools.partial(jax.jit, static_argnames=("model", "metric", "ig_steps", "chunk_size"))
def _edge_scores(
    params, corrupted, clean_z, clean_mlp, clean_resid0, *, model, metric, ig_steps, chunk_size
):
    cfg = model.cfg
    p = _common.variables(params)["params"]
    L = cfg.n_layers
    mlp = not cfg.attn_only
    names = []
    for i in range(L):
        names += [f"blocks.{i}.attn.hook_{s}" for s in ("q", "k", "v")]
        if mlp:
            names.append(f"blocks.{i}.hook_resid_mid")
        names.append(f"blocks.{i}.hook_resid_post")
    extra = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.attn.hook_z" for i in range(L)]
    if mlp:
        extra += [f"blocks.{i}.hook_mlp_out" for i in range(L)]
    if cfg.normalization_type is not None:
        extra += [f"blocks.{i}.ln1.hook_{s}" for i in range(L) for s in ("scale", "normalized")]
    fn, positions = _common.split_metric(metric.value)
    corr0 = model.apply(_common.variables(params), corrupted, method="embed")

    def receiver_grads(resid0):
        """(receiver input gradients [receiver, batch, pos, d_model], activations)."""
        return _receivers(model, p, names, extra, fn, positions, resid0)

    recv, acts = receiver_grads(corr0)
    if ig_steps:  # EAP-IG: average the receivers' gradients along corrupted -> clean inputs
        alphas = (jnp.arange(ig_steps, dtype=jnp.float32) + 0.5) / ig_steps
        steps = _map(
            lambda a: receiver_grads(corr0 + a * (clean_resid0 - corr0))[0], alphas, chunk_size
        )
        recv = jnp.mean(steps, axis=0)
    # Senders: embed, heads (z diff through W_O), MLP outputs -> [sender, batch, pos, d_model]
    send = [clean_resid0 - acts["blocks.0.hook_resid_pre"]]
    for i in range(L):
        dz = clean_z[i] - acts[f"blocks.{i}.attn.hook_z"]  # [batch, pos, head, d_head]
        send += list(
            jnp.moveaxis(jnp.einsum("bphe,hed->bphd", dz, p[f"blocks_{i}"]["attn"]["W_O"]), 2, 0)
        )
        if mlp:
            send.append(clean_mlp[i] - acts[f"blocks.{i}.hook_mlp_out"])
    send = jnp.stack(send).astype(jnp.float32)
    return jnp.einsum("rbpd,sbpd->rs", recv, send)


def _receivers(model, p, names, extra, fn, positions, resid0):
    cfg, L, mlp = model.cfg, model.cfg.n_layers, not model.cfg.attn_only
    params = {"params": p}

    def f(deltas):
        ivs = tuple(
            Intervention(site=n, op="steer", value=d, scale=jnp.float32(1.0))
            for n, d in zip(names, deltas)
        )
        logits, cache = _common.forward_from(
            model, params, 0, resid0, ivs, cache=tuple(names + extra), positions=positions
        )
        return fn(logits), cache

    shapes = jax.eval_shape(lambda: f(tuple(jnp.zeros((), jnp.float32) for _ in names))[1])
    zeros = tuple(jnp.zeros(shapes[n].shape, jnp.float32) for n in names)
    (_, acts), grads = jax.value_and_grad(f, has_aux=True)(zeros)
    g = dict(zip(names, grads))
    # Receivers: each head's q, k, v input (through ln1), each MLP input, the logits.
    recv = []
    for i in range(L):
        a = p[f"blocks_{i}"]["attn"]
        for s, W in (("q", a["W_Q"]), ("k", a["W_K"]), ("v", a["W_V"])):
            gs = g[f"blocks.{i}.attn.hook_{s}"]  # [batch, pos, head or kv_head, d_head]
            gx = jnp.einsum("bphe,hde->hbpd", gs, W.astype(jnp.float32))  # per head, at ln1 output
            if cfg.normalization_type is not None:
                gx = gx * p[f"blocks_{i}"]["ln1"]["w"]
                n = acts[f"blocks.{i}.ln1.hook_normalized"]
                gx = _ln_backward(cfg.normalization_type, gx, n, acts[f"blocks.{i}.ln1.hook_scale"])
            recv += list(gx)
        if mlp:
            recv.append(g[f"blocks.{i}.hook_resid_mid"] - g[f"blocks.{i}.hook_resid_post"])
    recv.append(g[f"blocks.{L - 1}.hook_resid_post"])
    return jnp.stack(recv), acts  # [receiver, batch, pos, d_model]


def edge_attribution(
    model, params, corrupted_tokens, clean_cache, metric, *, ig_steps=None, chunk_size=None
):
    """Edge attribution patching (EAP, Syed et al. 2023) over the whole graph.

    score(u -> v) = sum over batch, pos of (clean_u - corrupted_u) . d metric / d input_v,
    the first-order effect of patching the clean output of sender u into receiver v's
    input only. Senders: "embed" (token + position embedding), heads "L{l}H{h}" (their
    write `z W_O`), "MLP{l}". Receivers: "L{l}H{h}.q" and the k, v inputs (per kv head
    under GQA: "L{l}K{j}.k"), "MLP{l}" inputs, "logits". One forward and one backward.

    Needs clean_cache with blocks.0.hook_resid_pre, blocks.*.attn.hook_z and
    blocks.*.hook_mlp_out. Sequential blocks only (not parallel attention + MLP).
    ig_steps: EAP-IG (Hanna et al. 2024): receiver gradients averaged over `ig_steps`
    inputs interpolated corrupted -> clean (vmapped, `chunk_size` at a time).

    Returns:
      dict: scores `[n_receivers, n_senders]` (NaN where the sender is not upstream of
      the receiver), receivers, senders (name lists).
    """
    what = "edge_attribution"
    cfg = _common.check_model(model, what)
    if cfg.parallel_attn_mlp:
        raise ValueError(f"{what}: parallel attention + MLP blocks are not supported")
    if ig_steps is not None and (not isinstance(ig_steps, int) or ig_steps < 1):
        raise ValueError(f"{what}: ig_steps must be None or a positive int, got {ig_steps!r}")
    _common.check_inputs(model, corrupted_tokens)
    shapes = _common.site_shapes(model, corrupted_tokens)
    L, H = cfg.n_layers, cfg.n_heads
    need = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.attn.hook_z" for i in range(L)]
    if not cfg.attn_only:
        need += [f"blocks.{i}.hook_mlp_out" for i in range(L)]
    _common.check_cache(clean_cache, need, what, shapes)
    scores = _edge_scores(
        params,
        corrupted_tokens,
        tuple(clean_cache[f"blocks.{i}.attn.hook_z"] for i in range(L)),
        None if cfg.attn_only else tuple(clean_cache[f"blocks.{i}.hook_mlp_out"] for i in range(L)),
        clean_cache["blocks.0.hook_resid_pre"],
        model=model,
        metric=_common.Static(metric),
        ig_steps=ig_steps,
        chunk_size=chunk_size,
    )
    senders, s_layer = ["embed"], [-1]  # layer after which the sender's output exists
    for i in range(L):
        senders += [f"L{i}H{h}" for h in range(H)]
        s_layer += [i - 0.5] * H  # heads write into resid_mid of their layer
        if not cfg.attn_only:
            senders.append(f"MLP{i}")
            s_layer.append(i)
    receivers, r_layer = [], []
    for i in range(L):
        receivers += [f"L{i}H{h}.q" for h in range(H)]
        receivers += (
            [f"L{i}K{j}.{s}" for s in ("k", "v") for j in range(cfg.kv_heads)]
            if cfg.kv_heads != H
            else [f"L{i}H{h}.{s}" for s in ("k", "v") for h in range(H)]
        )
        r_layer += [i - 1] * (H + 2 * cfg.kv_heads)  # reads resid_pre: outputs of layers < i
        if not cfg.attn_only:
            receivers.append(f"MLP{i}")
            r_layer.append(i - 0.5)  # reads resid_mid: also this layer's heads
    receivers.append("logits")
    r_layer.append(L)
    upstream = np.asarray(s_layer)[None, :] <= np.asarray(r_layer)[:, None]
    scores = np.where(upstream, np.asarray(scores), np.nan).astype(np.float32)
    return dict(scores=scores, receivers=receivers, senders=senders)
