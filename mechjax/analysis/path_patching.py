"""Path patching (sender heads -> receiver sites) and edge patching, on any model family.

As in Wang et al. (IOI) and used by Merullo et al. and Zhang et al.: for each
sender head s,

  1. run the *clean* input with s's `hook_z` taken from the corrupted run and every
     other head's `hook_z` downstream of s frozen to its clean value (MLPs recomputed
     unless `freeze_mlps`), recording the receivers' activations;
  2. run the clean input again with only the receivers' activations (at their
     selected heads/positions) replaced by those recordings; return the metric.

So only the effect of s that reaches the receivers directly through the residual
stream counts. Every sender of a layer is one vmapped program; step 1 resumes at the
sender's layer (`model.resume`) and step 2 at the first receiver's layer (earlier
layers are clean).

Stacks (`model.layer_stacks()`): senders are the heads of one attention module
(`sender_attn`: "attn", or "cross_attn" of a decoder) of one stack (`sender_stack`);
receivers are sites of any stack. "Downstream of s" is every attention module of the
sender's stack from s's layer on and of every later stack in forward order, so the
direct paths are exactly those through the residual streams: within one stack, and
from an encoder head through the encoder output into the decoder's cross-attention
(receivers `decoder.blocks.{L}.cross_attn.hook_k` / `hook_v`; a decoder `hook_q` or
residual receiver then gets no direct effect from an encoder head, so it returns the
clean metric). A receiver in a stack before the sender's, or in an earlier layer,
cannot be reached and gives the clean metric too.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mechjax import hooks as _hooks
from mechjax.analysis import _common
from mechjax.analysis.patching import _axis_of, _map, _one_hot_mask
from mechjax.interventions import Intervention, _selection_axis


def _where(model, site):
    """(stack position, layer) of a site inside a stack: forward order of the layers."""
    st, layer = model.stack_of(site)
    return (_common.stack_position(model, st.prefix), layer)


def _start(model, key):
    st = _common.stacks(model)[key[0]]
    return st.prefix, key[1]


@functools.partial(
    jax.jit,
    static_argnames=(
        "model",
        "rec_names",
        "metric",
        "chunk_size",
        "freeze_mlps",
        "sender_stack",
        "sender_attn",
        "sender_layers",
        "head_axis",
    ),
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
    sender_stack,
    sender_attn,
    sender_layers,
    head_axis,
):
    fn, positions = _common.metric_positions(metric.value, model, "path_patch")
    all_stacks = _common.stacks(model)
    si = _common.stack_position(model, sender_stack)
    sst = all_stacks[si]
    rec_first = min(_where(model, n) for n in rec_names)
    starts = {L: min((si, L), rec_first) for L in sender_layers}

    def frozen(L):
        """(z sites, mlp_out sites) downstream of a sender in layer L."""
        zs, ms = [], []
        for j, st in enumerate(all_stacks[si:], start=si):
            for layer in range(L if j == si else 0, st.n_layers):
                zs += [st.site(layer, f"{a}.hook_z") for a in st.attn]
                if st.mlp:
                    ms.append(st.site(layer, "hook_mlp_out"))
        return zs, ms

    state_names = {key: tuple(model.resume_sites(*_start(model, key))) for key in {rec_first}}
    for key in starts.values():
        state_names[key] = tuple(model.resume_sites(*_start(model, key)))
    zs, ms = frozen(min(sender_layers))
    want = tuple(
        dict.fromkeys(zs + (ms if freeze_mlps else []) + list(sum(state_names.values(), ())))
    )
    _, cc = _common.full_forward(model, params, clean, cache=want, attention_mask=attention_mask)
    senders = tuple(sst.site(L, f"{sender_attn}.hook_z") for L in sender_layers)
    _, kc = _common.full_forward(
        model, params, corrupted, cache=senders, attention_mask=attention_mask
    )

    def state(key):
        return {n: cc[n] for n in state_names[key]}

    out = []
    for L, z_name in zip(sender_layers, senders):
        shape = cc[z_name].shape
        zs, ms = frozen(L)

        def one(i, z_name=z_name, shape=shape, zs=zs, ms=ms, L=L):
            head = _one_hot_mask(i, shape, [head_axis])
            ivs = [
                Intervention(site=z_name, op="patch", value=jnp.where(head, kc[z_name], cc[z_name]))
            ]
            ivs += [Intervention(site=n, op="patch", value=cc[n]) for n in zs if n != z_name]
            if freeze_mlps:
                ivs += [Intervention(site=n, op="patch", value=cc[n]) for n in ms]
            _, rec = _common.resume(
                model,
                params,
                clean,
                *_start(model, starts[L]),
                state(starts[L]),
                tuple(ivs),
                cache=rec_names,
                attention_mask=attention_mask,
            )
            ivs2 = tuple(
                Intervention(site=n, op="clamp", value=rec[n], mask=m)
                for n, m in zip(rec_names, rec_masks)
            )
            logits, _ = _common.resume(
                model,
                params,
                clean,
                *_start(model, rec_first),
                state(rec_first),
                ivs2,
                attention_mask=attention_mask,
                positions=positions,
            )
            return fn(logits)

        out.append(_map(one, jnp.arange(shape[head_axis]), chunk_size))
    return jnp.stack(out)


def _receiver_mask(name, shape, axes, heads, positions):
    m = np.ones([1] + list(shape[1:]), bool)
    if isinstance(positions, np.ndarray) and positions.dtype == bool and positions.ndim == 2:
        # per-example positions: a bool mask [batch, pos] (e.g. each prompt's last token)
        ax = _selection_axis("pos", axes, name)
        if positions.shape != (shape[0], shape[ax]):
            raise ValueError(
                f"path_patch: receiver {name!r}: a per-example position mask must be "
                f"[batch, pos] = {(shape[0], shape[ax])}, got {positions.shape}"
            )
        view = [shape[0] if d == 0 else shape[ax] if d == ax else 1 for d in range(len(shape))]
        m = m & positions.reshape(view)
        positions = None
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


def _same_shapes(a, b) -> bool:
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    return ta == tb and all(np.shape(x) == np.shape(y) for x, y in zip(la, lb))


def path_patch(
    model,
    params,
    clean_tokens,
    corrupted_tokens,
    metric,
    receivers,
    *,
    sender_layers=None,
    sender_stack: str | None = None,
    sender_attn: str = "attn",
    freeze_mlps: bool = False,
    chunk_size: int | None = None,
    attention_mask=None,
):
    """Path patching from every sender head to `receivers`: `[len(sender_layers), n_heads]`.

    Args:
      clean_tokens, corrupted_tokens: the model's inputs (token ids, images, an
        encoder-decoder's dict), of the same shapes.
      receivers: list of `(site, heads, positions)` (heads/positions: index lists or None
        for all; positions may also be a bool numpy mask `[batch, pos]`, one row per
        example, e.g. each prompt's own last token), or bare site names; e.g. `[("blocks.3.attn.hook_q", [2], [-1])]` for the
        query of head 3.2 at the last position, `[("blocks.5.hook_resid_post", None, [-1])]`
        (last layer) for the direct path to the logits, or
        `[("decoder.blocks.1.cross_attn.hook_v", [0], None)]` for an encoder -> decoder path.
      sender_stack: the stack whose heads are the senders (default: the first receiver's).
      sender_attn: the senders' attention module ("attn"; "cross_attn" in a decoder).
      sender_layers: layers of `sender_stack` whose heads are senders (default: every layer
        up to the last one with a head upstream of a receiver -- for a decoder's
        `cross_attn.hook_q` receiver that includes its own layer's self-attention -- if
        every receiver is in `sender_stack`, else all).
      freeze_mlps: also hold every downstream MLP output at its clean value in step 1.

    Returns:
      metric after each sender's path patch. With clean metric m_c and corrupted m_k,
      `(out - m_c) / (m_k - m_c)` is Merullo et al.'s path-patching score.
    """
    what = "path_patch"
    _common.check_model(model, what)
    clean_tokens = _common.as_arrays(clean_tokens)
    corrupted_tokens = _common.as_arrays(corrupted_tokens)
    _common.check_inputs(model, clean_tokens, attention_mask)
    _common.check_inputs(model, corrupted_tokens, attention_mask)
    if not _same_shapes(clean_tokens, corrupted_tokens):
        raise ValueError(
            f"{what}: clean {jax.tree.map(np.shape, clean_tokens)} and corrupted "
            f"{jax.tree.map(np.shape, corrupted_tokens)} shapes differ"
        )
    info = _common.site_info(model, clean_tokens, attention_mask)
    shapes = {k: v[0] for k, v in info.items()}
    axes_of = {k: v[1] for k, v in info.items()}
    recs = []
    for r in receivers if not isinstance(receivers, str) else [receivers]:
        site, heads, pos = (
            (r, None, None) if isinstance(r, str) else tuple(r) + (None,) * (3 - len(r))
        )
        if site not in shapes or model.stack_of(site) is None:
            raise ValueError(
                f"{what}: receiver {site!r} is not a site inside a layer stack "
                f"({[s.prefix for s in _common.stacks(model)]}); closest: "
                f"{_hooks.closest(site, shapes)}"
            )
        recs.append((site, _receiver_mask(site, shapes[site], axes_of[site], heads, pos)))
    if not recs:
        raise ValueError(f"{what}: give at least one receiver")
    rec_stacks = [model.stack_of(n)[0].prefix for n, _ in recs]
    sst = _common.get_stack(model, rec_stacks[0] if sender_stack is None else sender_stack, what)
    _common.check_attn(sst, sender_attn, what)
    if sender_layers is None:
        if all(p == sst.prefix for p in rec_stacks):
            order = _common.site_order(model)
            last = -1  # the last sender layer upstream of some receiver
            for n, _ in recs:
                layer = model.stack_of(n)[1]
                after = order.index(n) > order.index(sst.site(layer, f"{sender_attn}.hook_z"))
                last = max(last, layer if after else layer - 1)
            sender_layers = tuple(range(last + 1))
        else:
            sender_layers = tuple(range(sst.n_layers))
    else:
        sender_layers = tuple(int(i) for i in sender_layers)
    bad = [i for i in sender_layers if not 0 <= i < sst.n_layers]
    if bad or not sender_layers:
        raise ValueError(
            f"{what}: sender_layers {sender_layers} of {sst.prefix!r} must be non-empty, "
            f"within 0..{sst.n_layers - 1}"
        )
    z0 = sst.site(sender_layers[0], f"{sender_attn}.hook_z")
    head_axis = _axis_of("head", axes_of.get(z0), z0)
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
        sender_stack=sst.prefix,
        sender_attn=sender_attn,
        sender_layers=sender_layers,
        head_axis=head_axis,
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
    stack: str | None = None,
):
    """Edge patching within one stack: every (sender head -> receiver head input) edge.

    Senders and receivers are the self-attention ("attn") heads of `stack` (default: the
    readout's stack, e.g. `blocks` or `decoder.blocks`). Receivers are the q, k and v of
    each head in `receiver_heads` (list of (layer, head); default every head of layers
    >= 1), plus the stack's output (its last `hook_resid_post`: the logits' input for the
    readout's stack). For encoder -> cross-attention edges use `path_patch` with
    `sender_stack`.

    Returns:
      dict with "edges" `[n_receivers, 3 (q, k, v), n_layers, n_heads]` (senders in layers
      at or after the receiver's are NaN), "receivers" the (layer, head) list, and "logits"
      `[n_layers, n_heads]` for the direct sender -> output edges.
    """
    what = "edge_patch"
    _common.check_model(model, what)
    st = _common.get_stack(model, stack, what)
    L_, H = st.n_layers, st.n_heads
    if receiver_heads is None:
        receiver_heads = [(L, h) for L in range(1, L_) for h in range(H)]
    kv = H // st.n_kv_heads
    edges = np.full((len(receiver_heads), 3, L_, H), np.nan, np.float32)
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
                [(st.site(L, f"attn.hook_{kind}"), [hh], positions)],
                sender_layers=range(L),
                sender_stack=st.prefix,
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
        [(st.site(L_ - 1, "hook_resid_post"), None, positions)],
        sender_layers=range(L_),
        sender_stack=st.prefix,
        chunk_size=chunk_size,
        attention_mask=attention_mask,
    )
    return dict(edges=edges, receivers=list(receiver_heads), logits=np.asarray(logits))
