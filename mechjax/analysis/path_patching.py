"""Path patching (sender heads -> receiver sites) and edge patching.

As in Wang et al. (IOI) and used by Merullo et al. and Zhang et al.: for each
sender head s,

  1. run the *clean* input with s's `hook_z` taken from the corrupted run and every
     other head's `hook_z` frozen to its clean value (MLPs recomputed unless
     `freeze_mlps`), recording the receivers' activations;
  2. run the clean input again with only the receivers' activations (at their
     selected heads/positions) replaced by those recordings; return the metric.

So only the effect of s that reaches the receivers directly through the residual
stream counts. Every sender of a layer is one vmapped program; step 1 starts at the
sender's layer and step 2 at the first receiver's layer (earlier layers are clean).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mechjax import hooks as _hooks
from mechjax.analysis import _common
from mechjax.analysis.patching import _map, _one_hot_mask
from mechjax.interventions import Intervention, _selection_axis


def _layer_of(name):
    parts = name.split(".")
    return int(parts[1]) if parts[0] == "blocks" else None


@functools.partial(
    jax.jit,
    static_argnames=("model", "rec_names", "metric", "chunk_size", "freeze_mlps", "sender_layers"),
)
def _path_sweep(
    params,
    clean,
    corrupted,
    rec_masks,
    attention_mask,
    *,
    model,
    rec_names,
    metric,
    chunk_size,
    freeze_mlps,
    sender_layers,
):
    cfg = model.cfg
    fn, positions = _common.split_metric(metric.value)
    want = ("blocks.*.attn.hook_z", "blocks.*.hook_resid_pre") + (
        ("blocks.*.hook_mlp_out",) if freeze_mlps else ()
    )
    _, cc = _common.full_forward(model, params, clean, cache=want, attention_mask=attention_mask)
    _, kc = _common.full_forward(
        model, params, corrupted, cache="blocks.*.attn.hook_z", attention_mask=attention_mask
    )
    rec_start = min(_layer_of(n) for n in rec_names)
    out = []
    for L in sender_layers:
        z_name = f"blocks.{L}.attn.hook_z"
        shape = cc[z_name].shape

        def one(i, L=L, z_name=z_name, shape=shape):
            head = _one_hot_mask(i, shape, [2])  # [1, 1, head, 1]
            ivs = [
                Intervention(site=z_name, op="patch", value=jnp.where(head, kc[z_name], cc[z_name]))
            ]
            for l in range(L + 1, cfg.n_layers):  # later heads frozen to clean
                n = f"blocks.{l}.attn.hook_z"
                ivs.append(Intervention(site=n, op="patch", value=cc[n]))
            if freeze_mlps:
                for l in range(L, cfg.n_layers):
                    n = f"blocks.{l}.hook_mlp_out"
                    ivs.append(Intervention(site=n, op="patch", value=cc[n]))
            _, rec = _common.forward_from(
                model,
                params,
                L,
                cc[f"blocks.{L}.hook_resid_pre"],
                tuple(ivs),
                cache=rec_names,
                attention_mask=attention_mask,
                positions=(0,),
            )
            ivs2 = tuple(
                Intervention(site=n, op="clamp", value=rec[n], mask=m)
                for n, m in zip(rec_names, rec_masks)
            )
            logits, _ = _common.forward_from(
                model,
                params,
                rec_start,
                cc[f"blocks.{rec_start}.hook_resid_pre"],
                ivs2,
                attention_mask=attention_mask,
                positions=positions,
            )
            return fn(logits)

        out.append(_map(one, jnp.arange(cfg.n_heads), chunk_size))
    return jnp.stack(out)


def _receiver_mask(name, shape, axes, heads, positions):
    m = np.ones([1] + list(shape[1:]), bool)
    for sel, kind in ((heads, "head"), (positions, "pos")):
        if sel is None:
            continue
        ax = _selection_axis(kind, axes, name)
        keep = np.zeros(shape[ax], bool)
        try:
            keep[np.asarray(sel, int)] = True
        except IndexError:
            raise ValueError(
                f"path_patch: receiver {name!r}: {kind} {sel} out of range 0..{shape[ax] - 1}"
            ) from None
        m &= keep.reshape([shape[ax] if d == ax else 1 for d in range(len(shape))])
    return m


def path_patch(
    model,
    params,
    clean_tokens,
    corrupted_tokens,
    metric,
    receivers,
    *,
    sender_layers=None,
    freeze_mlps: bool = False,
    chunk_size: int | None = None,
    attention_mask=None,
):
    """Path patching from every sender head to `receivers`: `[len(sender_layers), n_heads]`.

    Args:
      receivers: list of `(site, heads, positions)` (heads/positions: index lists or None
        for all), or bare site names; e.g. `[("blocks.3.attn.hook_q", [2], [-1])]` for the
        query of head 3.2 at the last position, or `[("blocks.5.hook_resid_post", None, [-1])]`
        (last layer) for the direct path to the logits.
      sender_layers: layers whose heads are senders (default: all before the last receiver).
      freeze_mlps: also hold every MLP output at its clean value in step 1.

    Returns:
      metric after each sender's path patch. With clean metric m_c and corrupted m_k,
      `(out - m_c) / (m_k - m_c)` is Merullo et al.'s path-patching score.
    """
    what = "path_patch"
    cfg = _common.check_model(model, what)
    _common.check_inputs(model, clean_tokens)
    _common.check_inputs(model, corrupted_tokens)
    if np.shape(clean_tokens) != np.shape(corrupted_tokens):
        raise ValueError(
            f"{what}: clean {np.shape(clean_tokens)} and corrupted {np.shape(corrupted_tokens)} shapes differ"
        )
    info = _common.site_info(model, clean_tokens, attention_mask)
    shapes = {k: v[0] for k, v in info.items()}
    axes_of = {k: v[1] for k, v in info.items()}
    recs = []
    for r in receivers if not isinstance(receivers, str) else [receivers]:
        site, heads, pos = (
            (r, None, None) if isinstance(r, str) else tuple(r) + (None,) * (3 - len(r))
        )
        if site not in shapes or _layer_of(site) is None:
            raise ValueError(
                f"{what}: receiver {site!r} is not a blocks.* site; closest: {_hooks.closest(site, shapes)}"
            )
        recs.append((site, _receiver_mask(site, shapes[site], axes_of[site], heads, pos)))
    if not recs:
        raise ValueError(f"{what}: give at least one receiver")
    last = max(_layer_of(n) for n, _ in recs)
    sender_layers = (
        tuple(range(last)) if sender_layers is None else tuple(int(i) for i in sender_layers)
    )
    bad = [i for i in sender_layers if not 0 <= i < cfg.n_layers]
    if bad or not sender_layers:
        raise ValueError(
            f"{what}: sender_layers {sender_layers} must be non-empty, within 0..{cfg.n_layers - 1}"
        )
    return _path_sweep(
        params,
        clean_tokens,
        corrupted_tokens,
        tuple(m for _, m in recs),
        attention_mask,
        model=model,
        rec_names=tuple(n for n, _ in recs),
        metric=_common.Static(metric),
        chunk_size=chunk_size,
        freeze_mlps=bool(freeze_mlps),
        sender_layers=sender_layers,
    )


def edge_patch(
    model,
    params,
    clean_tokens,
    corrupted_tokens,
    metric,
    receiver_heads=None,
    *,
    positions=None,
    chunk_size=None,
    attention_mask=None,
):
    """Edge patching: every (sender head -> receiver head input) edge, one path patch each.

    Receivers are the q, k and v of each head in `receiver_heads` (list of (layer, head);
    default every head of layers >= 1), plus the logits (the last block's resid_post).

    Returns:
      dict with "edges" `[n_receivers, 3 (q, k, v), n_layers, n_heads]` (senders in layers
      at or after the receiver's are NaN), "receivers" the (layer, head) list, and "logits"
      `[n_layers, n_heads]` for the direct sender -> logits edges.
    """
    cfg = _common.check_model(model, "edge_patch")
    if receiver_heads is None:
        receiver_heads = [(L, h) for L in range(1, cfg.n_layers) for h in range(cfg.n_heads)]
    kv = cfg.n_heads // cfg.kv_heads
    edges = np.full((len(receiver_heads), 3, cfg.n_layers, cfg.n_heads), np.nan, np.float32)
    for r, (L, h) in enumerate(receiver_heads):
        if L < 1:
            continue
        for j, (kind, hh) in enumerate((("q", h), ("k", h // kv), ("v", h // kv))):
            res = path_patch(
                model,
                params,
                clean_tokens,
                corrupted_tokens,
                metric,
                [(f"blocks.{L}.attn.hook_{kind}", [hh], positions)],
                sender_layers=range(L),
                chunk_size=chunk_size,
                attention_mask=attention_mask,
            )
            edges[r, j, :L] = np.asarray(res)
    logits = path_patch(
        model,
        params,
        clean_tokens,
        corrupted_tokens,
        metric,
        [(f"blocks.{cfg.n_layers - 1}.hook_resid_post", None, positions)],
        sender_layers=range(cfg.n_layers),
        chunk_size=chunk_size,
        attention_mask=attention_mask,
    )
    return dict(edges=edges, receivers=list(receiver_heads), logits=np.asarray(logits))
