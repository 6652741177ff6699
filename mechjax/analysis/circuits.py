"""Circuits as node sets: complement ablation, faithfulness, ROC AUC, greedy pruning.

A circuit is a pytree of bool masks over nodes; True = in the circuit. For a model with
one layer stack (`mj.Transformer`, `mj.ViT`): `{"heads": [n_layers, n_heads], "mlps":
[n_layers]}` (no "mlps" for attention-only models), nodes named "L{layer}H{head}" and
"MLP{layer}". With several stacks every key and name carries the stack's label (its
prefix without `.blocks`), and attention modules other than self-attention get their own
key and letter: an encoder-decoder's circuit is `{"encoder.heads", "encoder.mlps",
"decoder.heads", "decoder.cross_attn_heads", "decoder.mlps"}` with nodes "encoder.L0H1",
"decoder.L1H3" (self-attention head), "decoder.L1X3" (cross-attention head 3 of layer 1),
"decoder.MLP1". `layout(model)` lists the keys, `node_names(model)` the names.

Because masks are leaves, many circuits evaluate as one vmapped program, which is how
`greedy_prune` scores every candidate removal of a step at once.

Ablating the complement replaces each node outside the circuit (a head's `hook_z`,
an MLP's `hook_mlp_out`) by a reference value:
  "zero"     zeros;
  "mean"     its mean over the reference batch, per position;
  "resample" its value on `reference_tokens` (e.g. corrupted prompts), example by example.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mechjax.analysis import _common
from mechjax.analysis.patching import _map
from mechjax.interventions import Intervention

METHODS = ("zero", "mean", "resample")


def _key(model, st, kind):
    lab = _common.stack_label(model, st)
    return f"{lab}.{kind}" if lab else kind


def layout(model):
    """The circuit's keys in order: tuple of (key, stack prefix, attention module or "mlp")."""
    _common.check_model(model, "circuits")
    out = []
    for st in _common.stacks(model):
        for a in st.attn:
            out.append((_key(model, st, "heads" if a == "attn" else f"{a}_heads"), st.prefix, a))
        if st.mlp:
            out.append((_key(model, st, "mlps"), st.prefix, "mlp"))
    return tuple(out)


def _shape(model, prefix, comp):
    st = model.stack(prefix)
    return (st.n_layers,) if comp == "mlp" else (st.n_layers, st.n_heads)


def full_circuit(model, value: bool = True):
    """Every node in (value=True) or out of the circuit."""
    return {k: np.full(_shape(model, p, c), value) for k, p, c in layout(model)}


def node_names(model):
    """Node names, in the circuit's layout: `{"heads": [["L0H0", ...], ...], "mlps": [...]}`."""
    names = {}
    for k, p, c in layout(model):
        st = model.stack(p)
        if c == "mlp":
            names[k] = [_common.mlp_name(model, st, i) for i in range(st.n_layers)]
        else:
            names[k] = [
                [_common.head_name(model, st, i, c, h) for h in range(st.n_heads)]
                for i in range(st.n_layers)
            ]
    return names


def _name_index(model):
    index = {}
    for k, v in node_names(model).items():
        for idx in np.ndindex(np.shape(v)):
            index[np.asarray(v)[idx]] = (k, idx)
    return index


def circuit_from_nodes(model, nodes):
    """Circuit holding the named nodes ("L{layer}H{head}", "MLP{layer}", "decoder.L1X3", ...)."""
    c = full_circuit(model, False)
    index = _name_index(model)
    for n in nodes:
        if n not in index:
            some = list(index)
            raise ValueError(
                f"circuit_from_nodes: bad node {n!r}; this model's nodes are named like "
                f"{some[:2] + some[-1:]} (mechjax.analysis.circuits.node_names)"
            )
        k, idx = index[n]
        c[k][idx] = True
    return c


def _sites(model, prefix, comp):
    st = model.stack(prefix)
    if comp == "mlp":
        return [st.site(i, "hook_mlp_out") for i in range(st.n_layers)]
    return [st.site(i, f"{comp}.hook_z") for i in range(st.n_layers)]


def _reference(model, params, tokens, reference_tokens, method, attention_mask):
    sites = tuple(n for _, p, c in layout(model) for n in _sites(model, p, c))
    src = tokens if reference_tokens is None else reference_tokens
    _, cache = _common.full_forward(model, params, src, cache=sites, attention_mask=attention_mask)
    if method == "zero":
        return jax.tree.map(jnp.zeros_like, cache)
    if method == "mean":
        return jax.tree.map(lambda x: jnp.mean(x, axis=0, keepdims=True), cache)
    return cache


def _head_mask(model, site, out):
    """Per-head bool `[head]` -> broadcastable to `site` (its declared `head` axis)."""
    axes = _common.site_info(model, model.example_inputs())[site][1]
    ax = axes.index("head")
    return out.reshape([-1 if d == ax else 1 for d in range(len(axes))])


def _run_circuit(model, params, tokens, circuit, ref, fn, positions, attention_mask):
    ivs = []
    for k, p, c in layout(model):
        for i, site in enumerate(_sites(model, p, c)):
            out = ~jnp.asarray(circuit[k][i], bool)
            mask = out if c == "mlp" else _head_mask(model, site, out)
            ivs.append(Intervention(site=site, op="clamp", value=ref[site], mask=mask))
    logits, _ = _common.forward(
        model, params, tokens, tuple(ivs), attention_mask=attention_mask, positions=positions
    )
    return fn(logits)


@functools.partial(jax.jit, static_argnames=("model", "metric", "method", "chunk_size"))
def _evaluate_many(
    params, tokens, reference_tokens, circuits, attention_mask, *, model, metric, method, chunk_size
):
    fn, positions = _common.metric_positions(metric.value, model, "circuits")
    ref = _reference(model, params, tokens, reference_tokens, method, attention_mask)
    n = jax.tree.leaves(circuits)[0].shape[0]
    one = lambda i: _run_circuit(  # noqa: E731
        model,
        params,
        tokens,
        jax.tree.map(lambda c: c[i], circuits),
        ref,
        fn,
        positions,
        attention_mask,
    )
    return _map(one, jnp.arange(n), chunk_size)


def _shapes(tree):
    return jax.tree.map(np.shape, tree)


def _check(model, tokens, method, reference_tokens, circuits, stacked, attention_mask=None):
    _common.check_model(model, "circuits")
    _common.check_inputs(model, tokens, attention_mask)
    if method not in METHODS:
        raise ValueError(f"circuits: method must be one of {METHODS}, got {method!r}")
    if method == "resample":
        if reference_tokens is None:
            raise ValueError(
                "circuits: method='resample' needs reference_tokens (e.g. corrupted prompts)"
            )
        if _shapes(reference_tokens) != _shapes(tokens):
            raise ValueError(
                f"circuits: reference_tokens {_shapes(reference_tokens)} must match tokens "
                f"{_shapes(tokens)} for resampling"
            )
    lead = (-1,) if stacked else ()
    want = {k: _shape(model, p, c) for k, p, c in layout(model)}
    if set(circuits) != set(want):
        raise ValueError(f"circuits: a circuit needs keys {sorted(want)}, got {sorted(circuits)}")
    for k, s in want.items():
        shp = np.shape(circuits[k])
        if shp[len(lead) :] != s or (stacked and len(shp) != len(s) + 1):
            raise ValueError(
                f"circuits: {k!r} mask has shape {shp}, expected {('n',) * len(lead) + s}"
            )


def evaluate(
    model,
    params,
    tokens,
    metric,
    circuits,
    *,
    method="mean",
    reference_tokens=None,
    chunk_size=None,
    attention_mask=None,
):
    """Metric with every node outside the circuit ablated.

    Args:
      circuits: one circuit, or a stack of them (leading axis on every mask) evaluated as
        one vmapped program.
      method: "zero", "mean" or "resample" (see module doc); reference_tokens default to tokens.

    Returns:
      scalar metric (one circuit) or `[n_circuits]`.
    """
    tokens = _common.as_arrays(tokens)
    k0, p0, c0 = layout(model)[0]
    if k0 not in circuits:
        raise ValueError(
            f"circuits: a circuit needs keys {[k for k, _, _ in layout(model)]}, got "
            f"{sorted(circuits)}"
        )
    stacked = np.ndim(circuits[k0]) == len(_shape(model, p0, c0)) + 1
    _check(model, tokens, method, reference_tokens, circuits, stacked, attention_mask)
    cs = jax.tree.map(lambda c: jnp.asarray(c, bool), circuits)
    if not stacked:
        cs = jax.tree.map(lambda c: c[None], cs)
    out = _evaluate_many(
        params,
        tokens,
        reference_tokens,
        cs,
        attention_mask,
        model=model,
        metric=_common.Static(metric),
        method=method,
        chunk_size=chunk_size,
    )
    return out if stacked else out[0]


def faithfulness(model, params, tokens, metric, circuit, **kw):
    """(metric(circuit) - metric(empty)) / (metric(full) - metric(empty)); 1 = fully faithful.

    Returns dict: faithfulness, circuit, full, empty (metric values). `kw` as for `evaluate`.
    """
    stack = jax.tree.map(
        lambda c, f, e: np.stack([np.asarray(c, bool), f, e]),
        circuit,
        full_circuit(model, True),
        full_circuit(model, False),
    )
    c, f, e = (float(v) for v in evaluate(model, params, tokens, metric, stack, **kw))
    return dict(faithfulness=(c - e) / (f - e), circuit=c, full=f, empty=e)


def roc_auc(scores, truth) -> float:
    """Area under the ROC curve of node `scores` against a ground-truth node set (bool, same shape).

    Ties count half (Mann-Whitney U statistic).
    """
    s = np.asarray(scores, np.float64).reshape(-1)
    t = np.asarray(truth, bool).reshape(-1)
    if s.shape != t.shape:
        raise ValueError(
            f"roc_auc: scores {np.shape(scores)} and truth {np.shape(truth)} differ in shape"
        )
    pos, neg = s[t], s[~t]
    if not len(pos) or not len(neg):
        raise ValueError("roc_auc: truth needs at least one node in and one node out")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def greedy_prune(
    model,
    params,
    tokens,
    metric,
    threshold: float,
    *,
    method="mean",
    reference_tokens=None,
    chunk_size=None,
    attention_mask=None,
    max_steps=None,
):
    """ACDC-style greedy pruning of the full node set.

    Each step evaluates removing every remaining node from the current circuit (one
    vmapped program over all candidates) and removes the node whose removal changes the
    metric least, as long as that change `|metric(c - node) - metric(c)|` is below
    `threshold`. Stops when no removal is cheap enough.

    Returns:
      dict: circuit (final masks), removed (node names in removal order), metric (final
      value), history (metric after each removal).
    """
    _common.check_model(model, "greedy_prune")
    cur = full_circuit(model, True)
    names = node_names(model)
    flat_names = [n for k in sorted(cur) for n in np.ravel(names[k])]
    sizes = {k: int(np.size(v)) for k, v in cur.items()}
    total = sum(sizes.values())

    def unflat(vec):
        out, i = {}, 0
        for k in sorted(cur):
            out[k] = vec[..., i : i + sizes[k]].reshape(vec.shape[:-1] + np.shape(cur[k]))
            i += sizes[k]
        return out

    vec = np.ones(total, bool)
    value = float(
        evaluate(
            model,
            params,
            tokens,
            metric,
            unflat(vec),
            method=method,
            reference_tokens=reference_tokens,
            attention_mask=attention_mask,
        )
    )
    removed, history = [], []
    for _ in range(max_steps or total):
        cands = np.repeat(vec[None], total, axis=0)
        cands[np.arange(total), np.arange(total)] = False  # candidate j drops node j
        vals = np.asarray(
            evaluate(
                model,
                params,
                tokens,
                metric,
                unflat(cands),
                method=method,
                reference_tokens=reference_tokens,
                chunk_size=chunk_size,
                attention_mask=attention_mask,
            )
        )
        delta = np.where(vec, np.abs(vals - value), np.inf)
        j = int(np.argmin(delta))
        if not delta[j] < threshold:
            break
        vec[j] = False
        value = float(vals[j])
        removed.append(flat_names[j])
        history.append(value)
    return dict(circuit=unflat(vec), removed=removed, metric=value, history=history)
