"""Circuits as node sets: complement ablation, faithfulness, ROC AUC, greedy pruning.

A circuit is a pytree of bool masks over nodes, `{"heads": [n_layers, n_heads],
"mlps": [n_layers]}` (no "mlps" for attention-only models); True = in the circuit.
Because masks are leaves, many circuits evaluate as one vmapped program, which is
how `greedy_prune` scores every candidate removal of a step at once.

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


def full_circuit(model, value: bool = True):
    """Every node in (value=True) or out of the circuit."""
    cfg = _common.check_model(model, "full_circuit")
    c = {"heads": np.full((cfg.n_layers, cfg.n_heads), value)}
    if not cfg.attn_only:
        c["mlps"] = np.full((cfg.n_layers,), value)
    return c


def circuit_from_nodes(model, nodes):
    """Circuit holding the named nodes: "L{layer}H{head}" or "MLP{layer}"."""
    c = full_circuit(model, False)
    for n in nodes:
        try:
            if n.startswith("MLP"):
                c["mlps"][int(n[3:])] = True
            else:
                layer, head = n[1:].split("H")
                c["heads"][int(layer), int(head)] = True
        except (ValueError, IndexError, KeyError):
            raise ValueError(
                f"circuit_from_nodes: bad node {n!r}; use 'L<layer>H<head>' or 'MLP<layer>' within the model"
            ) from None
    return c


def node_names(model):
    cfg = _common.check_model(model, "node_names")
    names = {"heads": [[f"L{i}H{h}" for h in range(cfg.n_heads)] for i in range(cfg.n_layers)]}
    if not cfg.attn_only:
        names["mlps"] = [f"MLP{i}" for i in range(cfg.n_layers)]
    return names


def _reference(model, params, tokens, reference_tokens, method, attention_mask):
    cfg = model.cfg
    sites = ["blocks.*.attn.hook_z"] + ([] if cfg.attn_only else ["blocks.*.hook_mlp_out"])
    src = tokens if reference_tokens is None else reference_tokens
    _, cache = _common.full_forward(
        model, params, src, cache=tuple(sites), attention_mask=attention_mask
    )
    if method == "zero":
        return jax.tree.map(jnp.zeros_like, cache)
    if method == "mean":
        return jax.tree.map(lambda x: jnp.mean(x, axis=0, keepdims=True), cache)
    return cache


def _run_circuit(model, params, tokens, circuit, ref, fn, positions, attention_mask):
    cfg = model.cfg
    ivs = []
    for i in range(cfg.n_layers):
        z = f"blocks.{i}.attn.hook_z"
        out_heads = ~jnp.asarray(circuit["heads"][i], bool)
        ivs.append(
            Intervention(site=z, op="clamp", value=ref[z], mask=out_heads[None, None, :, None])
        )
        if "mlps" in circuit:
            m = f"blocks.{i}.hook_mlp_out"
            ivs.append(
                Intervention(
                    site=m, op="clamp", value=ref[m], mask=~jnp.asarray(circuit["mlps"][i], bool)
                )
            )
    resid = model.apply(_common.variables(params), tokens, method="embed")
    logits, _ = _common.forward_from(
        model, params, 0, resid, tuple(ivs), attention_mask=attention_mask, positions=positions
    )
    return fn(logits)


@functools.partial(jax.jit, static_argnames=("model", "metric", "method", "chunk_size"))
def _evaluate_many(
    params, tokens, reference_tokens, circuits, attention_mask, *, model, metric, method, chunk_size
):
    fn, positions = _common.split_metric(metric.value)
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


def _check(model, tokens, method, reference_tokens, circuits, stacked):
    cfg = _common.check_model(model, "circuits")
    _common.check_inputs(model, tokens)
    if method not in METHODS:
        raise ValueError(f"circuits: method must be one of {METHODS}, got {method!r}")
    if method == "resample":
        if reference_tokens is None:
            raise ValueError(
                "circuits: method='resample' needs reference_tokens (e.g. corrupted prompts)"
            )
        if np.shape(reference_tokens) != np.shape(tokens):
            raise ValueError(
                f"circuits: reference_tokens {np.shape(reference_tokens)} must match tokens {np.shape(tokens)} for resampling"
            )
    lead = (-1,) if stacked else ()
    want = {"heads": (cfg.n_layers, cfg.n_heads)}
    if not cfg.attn_only:
        want["mlps"] = (cfg.n_layers,)
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
    stacked = np.ndim(circuits["heads"]) == 3
    _check(model, tokens, method, reference_tokens, circuits, stacked)
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
    cfg = _common.check_model(model, "greedy_prune")
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
    del cfg
    return dict(circuit=unflat(vec), removed=removed, metric=value, history=history)
