"""Artificial optogenetics (Singh et al. 2024) as mechjax interventions.

Every clamp is built from `mj.clamp` / `mj.ablate` / `mj.patch` / `mj.hook`, gated per model
by leaves of its condition pytree (`cond`), so models with different clamps train as ONE
vmapped program. Where the paper needs more than a fixed value, the library's two resolved
kinds are used:

* `mj.from_batch`: interventions whose value depends on the batch (e.g. "attend to the
  correct label", which moves between positions 1 and 3);
* `mj.two_pass`: interventions whose value comes from a first ("probe") forward pass of the
  same parameters (pattern/value preservation, the layer-1 clamp, perfect copy). Gradients
  flow through both passes, as in the paper.

Clamp spec (one config line, `config.task.clamps`), comma-separated items:

    ablate L:H ...        zero the values of these heads
    only L:H              ablate every other head of layer L
    prev_token L:H ...    pattern := previous token (position 0 attends to itself)
    match L:H ...         query row := 1 on the correct label position ("perfect match")
    copy L:H              output logits := this head's query scores to the two labels
    l1                    layer-1 clamp: layer-2 patterns from a fake layer-1 output holding the
                          previous token's embedding; layer-1 output := the embedding
    preserve_patterns     patterns of every layer := those of an unclamped probe pass
    preserve_values       values of every layer := those of an unclamped probe pass
    graft                 resid after layer `config.task.graft_layer` := that of the run in
                          `config.task.graft_dir` (its params are fixed)
    window A B            all clamps of this model only for steps A <= step < B

e.g. `"only 1:3, match 1:3"` (the paper's subcircuit {1,2,3qk,4}).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

import mechjax as mj
from mechjax.data.fewshot import LABEL_POSITIONS, QUERY_POS

KINDS = (
    "ablate",
    "only",
    "prev_token",
    "match",
    "copy",
    "l1",
    "preserve_patterns",
    "preserve_values",
    "graft",
    "window",
)
FLAGS = ("l1", "preserve_patterns", "preserve_values", "graft")
NEVER = np.iinfo(np.int32).max


def forward(model, params, batch, interventions=(), cache=None):
    """`mj.run` on `batch["inputs"]`; `mj.from_batch` / `mj.two_pass` entries read `batch`."""
    return mj.run(
        model, params, batch["inputs"], cache=cache, interventions=interventions, batch=batch
    )


# -- parsing ---------------------------------------------------------------------------------


def _heads(args, kind, n_layers, n_heads):
    out = []
    for a in args:
        try:
            layer, head = (int(v) for v in a.split(":"))
        except ValueError:
            raise ValueError(f"clamp {kind!r}: head {a!r} is not LAYER:HEAD, e.g. 1:3") from None
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ValueError(
                f"clamp {kind!r}: head {a} out of range; layers 0..{n_layers - 1}, "
                f"heads 0..{n_heads - 1}"
            )
        out.append((layer, head))
    if not out:
        raise ValueError(f"clamp {kind!r} needs at least one LAYER:HEAD")
    return out


def parse(spec, n_layers: int = 2, n_heads: int = 8) -> dict:
    """Clamp spec (string or tuple of items, see module doc) -> condition pytree of numpy leaves."""
    cond = {
        "ablate": np.zeros((n_layers, n_heads), bool),
        "prev_token": np.zeros((n_layers, n_heads), bool),
        "match": np.zeros((n_layers, n_heads), bool),
        "copy": np.zeros((n_heads,), bool),
        **{f: np.bool_(False) for f in FLAGS},
        "start": np.int32(0),
        "end": np.int32(NEVER),
    }
    items = spec.split(",") if isinstance(spec, str) else list(spec or ())
    for item in items:
        words = item.split()
        if not words or words == ["none"]:
            continue
        kind, args = words[0], words[1:]
        if kind not in KINDS:
            raise ValueError(f"unknown clamp {kind!r} in {spec!r}; valid clamps: {KINDS}")
        if kind in FLAGS:
            if args:
                raise ValueError(f"clamp {kind!r} takes no arguments, got {args}")
            cond[kind] = np.bool_(True)
        elif kind == "window":
            if len(args) != 2:
                raise ValueError(f"clamp 'window' takes START END steps, got {args}")
            cond["start"], cond["end"] = np.int32(int(args[0])), np.int32(int(args[1]))
        elif kind == "only":
            ((layer, head),) = _heads(args, kind, n_layers, n_heads)
            cond["ablate"][layer] = True
            cond["ablate"][layer, head] = False
        elif kind == "copy":
            hs = _heads(args, kind, n_layers, n_heads)
            if len(hs) != 1 or hs[0][0] != n_layers - 1:
                raise ValueError(f"clamp 'copy' takes one head of the last layer {n_layers - 1}")
            cond["copy"][hs[0][1]] = True
        else:
            for layer, head in _heads(args, kind, n_layers, n_heads):
                cond[kind][layer, head] = True
    if cond["l1"] and n_layers != 2:
        raise ValueError("clamp 'l1' (layer-1 clamp) is defined for 2-layer models only")
    if cond["l1"] and (cond["preserve_patterns"] or cond["preserve_values"]):
        raise ValueError("clamp 'l1' cannot be combined with preserve_patterns/preserve_values")
    if (cond["prev_token"] & cond["match"]).any():
        raise ValueError("a head cannot be both a prev_token and a match clamp")
    return cond


def used(conds) -> dict:
    """Which clamp kinds any model uses (static: decides which interventions exist)."""
    out = {}
    for k in ("ablate", "prev_token", "match"):
        out[k] = tuple(sorted({int(i) for c in conds for i in np.nonzero(c[k].any(-1))[0]}))
    out["copy"] = any(c["copy"].any() for c in conds)
    for f in FLAGS:
        out[f] = any(bool(c[f]) for c in conds)
    return out


# -- interventions ---------------------------------------------------------------------------


def prev_token_pattern(n: int) -> np.ndarray:
    """`[q_pos, k_pos]`: 1 on the previous position; position 0 attends to itself."""
    p = np.zeros((n, n), np.float32)
    p[0, 0] = 1.0
    p[np.arange(1, n), np.arange(n - 1)] = 1.0
    return p


def _shift_prev(x):
    # fake layer-1 output: positions 1..n-2 hold the previous position's embedding; position 0
    # and the query keep their own (as in the paper's perfect_prev_token_input)
    return x.at[:, 1:-1].set(x[:, :-2])  # [batch, pos, d_model]


def _match_ivs(batch, value, layers):
    heads, active = value
    n = batch["inputs"]["tokens"].shape[1]
    onehot = jax.nn.one_hot(batch["label_pos"], n)  # [batch, k_pos]
    target = onehot[:, None, None, :]  # [batch, 1, 1, k_pos] -> the query row
    return tuple(
        mj.clamp(
            f"blocks.{layer}.attn.hook_pattern", target, heads=heads[i], positions=[QUERY_POS]
        ).when(active)
        for i, layer in enumerate(layers)
    )


def _graft_ivs(batch, value, graft):
    g_model, g_params, layer = graft
    site = f"blocks.{layer}.hook_resid_post"
    _, cache = mj.run(g_model, g_params, batch["inputs"], cache=site)
    return (mj.patch(site, jax.lax.stop_gradient(cache[site])).when(value),)


def _copy_logits(scores, batch, copy_heads, d_vocab):
    """Logits `[batch, d_vocab]`: the copy head's query scores to each in-context label."""
    s = jnp.einsum("bhk,h->bk", scores[:, :, QUERY_POS, :], copy_heads.astype(scores.dtype))
    tokens = batch["inputs"]["tokens"]
    logits = jnp.full((tokens.shape[0], d_vocab), -1e9, scores.dtype)
    rows = jnp.arange(tokens.shape[0])
    for p in LABEL_POSITIONS:
        logits = logits.at[rows, tokens[:, p]].set(s[:, p])
    return logits


def _two_pass_make(cache, batch, value):
    (n_layers, d_vocab, want) = value["static"]
    last = n_layers - 1
    out = []
    if want["l1"]:
        site = f"blocks.{last}.attn.hook_pattern"
        out.append(mj.clamp(site, cache[site]).when(value["l1"]))
    if want["preserve_patterns"]:
        for layer in range(n_layers):
            site = f"blocks.{layer}.attn.hook_pattern"
            out.append(mj.clamp(site, cache[site]).when(value["preserve_patterns"]))
    if want["preserve_values"]:
        for layer in range(n_layers):
            site = f"blocks.{layer}.attn.hook_v"
            out.append(mj.clamp(site, cache[site]).when(value["preserve_values"]))
    if want["copy"]:
        scores = cache[f"blocks.{last}.attn.hook_attn_scores"]
        logits = _copy_logits(scores, batch, value["copy"], d_vocab)
        active = value["copy"].any() & value["window"]
        out.append(mj.patch("hook_logits", logits[:, None, :], positions=[QUERY_POS]).when(active))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class _Static:
    """Hashable wrapper so static config rides in a pytree's value without becoming a leaf."""

    n_layers: int
    d_vocab: int
    want: tuple

    def __iter__(self):
        return iter((self.n_layers, self.d_vocab, dict(self.want)))


jax.tree_util.register_static(_Static)


def make_interventions(conds, n_layers: int, d_vocab: int, graft=None):
    """Builds `interventions(cond, step)` for models whose conds are `conds`.

    Only the clamp kinds some model uses are built (static structure); per-model values and
    gates are leaves of `cond`. `graft` = (model, params, layer) of the run to graft from.
    """
    want = used(conds)
    if want["graft"] and graft is None:
        raise ValueError("clamp 'graft' needs config.task.graft_dir (a finished run to graft from)")
    last = n_layers - 1
    needs_two = want["copy"] or want["l1"] or want["preserve_patterns"] or want["preserve_values"]
    static = _Static(n_layers, d_vocab, tuple(sorted(want.items())))
    graft_fn = None
    if want["graft"]:

        def graft_fn(batch, value):
            return _graft_ivs(batch, value, graft)

    def interventions(cond, step):
        window = (step >= cond["start"]) & (step < cond["end"])
        ivs = []
        if needs_two:
            probe = ()
            if want["l1"]:
                on = cond["l1"] & window
                probe = (
                    mj.ablate("blocks.0.hook_attn_out").when(on),
                    mj.hook("blocks.0.hook_resid_post", _shift_prev).when(on),
                )
            sites = ()
            if want["l1"]:
                sites += (f"blocks.{last}.attn.hook_pattern",)
            if want["copy"]:
                sites += (f"blocks.{last}.attn.hook_attn_scores",)
            if want["preserve_patterns"]:
                sites += tuple(f"blocks.{i}.attn.hook_pattern" for i in range(n_layers))
            if want["preserve_values"]:
                sites += tuple(f"blocks.{i}.attn.hook_v" for i in range(n_layers))
            value = {
                "static": static,
                "l1": cond["l1"] & window,
                "preserve_patterns": cond["preserve_patterns"] & window,
                "preserve_values": cond["preserve_values"] & window,
                "copy": cond["copy"],
                "window": window,
            }
            ivs.append(mj.two_pass(tuple(dict.fromkeys(sites)), _two_pass_make, probe, value))
            if want["l1"]:
                # the real pass: layer-1 output := the embedding (attn_out of layer 1 is zero)
                ivs.append(mj.ablate("blocks.0.hook_attn_out").when(cond["l1"] & window))
        for layer in want["prev_token"]:
            make = functools.partial(_prev_token_ivs, layer=layer)
            ivs.append(mj.from_batch(make, (cond["prev_token"][layer], window)))
        if want["match"]:
            make = functools.partial(_match_ivs, layers=want["match"])
            ivs.append(
                mj.from_batch(make, (tuple(cond["match"][i] for i in want["match"]), window))
            )
        for layer in want["ablate"]:
            ivs.append(
                mj.ablate(f"blocks.{layer}.attn.hook_v", heads=cond["ablate"][layer]).when(window)
            )
        if want["graft"]:
            ivs.append(mj.from_batch(graft_fn, cond["graft"] & window))
        return tuple(ivs)

    return interventions


def _prev_token_ivs(batch, value, layer):
    heads, active = value
    n = batch["inputs"]["tokens"].shape[1]
    pattern = prev_token_pattern(n)
    return (mj.clamp(f"blocks.{layer}.attn.hook_pattern", pattern, heads=heads).when(active),)
