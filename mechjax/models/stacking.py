"""Hooks under `nn.remat` and `nn.scan` over layers (for deep models).

A :class:`mechjax.hooks.HookContext` is a Python object with side effects: it applies
interventions and stores cached values in a dict. Under a JAX transform the block runs in
an inner trace, so values stored in the parent's dict would leak tracers, and under
`nn.scan` one traced body serves every layer, so a site name with a concrete layer index
does not exist inside it. The wrappers here make both explicit:

* :func:`remat_block` runs one block under `nn.remat` with a *child* context created
  inside the rematerialised function; the interventions go in as pytree arguments (array
  leaves are inputs, the site names and ops stay static) and the child's cache comes back
  as an output, merged into the parent's (`HookContext.merge`).
* :func:`scan_blocks` runs a stack of identical blocks as one `nn.scan` whose body is a
  block with the placeholder site prefix `{stack}.#` (e.g. `blocks.#.attn.hook_z`). The
  body receives the layer index as a scanned input; a :class:`LayerHooks` context maps
  each placeholder site to the real names `{stack}.{l}....`: an intervention addressed
  to layer `l` is applied only where `layer == l` (one `jnp.where` when a single group
  of layers is addressed, else `lax.switch`, so only the matching branch runs), and a
  site cached in any layer is emitted as a scan output (stacked over the scanned layers)
  and un-stacked afterwards to `{stack}.{l}.<site>` entries, keeping only the requested
  layers. Note the stacked output holds the site for every scanned layer while the
  forward runs, even if one layer was asked for. `hooks.active(name)` answers for any
  layer, so an expensive site (`hook_result`) is materialised in the shared body when any
  layer needs it.

Parameter layouts: under remat they are unchanged (`blocks_0`, `blocks_1`, ...); under
scan they are stacked with a leading layer axis under one key (`blocks`:
`{"attn": {"W_Q": [layer, head, d_model, d_head], ...}}`). :func:`stack_layers` and
:func:`unstack_layers` convert between the two, so the same weights run either way and
analyses that read per-layer params (`p["blocks_3"]["attn"]`, `mj.edit`) use the
unrolled view (:func:`unrolled` gives the unrolled twin of a scanned model and its params).

Both wrappers take any block module called as `block(resid, hooks, attention_mask)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mechjax import hooks as _hooks

PLACEHOLDER = "#"

__all__ = [
    "PLACEHOLDER",
    "LayerHooks",
    "as_context",
    "remat_block",
    "scan_blocks",
    "stack_layers",
    "unrolled",
    "unstack_layers",
]


def as_context(hooks) -> _hooks.HookContext:
    """The `HookContext` to run a transformed block with (`NO_HOOKS` -> an empty one)."""
    if isinstance(hooks, _hooks.HookContext):
        return hooks
    if hooks is _hooks.NO_HOOKS:
        return _hooks.HookContext()
    raise TypeError(
        f"blocks under remat / scan_layers need a mechjax.hooks.HookContext (or no hooks), "
        f"got {type(hooks).__name__}: its side effects cannot cross a JAX transform."
    )


# -- remat ------------------------------------------------------------------------------------


def remat_block(block, resid, hooks, attention_mask=None, *, prevent_cse: bool = True):
    """`block(resid, hooks, attention_mask)` under `nn.remat`, hooks included.

    The block's activations are recomputed in the backward pass instead of stored. Its
    sites behave exactly as without remat: interventions apply, cached values and declared
    axes land in `hooks` (returned from the rematerialised function, never leaked).
    """
    ctx = as_context(hooks)
    axes: dict = {}

    def fn(mdl, resid, interventions, attention_mask):
        child = ctx.child(interventions)
        out = mdl(resid, child, attention_mask)
        axes.update(child.axes)
        return out, child.cache

    out, cache = nn.remat(fn, prevent_cse=prevent_cse)(
        block, resid, ctx.interventions, attention_mask
    )
    ctx.merge(cache, axes)
    return out


# -- scan -------------------------------------------------------------------------------------


class LayerHooks:
    """The hooks context inside a scanned block: placeholder sites -> the real layers' sites.

    `layer` is the traced layer index (the scan's input); `layers` the static indices the
    scan runs over. Sites are named `{stack}.#.<rest>`; `{stack}.{l}.<rest>` is the real
    name for layer `l`. Interventions are matched against the real names, cached values
    are collected in `outputs` (placeholder name -> value, the scan's per-layer output).
    """

    def __init__(self, parent: _hooks.HookContext, interventions, layer, layers, stack: str):
        self.interventions = tuple(interventions)
        self.cache_spec = parent.cache_spec
        self.record_all = parent.record_all
        self.layer = layer
        self.layers = tuple(layers)
        self.template = f"{stack}.{PLACEHOLDER}."
        self.stack = stack
        self.outputs: dict = {}
        self.axes: dict = {}
        self._memo: dict[str, tuple[int, ...]] = {}

    def real(self, name: str, layer: int) -> str:
        if not name.startswith(self.template):
            raise ValueError(
                f"site {name!r} inside a scanned block must start with {self.template!r}"
            )
        return f"{self.stack}.{layer}.{name[len(self.template) :]}"

    def _ivs(self, real: str) -> tuple[int, ...]:
        """Positions (in `self.interventions`) of the interventions addressing `real`."""
        if real not in self._memo:
            ivs = enumerate(self.interventions)
            self._memo[real] = tuple(i for i, iv in ivs if _hooks.matches(iv.site, real))
        return self._memo[real]

    def wanted(self, real: str) -> bool:
        return self.record_all or _hooks.cache_wants(self.cache_spec, real)

    def active(self, name: str) -> bool:
        return any(
            self.wanted(r) or self._ivs(r) for r in (self.real(name, l) for l in self.layers)
        )

    def __call__(self, name: str, x, axes: tuple[str, ...] | None = None):
        if axes is not None and len(axes) != x.ndim:
            raise ValueError(f"site {name!r} declares axes {axes} but has shape {x.shape}")
        self.axes[name] = None if axes is None else tuple(axes)
        reals = [self.real(name, l) for l in self.layers]
        groups: dict[tuple[int, ...], list[int]] = {}  # interventions -> positions in layers
        for j, r in enumerate(reals):
            groups.setdefault(self._ivs(r), []).append(j)
        if any(groups):
            x = self._intervene(x, reals, groups, axes)
        if any(self.wanted(r) for r in reals):
            self.outputs[name] = x
        return x

    def _intervene(self, x, reals, groups, axes):
        def branch(key, js):
            def f(x):
                y = x
                for i in key:
                    y = self.interventions[i].apply(y, reals[js[0]], axes)
                return y.astype(x.dtype)

            return f

        live = [(k, js) for k, js in groups.items() if k]
        if len(groups) == 1:  # the same interventions at every layer
            ((key, js),) = live
            return branch(key, js)(x)
        pos = self.layer - self.layers[0]
        if len(groups) == 2 and len(live) == 1:  # one group of layers, the rest untouched
            ((key, js),) = live
            hit = jnp.isin(pos, jnp.asarray(js))
            return jnp.where(hit, branch(key, js)(x), x)
        table = np.zeros(len(self.layers), np.int32)
        fns = [lambda x: x]
        for key, js in live:
            table[js] = len(fns)
            fns.append(branch(key, js))
        return jax.lax.switch(jnp.asarray(table)[pos], fns, x)


def scan_blocks(
    block,
    resid,
    hooks,
    attention_mask=None,
    *,
    n_layers: int,
    start: int = 0,
    stack: str = "blocks",
    remat: bool = False,
):
    """Runs layers `start..n_layers-1` of a stacked block as one `nn.scan`, hooks included.

    `block` is a block module whose sites are named `{stack}.#.<rest>` and whose params
    carry a leading layer axis of size `n_layers` (flax `variable_axes={"params": 0}`);
    `start > 0` runs the scan over the slice `params[start:]` (a partial forward for
    patching sweeps). `remat=True` also rematerialises each layer.
    """
    ctx = as_context(hooks)
    if not 0 <= start <= n_layers:
        raise ValueError(f"start layer {start} out of range 0..{n_layers}")
    if start == n_layers:
        return resid
    if not block.is_initializing() and not jax.tree.leaves(block.variables.get("params", {})):
        raise ValueError(
            f"a scanned stack reads its params stacked under {stack!r} with a leading layer "
            f"axis; these params have none (unrolled '{stack}_0', ... ?). Convert them with "
            f"mj.stack_layers(params)."
        )
    layers = tuple(range(start, n_layers))
    info: dict = {}

    def body(mdl, carry, layer, interventions, attention_mask):
        lh = LayerHooks(ctx, interventions, layer, layers, stack)
        out = mdl(carry, lh, attention_mask)
        info["axes"] = dict(lh.axes)
        return out, lh.outputs

    if remat:
        body = nn.remat(body, prevent_cse=False)
    scan = nn.scan(
        body,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=(0, nn.broadcast, nn.broadcast),
        length=len(layers),
    )
    if start:
        scan = nn.map_variables(
            scan,
            "params",
            trans_in_fn=lambda v: jax.tree.map(lambda a: a[start:], v),
            init=False,
        )
    layer_ids = jnp.arange(start, n_layers, dtype=jnp.int32)
    out, ys = scan(block, resid, layer_ids, ctx.interventions, attention_mask)
    cache, axes = {}, {}
    template = f"{stack}.{PLACEHOLDER}."
    for j, l in enumerate(layers):
        for name, a in info["axes"].items():
            real = f"{stack}.{l}.{name[len(template) :]}"
            axes[real] = a
            if name in ys and (ctx.record_all or _hooks.cache_wants(ctx.cache_spec, real)):
                cache[real] = ys[name][j]
    ctx.merge(cache, axes)
    return out


# -- parameter layouts ------------------------------------------------------------------------


def _split(variables):
    if isinstance(variables, Mapping) and "params" in variables:
        rest = {k: v for k, v in variables.items() if k != "params"}
        return dict(variables["params"]), lambda p: {"params": p, **rest}
    return dict(variables), lambda p: p


def stack_layers(variables, stack: str = "blocks"):
    """Unrolled params (`blocks_0`, `blocks_1`, ...) -> the scanned layout (`blocks`, stacked).

    Takes flax variables `{'params': ...}` or the bare params dict and returns the same
    kind; every leaf of `blocks_{l}` becomes row `l` of the leaf under `blocks`.
    """
    p, wrap = _split(variables)
    pat = re.compile(rf"^{re.escape(stack)}_(\d+)$")
    idx = sorted(int(m.group(1)) for k in p if (m := pat.match(k)))
    if not idx:
        raise ValueError(f"stack_layers: no '{stack}_0', '{stack}_1', ... in params {sorted(p)}")
    if idx != list(range(len(idx))):
        raise ValueError(f"stack_layers: layers {idx} are not 0..{len(idx) - 1}")
    if stack in p:
        raise ValueError(f"stack_layers: params already have a stacked {stack!r}")
    layers = [p.pop(f"{stack}_{i}") for i in idx]
    p[stack] = jax.tree.map(lambda *xs: jnp.stack(xs), *layers)
    return wrap(p)


def unstack_layers(variables, stack: str = "blocks"):
    """The scanned layout (`blocks`, stacked) -> unrolled params (`blocks_0`, `blocks_1`, ...)."""
    p, wrap = _split(variables)
    if stack not in p:
        raise ValueError(f"unstack_layers: no stacked {stack!r} in params {sorted(p)}")
    stacked = p.pop(stack)
    n = {int(np.shape(x)[0]) for x in jax.tree.leaves(stacked)}
    if len(n) != 1:
        raise ValueError(f"unstack_layers: leaves of {stack!r} disagree on the layer axis: {n}")
    for i in range(n.pop()):
        p[f"{stack}_{i}"] = jax.tree.map(lambda x, i=i: x[i], stacked)
    return wrap(p)


def unrolled(model, params):
    """`(model, params)` as an unrolled model: `scan_layers` off, params unstacked.

    For analyses that read per-layer params (`p["blocks_3"]["attn"]`, `mj.edit`, the weight
    and attribution analyses): the same weights, the same sites, the same numbers. A model
    without `scan_layers` comes back unchanged.
    """
    cfg = getattr(model, "cfg", None)
    if cfg is None or not getattr(cfg, "scan_layers", False):
        return model, params
    return model.clone(cfg=cfg.replace(scan_layers=False)), unstack_layers(params)
