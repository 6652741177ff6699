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

from mechjax.analysis import _common
from mechjax.analysis.patching import _axis_of, _map, layer_sites, site_template
from mechjax.interventions import Intervention


def _reduce_to(prod, index_axes):
    """Sum `prod` over every axis except `index_axes`; result in the order of `index_axes`."""
    others = tuple(a for a in range(prod.ndim) if a not in index_axes)
    r = jnp.sum(prod, axis=others)
    order = np.argsort(np.argsort(index_axes))  # rank of each requested axis among the kept
    return jnp.transpose(r, tuple(order)) if r.ndim > 1 else r


def layer0_sites(model) -> tuple[str, ...]:
    """Every stack's layer-0 `hook_resid_pre`: the embeddings of each stream (the IG path)."""
    return tuple(s.site(0, "hook_resid_pre") for s in _common.stacks(model))


def grads_at_sites(model, params, inputs, metric, names, *, inputs0=None, attention_mask=None):
    """(metric value, activations, d metric / d activation) at `names`, traced.

    The forward resumes at the first stack's layer 0; `inputs0` (dict site -> value)
    overrides layer-0 `hook_resid_pre` values (the stream embeddings), as integrated
    gradients needs.
    """
    fn, positions = _common.metric_positions(metric, model, "attribute")
    first = _common.stacks(model)[0].prefix
    need = tuple(model.resume_sites(first, 0))
    _, base = _common.full_forward(model, params, inputs, cache=need, attention_mask=attention_mask)
    state = {n: base[n] for n in need}
    fixed = ()
    for n, v in (inputs0 or {}).items():
        if n in state:
            state[n] = v
        else:
            fixed += (Intervention(site=n, op="patch", value=v),)

    def f(deltas):
        ivs = fixed + tuple(
            Intervention(site=n, op="steer", value=d, scale=jnp.float32(1.0))
            for n, d in zip(names, deltas)
        )
        logits, cache = _common.resume(
            model,
            params,
            inputs,
            first,
            0,
            state,
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


def _lerp(a, x, y):
    return jax.tree.map(lambda u, v: u + a * (v - u), x, y)


@functools.partial(
    jax.jit, static_argnames=("model", "names", "index_axes", "metric", "ig_steps", "chunk_size")
)
def _attribute(
    params,
    corrupted,
    clean_values,
    clean0,
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
        _, corr0 = _common.full_forward(
            model, params, corrupted, cache=tuple(clean0), attention_mask=attention_mask
        )
        corr0 = {n: corr0[n] for n in clean0}
        alphas = (jnp.arange(ig_steps, dtype=jnp.float32) + 0.5) / ig_steps  # midpoint rule

        def step(a):
            return grads_at_sites(
                model,
                params,
                corrupted,
                metric.value,
                names,
                inputs0=_lerp(a, corr0, clean0),
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
    stack: str | None = None,
):
    """Attribution-patching estimate of `patching.activation_patch` with the same arguments.

    Args:
      site, index, layers, attention_mask, stack: as in `patching.activation_patch` (any
        stack's sites: `site="cross_z", stack="decoder.blocks"`, or a template).
      ig_steps: None for plain gradients; n > 0 averages gradients over n inputs
        interpolated corrupted -> clean: every stack's layer-0 `hook_resid_pre` (the
        embeddings of each stream, e.g. `blocks.0.hook_resid_pre`) moves along the line,
        so clean_cache must hold them.
      chunk_size: integration steps evaluated at once (memory bound).

    Returns:
      `[n_layers, *index sizes]`: estimated metric after each patch (same layout as the
      exact sweep, so `compare(exact, approx)` applies directly).
    """
    what = "attribute"
    _common.check_model(model, what)
    template, st = site_template(model, site, stack, what)
    if ig_steps is not None and (not isinstance(ig_steps, int) or ig_steps < 1):
        raise ValueError(f"{what}: ig_steps must be None or a positive int, got {ig_steps!r}")
    layers, corrupted_tokens, info, names = layer_sites(
        model, template, st, layers, corrupted_tokens, attention_mask, what
    )
    shapes = {k: s for k, (s, _) in info.items()}
    inputs0 = layer0_sites(model) if ig_steps else ()
    _common.check_cache(clean_cache, list(names) + list(inputs0), what, shapes)
    index_axes = tuple(tuple(_axis_of(ix, info[n][1], n) for ix in index) for n in names)
    return _attribute(
        params,
        corrupted_tokens,
        tuple(jnp.asarray(clean_cache[n]) for n in names),
        {n: jnp.asarray(clean_cache[n]) for n in inputs0},
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


def _mlp_streams(model, st, layer, order, what):
    """(stream the MLP of `layer` reads, stream after it): `hook_resid_*` sites around it."""
    head = f"{st.prefix}.{layer}."
    sites = [n for n in order if n.startswith(head)]
    out = st.site(layer, "hook_mlp_out")
    after = [n for n in sites[sites.index(out) + 1 :] if ".hook_resid_" in n[len(head) - 1 :]]
    i = sites.index(out)
    while i >= 0 and not sites[i][len(head) :].startswith("hook_resid_"):
        i -= 1
    between = sites[i + 1 : sites.index(out)]
    attn_sites = [n for n in between for a in st.attn if f".{a}." in n or f"hook_{a}_out" in n]
    if i < 0 or not after or attn_sites:
        raise ValueError(
            f"{what}: cannot find the residual stream the MLP of {head[:-1]} reads: EAP needs "
            f"a `hook_resid_*` site right before the MLP (no attention in between) and one "
            f"after it; this layer's sites are {sites}."
        )
    return sites[i], after[0]


def _eap_layout(model, st, what):
    """Host-side plan of edge attribution over stack `st` (see `edge_attribution`)."""
    if st.parallel:
        raise ValueError(f"{what}: parallel attention + MLP blocks are not supported")
    if st.post_norm:
        raise ValueError(
            f"{what}: {st.prefix!r} is a post-norm stack (each norm after its residual add), so "
            f"its stream is not a sum of the senders' outputs; EAP needs pre-norm blocks."
        )
    order = _common.site_order(model)
    plan = []
    for layer in range(st.n_layers):
        recv = []  # (module, kind, site, norm prefix or None)
        for k, a in enumerate(st.attn):
            # The block's first attention module is its self-attention; the others (cross-
            # attention) read keys and values from another stream: only their q is here.
            for kind in ("q", "k", "v") if k == 0 else ("q",):
                site = st.site(layer, f"{a}.hook_{kind}")
                recv.append((a, kind, site, _common.norm_feeding(model, site)))
        mlp = _mlp_streams(model, st, layer, order, what) if st.mlp else None
        plan.append((tuple(recv), mlp))
    return tuple(plan)


def _ranks(model, st):
    """Forward-order rank of each component of a layer (attention modules, then "mlp")."""
    order = _common.site_order(model)
    first = {a: order.index(st.site(0, f"{a}.hook_q")) for a in st.attn}
    if st.mlp:
        first["mlp"] = order.index(st.site(0, "hook_mlp_out"))
    return {c: r for r, c in enumerate(sorted(first, key=first.get))}


def _ln_grad(model, params, kind, gx, norm, acts):
    if norm is None or kind is None:
        return gx
    gx = gx * _common.param(model, params, norm, "w").astype(jnp.float32)
    n = acts[f"{norm}.hook_normalized"]
    return _ln_backward(kind, gx, n, acts[f"{norm}.hook_scale"])


@functools.partial(
    jax.jit, static_argnames=("model", "stack", "plan", "metric", "ig_steps", "chunk_size")
)
def _edge_scores(
    params,
    corrupted,
    clean_z,
    clean_mlp,
    clean_state,
    attention_mask,
    *,
    model,
    stack,
    plan,
    metric,
    ig_steps,
    chunk_size,
):
    st = model.stack(stack)
    L = st.n_layers
    names = []
    for recv, mlp in plan:
        names += [site for _, _, site, _ in recv]
        if mlp is not None:
            names += [mlp[0], mlp[1]]
    names.append(st.site(L - 1, "hook_resid_post"))
    names = list(dict.fromkeys(names))
    resid0 = st.site(0, "hook_resid_pre")
    extra = [resid0] + [st.site(i, f"{a}.hook_z") for i in range(L) for a in st.attn]
    if st.mlp:
        extra += [st.site(i, "hook_mlp_out") for i in range(L)]
    norms = {norm for recv, _ in plan for *_, norm in recv if norm is not None}
    extra += [f"{n}.hook_{s}" for n in sorted(norms) for s in ("scale", "normalized")]
    fn, positions = _common.metric_positions(metric.value, model, "edge_attribution")
    need = tuple(model.resume_sites(stack, 0))
    _, corr = _common.full_forward(
        model, params, corrupted, cache=need, attention_mask=attention_mask
    )
    corr_state = {n: corr[n] for n in need}

    def receiver_grads(state):
        """(receiver input gradients [receiver, batch, pos, d_model], activations)."""
        return _receivers(
            model, params, corrupted, st, plan, names, extra, fn, positions, state, attention_mask
        )

    recv, acts = receiver_grads(corr_state)
    if ig_steps:  # EAP-IG: average the receivers' gradients along corrupted -> clean inputs
        alphas = (jnp.arange(ig_steps, dtype=jnp.float32) + 0.5) / ig_steps
        steps = _map(
            lambda a: receiver_grads(_lerp(a, corr_state, clean_state))[0], alphas, chunk_size
        )
        recv = jnp.mean(steps, axis=0)
    # Senders: embed, heads (z diff through W_O), MLP outputs -> [sender, batch, pos, d_model]
    send = [clean_state[resid0] - acts[resid0]]
    for i in range(L):
        for a in st.attn:
            z = st.site(i, f"{a}.hook_z")
            dz = clean_z[z] - acts[z]  # [batch, pos, head, d_head]
            W_O = _common.param(model, params, st.site(i, a), "W_O")
            send += list(jnp.moveaxis(jnp.einsum("bphe,hed->bphd", dz, W_O), 2, 0))
        if st.mlp:
            m = st.site(i, "hook_mlp_out")
            send.append(clean_mlp[m] - acts[m])
    send = jnp.stack(send).astype(jnp.float32)
    return jnp.einsum("rbpd,sbpd->rs", recv, send)


def _receivers(model, params, inputs, st, plan, names, extra, fn, positions, state, mask):
    def f(deltas):
        ivs = tuple(
            Intervention(site=n, op="steer", value=d, scale=jnp.float32(1.0))
            for n, d in zip(names, deltas)
        )
        logits, cache = _common.resume(
            model,
            params,
            inputs,
            st.prefix,
            0,
            state,
            ivs,
            cache=tuple(names + extra),
            attention_mask=mask,
            positions=positions,
        )
        return fn(logits), cache

    shapes = jax.eval_shape(lambda: f(tuple(jnp.zeros((), jnp.float32) for _ in names))[1])
    zeros = tuple(jnp.zeros(shapes[n].shape, jnp.float32) for n in names)
    (_, acts), grads = jax.value_and_grad(f, has_aux=True)(zeros)
    g = dict(zip(names, grads))
    # Receivers: each head's q (k, v) input through its norm, each MLP input, the output.
    recv = []
    for i, (heads, mlp) in enumerate(plan):
        for a, kind, site, norm in heads:
            W = _common.param(model, params, st.site(i, a), f"W_{kind.upper()}")
            gs = g[site]  # [batch, pos, head or kv_head, d_head]
            gx = jnp.einsum("bphe,hde->hbpd", gs, W.astype(jnp.float32))  # at the norm output
            recv += list(_ln_grad(model, params, st.norm, gx, norm, acts))
        if mlp is not None:
            recv.append(g[mlp[0]] - g[mlp[1]])
    recv.append(g[st.site(st.n_layers - 1, "hook_resid_post")])
    return jnp.stack(recv), acts  # [receiver, batch, pos, d_model]


def edge_attribution(
    model,
    params,
    corrupted_tokens,
    clean_cache,
    metric,
    *,
    ig_steps=None,
    chunk_size=None,
    attention_mask=None,
    stack: str | None = None,
):
    """Edge attribution patching (EAP, Syed et al. 2023) over the graph of one stack.

    score(u -> v) = sum over batch, pos of (clean_u - corrupted_u) . d metric / d input_v,
    the first-order effect of patching the clean output of sender u into receiver v's
    input only. The graph is that of `stack` (default: the readout's stack, e.g. `blocks`
    or `decoder.blocks`). Senders: "embed" (the stack's layer-0 `hook_resid_pre`: token +
    position embedding), heads "L{l}H{h}" (their write `z W_O`; cross-attention heads
    "L{l}X{h}"), "MLP{l}". Receivers: "L{l}H{h}.q" and the k, v inputs of the
    self-attention heads (per kv head under GQA: "L{l}K{j}.k"), the q of cross-attention
    heads "L{l}X{h}.q" (their keys and values read the encoder, outside this graph),
    "MLP{l}" inputs and "logits" (the stack's last `hook_resid_post`; "encoder.output" for
    a stack the readout does not read, whose output feeds the next stack). On a model with
    several stacks every name starts with the stack's label ("decoder.L1X0.q",
    "decoder.embed"; see `_common.head_name`). One forward and one backward.

    Needs clean_cache with `model.resume_sites(stack, 0)` (e.g. `blocks.0.hook_resid_pre`),
    every `{stack}.*.{attn}.hook_z` and `{stack}.*.hook_mlp_out`. Sequential blocks only
    (not parallel attention + MLP). Each norm's backward is exact for the stack's norm
    type (LN / RMS) from its cached scale. ig_steps: EAP-IG (Hanna et al. 2024): receiver
    gradients averaged over `ig_steps` interpolations of what layer 0 resumes from
    (corrupted -> clean; vmapped, `chunk_size` at a time).

    Returns:
      dict: scores `[n_receivers, n_senders]` (NaN where the sender is not upstream of
      the receiver), receivers, senders (name lists).
    """
    what = "edge_attribution"
    _common.check_model(model, what)
    st = _common.get_stack(model, stack, what)
    if ig_steps is not None and (not isinstance(ig_steps, int) or ig_steps < 1):
        raise ValueError(f"{what}: ig_steps must be None or a positive int, got {ig_steps!r}")
    plan = _eap_layout(model, st, what)
    corrupted_tokens = _common.as_arrays(corrupted_tokens)
    _common.check_inputs(model, corrupted_tokens, attention_mask)
    shapes = _common.site_shapes(model, corrupted_tokens, attention_mask)
    L, H = st.n_layers, st.n_heads
    zs = [st.site(i, f"{a}.hook_z") for i in range(L) for a in st.attn]
    ms = [st.site(i, "hook_mlp_out") for i in range(L)] if st.mlp else []
    state = list(model.resume_sites(st.prefix, 0))
    _common.check_cache(clean_cache, state + zs + ms, what, shapes)
    scores = _edge_scores(
        params,
        corrupted_tokens,
        {n: clean_cache[n] for n in zs},
        {n: clean_cache[n] for n in ms},
        {n: clean_cache[n] for n in state},
        attention_mask,
        model=model,
        stack=st.prefix,
        plan=plan,
        metric=_common.Static(metric),
        ig_steps=ig_steps,
        chunk_size=chunk_size,
    )
    per = len(st.attn) + int(st.mlp)  # components per layer
    rank = _ranks(model, st)  # their order in the forward (cross-attention may come first)
    lab = functools.partial(_common._label, model, st)
    senders, s_t = [lab("embed")], [-1]  # component index in forward order
    receivers, r_t = [], []
    for i, (recv, mlp) in enumerate(plan):
        for a in st.attn:
            senders += [_common.head_name(model, st, i, a, h) for h in range(H)]
            s_t += [i * per + rank[a]] * H
        for a, kind, site, _ in recv:
            n = shapes[site][2]  # heads at this site (kv heads for k, v under GQA)
            if kind != "q" and n != H:
                receivers += [lab(f"L{i}K{j}.{kind}") for j in range(n)]
            else:
                receivers += [f"{_common.head_name(model, st, i, a, j)}.{kind}" for j in range(n)]
            r_t += [i * per + rank[a]] * n  # reads the stream before its module
        if mlp is not None:
            senders.append(_common.mlp_name(model, st, i))
            s_t.append(i * per + rank["mlp"])
            receivers.append(_common.mlp_name(model, st, i))
            r_t.append(i * per + rank["mlp"])
    ro = _common.readout_of(model)
    receivers.append("logits" if ro is not None and ro.stack == st.prefix else lab("output"))
    r_t.append(L * per)
    upstream = np.asarray(s_t)[None, :] < np.asarray(r_t)[:, None]
    scores = np.where(upstream, np.asarray(scores), np.nan).astype(np.float32)
    return dict(scores=scores, receivers=receivers, senders=senders)
