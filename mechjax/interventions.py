"""Interventions as data: patch, clamp, ablate, steer, and user functions.

An :class:`Intervention` is a pytree. Its *structure* -- the site name or
wildcard, the operation, static head/position/neuron indices, a user function --
is static (part of the treedef, so part of the jit cache key). Its *values* --
patch arrays, masks, scales, steering vectors, mask-valued selections -- are
leaves. Hence one compilation serves every value, and ``jax.vmap`` over a
leading axis of values runs a whole sweep as one program.

Selections (``heads=``, ``positions=``, ``neurons=``) take either

* static indices: an int, a list/tuple/range of ints, or a numpy integer array;
* a mask array (bool or float, numpy or jax), which is a leaf: a sweep over
  heads is then a ``vmap`` over masks instead of one compile per head.
  ``heads``: ``[head]``; ``positions``: ``[pos]`` or ``[batch, pos]``;
  ``neurons``: ``[last axis]``. Bool masks replace exactly; float masks blend
  ``(1 - m) x + m new`` (differentiable in ``m``; finite where ``x`` is ``-inf``).

``positions`` index the query axis for attention patterns/scores.

Each operation is one small function `new = op(iv, x)` registered with
:func:`register_op`; the selection, the blend and the `when` gate are shared. Two
intervention kinds are resolved inside the traced forward of `mj.run`, before the site
ops run: :func:`from_batch` (interventions built from the batch, e.g. a pattern that
depends on where the answer is) and :func:`two_pass` (interventions built from the cache
of a first "probe" forward pass of the same parameters; gradients flow through both).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mechjax import hooks as _hooks
from mechjax.models.axes import HEAD_AXES as _HEAD_AXES
from mechjax.models.axes import POS_AXES as _POS_AXES

# op name -> fn(iv, x) giving the replacement value (broadcastable to x) at the selection.
OPS: dict[str, Callable] = {}


def register_op(name: str):
    """Decorator registering `fn(iv, x) -> new` as intervention op `name`.

    `new` replaces `x` where the intervention's selection says (bool masks replace, float
    masks blend); `iv.value`, `iv.scale`, `iv.method`, `iv.fn` carry the op's data.
    """

    def deco(fn):
        OPS[name] = fn
        return fn

    return deco


@register_op("patch")
def _op_patch(iv, x):  # mj.patch and mj.clamp
    return jnp.asarray(iv.value)


OPS["clamp"] = _op_patch  # the same op; `clamp` reads better inside training steps


@register_op("ablate")
def _op_ablate(iv, x):
    if iv.method == "zero":
        return jnp.zeros((), x.dtype)
    if iv.value is not None:
        return jnp.asarray(iv.value)
    return jnp.mean(x.astype(jnp.float32), axis=0, keepdims=True)  # this forward's batch mean


@register_op("steer")
def _op_steer(iv, x):
    delta = jnp.asarray(iv.scale, jnp.float32) * jnp.asarray(iv.value, jnp.float32)
    return x.astype(jnp.float32) + delta


@register_op("fn")
def _op_fn(iv, x):
    return iv.fn(x) if iv.value is None else iv.fn(x, iv.value)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Intervention:
    """One operation at one site (or every site a wildcard matches)."""

    site: str = dataclasses.field(metadata=dict(static=True))
    op: str = dataclasses.field(metadata=dict(static=True))
    value: Any = None
    mask: Any = None
    scale: Any = None
    head_mask: Any = None
    pos_mask: Any = None
    neuron_mask: Any = None
    active: Any = None  # scalar bool leaf gating the whole op (schedules); None = always on
    head_idx: tuple | None = dataclasses.field(default=None, metadata=dict(static=True))
    pos_idx: tuple | None = dataclasses.field(default=None, metadata=dict(static=True))
    neuron_idx: tuple | None = dataclasses.field(default=None, metadata=dict(static=True))
    method: str | None = dataclasses.field(default=None, metadata=dict(static=True))
    fn: Callable | None = dataclasses.field(default=None, metadata=dict(static=True))

    # -- application (inside the traced forward) -------------------------------------------

    def selection(self, shape: tuple[int, ...], axes: tuple[str, ...]):
        """Array broadcastable to `shape` saying where to act, or None for everywhere."""
        sel = None
        for idx, mask, kind in (
            (self.head_idx, self.head_mask, "head"),
            (self.pos_idx, self.pos_mask, "pos"),
            (self.neuron_idx, self.neuron_mask, "neuron"),
        ):
            if idx is None and mask is None:
                continue
            axis = _selection_axis(kind, axes, self.site)
            if idx is not None:
                m = np.zeros(shape[axis], bool)
                m[list(idx)] = True
                m = m.reshape([shape[axis] if i == axis else 1 for i in range(len(shape))])
            else:
                m = jnp.asarray(mask)
                if m.dtype not in (jnp.bool_,) and not jnp.issubdtype(m.dtype, jnp.floating):
                    m = m.astype(bool)
                if kind == "pos" and m.ndim == 2:  # [batch, pos]
                    m = m.reshape(
                        [
                            m.shape[0] if i == 0 else m.shape[1] if i == axis else 1
                            for i in range(len(shape))
                        ]
                    )
                else:
                    m = m.reshape([m.shape[-1] if i == axis else 1 for i in range(len(shape))])
            sel = m if sel is None else _and(sel, m)
        if self.mask is not None:
            m = jnp.asarray(self.mask)
            if m.dtype != jnp.bool_ and not jnp.issubdtype(m.dtype, jnp.floating):
                m = m.astype(bool)
            sel = m if sel is None else _and(sel, m)
        return sel

    def when(self, active) -> Intervention:
        """This intervention, applied only where the scalar `active` is true.

        `active` is a leaf (e.g. `(step >= start) & (step < end)` inside a jitted
        training step), so moving a schedule window never recompiles.
        """
        return dataclasses.replace(self, active=active)

    def apply(self, x, name: str, axes: tuple[str, ...] | None = None):
        if self.active is None:
            return self._apply(x, name, axes)
        return jnp.where(jnp.asarray(self.active, bool), self._apply(x, name, axes), x)

    def _apply(self, x, name: str, axes):
        sel = self.selection(x.shape, axes)
        new = jnp.broadcast_to(OPS[self.op](self, x), x.shape).astype(x.dtype)
        if sel is None:
            return new
        if sel.dtype == jnp.bool_:
            return jnp.where(sel, new, x)
        # float masks blend (1 - m) x + m new, exactly x or new where m is 0 or 1; written so
        # that -inf entries (masked attention scores) stay -inf instead of turning NaN.
        m = sel.astype(x.dtype)
        mixed = (1 - m) * x + m * new
        return jnp.where(m == 0, x, jnp.where(m == 1, new, mixed))

    # -- host-side validation -----------------------------------------------------------------

    def validate(self, site_shapes: dict[str, tuple[int, ...]], site_axes=None) -> None:
        """Raises ValueError naming the problem if this cannot apply to the model's sites.

        `site_axes`: site name -> declared axes (from `mj.site_axes`); None = unknown.
        """
        site_axes = site_axes or {}
        names = [n for n in site_shapes if _hooks.matches(self.site, n)]
        if not names:
            near = _hooks.closest(self.site, site_shapes)
            hint = f" Closest valid sites: {', '.join(near)}." if near else ""
            raise ValueError(
                f"{self.op}: site {self.site!r} matches no site of this model.{hint} "
                f"(Wildcards like 'blocks.*.attn.hook_z' are allowed; list them with mj.site_names(model).)"
            )
        for name in names:
            shape = tuple(site_shapes[name])
            axes = site_axes.get(name)
            what = f"{self.op} at {name!r} (shape {shape}, axes {axes})"
            for idx, mask, kind in (
                (self.head_idx, self.head_mask, "head"),
                (self.pos_idx, self.pos_mask, "pos"),
                (self.neuron_idx, self.neuron_mask, "neuron"),
            ):
                if idx is None and mask is None:
                    continue
                try:
                    axis = _selection_axis(kind, axes, name)
                except ValueError as e:
                    raise ValueError(f"{what}: {e}") from None
                size = shape[axis]
                if idx is not None:
                    bad = [i for i in idx if not -size <= i < size]
                    if bad:
                        raise ValueError(
                            f"{what}: {kind} index {bad} out of range; valid {kind}s are 0..{size - 1}."
                        )
                else:
                    mshape = tuple(np.shape(mask))
                    ok = mshape == (size,) or (kind == "pos" and mshape == (shape[0], size))
                    if not ok:
                        valid = f"({size},)" + (
                            f" or ({shape[0]}, {size})" if kind == "pos" else ""
                        )
                        raise ValueError(
                            f"{what}: {kind} mask has shape {mshape}, expected {valid}."
                        )
            for label, arr in (("value", self.value), ("mask", self.mask)):
                if arr is None or self.op == "fn":
                    continue
                vshape = tuple(np.shape(arr))
                if not _broadcasts_to(vshape, shape):
                    raise ValueError(
                        f"{what}: {label} has shape {vshape}, which does not broadcast to the site "
                        f"shape {shape}. Expected {shape} or a trailing part of it, e.g. {shape[1:]}."
                    )


def _and(a, b):
    if a.dtype == jnp.bool_ and b.dtype == jnp.bool_:
        return jnp.logical_and(a, b)
    return jnp.asarray(a, jnp.float32) * jnp.asarray(b, jnp.float32)


def _broadcasts_to(vshape, shape) -> bool:
    try:
        return np.broadcast_shapes(vshape, shape) == tuple(shape)
    except ValueError:
        return False


def _selection_axis(kind: str, axes: tuple[str, ...] | None, site: str) -> int:
    if axes is None:
        raise ValueError(
            f"site {site!r} declares no axes, so {kind}= selections cannot address it; "
            f"declare them where the site is defined: hooks(name, x, axes)."
        )
    if kind == "neuron":
        if axes[-1] in ("one", "k_pos"):
            raise ValueError(f"site {site!r} has no neuron axis (its axes are {axes}).")
        return len(axes) - 1
    wanted = _HEAD_AXES if kind == "head" else _POS_AXES
    for i, a in enumerate(axes):
        if a in wanted:
            return i
    raise ValueError(f"site {site!r} has no {kind} axis (its axes are {axes}).")


def _split_selection(sel, what: str):
    """Static indices -> (tuple, None); mask arrays -> (None, array)."""
    if sel is None:
        return None, None
    if isinstance(sel, (bool, np.bool_)):
        raise TypeError(f"{what}= takes indices or a mask array, not a bool")
    if isinstance(sel, (int, np.integer)):
        return (int(sel),), None
    if isinstance(sel, (list, tuple, range)):
        if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in sel):
            raise TypeError(f"{what}= as a sequence must hold ints, got {sel!r}")
        return tuple(int(i) for i in sel), None
    if isinstance(sel, np.ndarray) and np.issubdtype(sel.dtype, np.integer):
        return tuple(int(i) for i in sel.reshape(-1)), None
    if hasattr(sel, "shape") and hasattr(sel, "dtype"):
        return None, sel
    raise TypeError(
        f"{what}= must be indices (int, list, range) or a mask array, got {type(sel).__name__}"
    )


def _build(site, op, *, heads=None, positions=None, neurons=None, **fields) -> Intervention:
    if not isinstance(site, str):
        raise TypeError(f"site must be a site name or wildcard string, got {site!r}")
    hi, hm = _split_selection(heads, "heads")
    pi, pm = _split_selection(positions, "positions")
    ni, nm = _split_selection(neurons, "neurons")
    return Intervention(
        site=site,
        op=op,
        head_idx=hi,
        head_mask=hm,
        pos_idx=pi,
        pos_mask=pm,
        neuron_idx=ni,
        neuron_mask=nm,
        **fields,
    )


def patch(site: str, value, heads=None, positions=None, neurons=None) -> Intervention:
    """Replaces the activation at `site` with `value` where the selection says.

    `value` has the site's shape (or broadcasts to it), e.g. the clean run's cached
    activation; only the selected heads/positions/neurons are taken from it.
    """
    return _build(site, "patch", value=value, heads=heads, positions=positions, neurons=neurons)


def clamp(site: str, value, heads=None, positions=None, mask=None, neurons=None) -> Intervention:
    """Holds `site` at `value` where `mask` (elementwise, broadcastable) and the selection say.

    Meant for use during training: the rest of the graph stays differentiable.
    """
    return _build(
        site, "clamp", value=value, mask=mask, heads=heads, positions=positions, neurons=neurons
    )


def ablate(
    site: str, heads=None, positions=None, method: str = "zero", mean=None, neurons=None
) -> Intervention:
    """Zero- or mean-ablates the selection at `site`.

    method="mean" uses `mean` if given (e.g. a dataset mean of the site, broadcastable
    to its shape), else the mean over the batch axis of the current forward pass.
    """
    if method not in ("zero", "mean"):
        raise ValueError(f"ablate: method must be 'zero' or 'mean', got {method!r}")
    if method == "zero" and mean is not None:
        raise ValueError("ablate: mean= is only used with method='mean'")
    return _build(
        site, "ablate", value=mean, method=method, heads=heads, positions=positions, neurons=neurons
    )


def steer(site: str, vector, scale=1.0, positions=None, heads=None) -> Intervention:
    """Adds `scale * vector` to `site` at the selected positions (all if None)."""
    return _build(site, "steer", value=vector, scale=scale, positions=positions, heads=heads)


def hook(
    site: str, fn: Callable, value=None, heads=None, positions=None, neurons=None
) -> Intervention:
    """Escape hatch: replaces the selection at `site` with `fn(x)` or `fn(x, value)`.

    `fn` must be a pure JAX function (it is static: pass a stable function object, not a
    fresh lambda per call, to avoid recompiles); `value` is a pytree of leaves.
    """
    if not callable(fn):
        raise TypeError(f"hook: fn must be callable, got {fn!r}")
    return _build(site, "fn", fn=fn, value=value, heads=heads, positions=positions, neurons=neurons)


def validate_all(interventions, site_shapes, site_axes=None) -> None:
    for iv in interventions:
        if not isinstance(iv, Intervention):
            raise TypeError(
                "interventions must be built with mj.patch/clamp/ablate/steer/hook/from_batch/"
                f"two_pass, got {type(iv).__name__}"
            )
        if iv.op not in OPS:
            raise ValueError(
                f"intervention at {iv.site!r}: unknown op {iv.op!r}; registered ops are "
                f"{sorted(OPS)} (add one with mj.register_op)."
            )
        iv.validate(site_shapes, site_axes)


# -- interventions resolved inside the forward pass --------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FromBatch:
    """Interventions built from the batch: `make(batch, value) -> sequence of interventions`."""

    make: Callable = dataclasses.field(metadata=dict(static=True))
    value: Any = None


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TwoPass:
    """Interventions built from a probe pass: `make(cache, batch, value) -> interventions`."""

    sites: tuple = dataclasses.field(metadata=dict(static=True))
    make: Callable = dataclasses.field(metadata=dict(static=True))
    probe: tuple = ()
    value: Any = None


def from_batch(make: Callable, value=None) -> FromBatch:
    """Interventions whose values depend on the batch, resolved inside `mj.run`.

    `make(batch, value)` returns a sequence of interventions; `batch` is what `mj.run` got
    as `batch=` (default: its `inputs`), e.g. a training batch dict holding the answer's
    position. `make` is static (pass a stable function, e.g. a module-level one or a
    `functools.partial`); `value` is a pytree of leaves (gates, head masks), so changing it
    never recompiles. Expands in place: order relative to other interventions is kept.
    """
    if not callable(make):
        raise TypeError(f"from_batch: make must be callable, got {make!r}")
    return FromBatch(make, value)


def two_pass(sites, make: Callable, probe=(), value=None) -> TwoPass:
    """Interventions computed from a first ("probe") forward pass of the same parameters.

    Inside `mj.run`, the probe pass runs on the same inputs with the `probe` interventions
    and caches `sites` (names); then `make(cache, batch, value)` returns the interventions
    applied in the real pass, in this entry's place. Gradients flow through both passes
    (as in Singh et al. 2024's pattern- and value-preserving ablations).
    """
    if isinstance(sites, str):
        sites = (sites,)
    sites = tuple(sites)
    if not sites or not all(isinstance(s, str) for s in sites):
        raise TypeError(f"two_pass: sites must be site names, got {sites!r}")
    if not callable(make):
        raise TypeError(f"two_pass: make must be callable, got {make!r}")
    return TwoPass(sites, make, tuple(probe), value)


def needs_resolution(interventions) -> bool:
    return any(isinstance(iv, (FromBatch, TwoPass)) for iv in interventions)


def resolve(interventions, batch, probe_fn) -> tuple:
    """Expands `FromBatch` / `TwoPass` entries in place (traced), recursively.

    `probe_fn(interventions, sites) -> cache` runs the probe forward pass.
    """
    out = []
    for iv in interventions:
        if isinstance(iv, FromBatch):
            out += resolve(tuple(iv.make(batch, iv.value)), batch, probe_fn)
        elif isinstance(iv, TwoPass):
            cache = probe_fn(resolve(iv.probe, batch, probe_fn), iv.sites)
            out += resolve(tuple(iv.make(cache, batch, iv.value)), batch, probe_fn)
        else:
            out.append(iv)
    return tuple(out)
