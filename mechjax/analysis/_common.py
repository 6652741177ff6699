"""Shared plumbing for the analyses: partial forwards, static wrappers, host-side checks."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mechjax import hooks as _hooks
from mechjax.models.protocol import is_model
from mechjax.run import _variables, as_arrays, check_inputs, site_info, site_shapes

__all__ = [
    "Static",
    "as_arrays",
    "check_inputs",
    "forward_from",
    "full_forward",
    "resume",
    "site_info",
    "site_shapes",
    "split_metric",
]


class Static:
    """Hashes by identity, so a user function (metric) can be a static jit argument."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return id(self.value)

    def __eq__(self, other):
        return isinstance(other, Static) and other.value is self.value


def variables(params):
    return _variables(params)


def forward_from(
    model,
    params,
    layer,
    resid,
    interventions=(),
    *,
    cache=None,
    attention_mask=None,
    positions=None,
):
    """Traced partial forward: blocks `layer..` + unembed on `resid` (resid_pre of `layer`).

    Returns `(logits, cache)`; `positions` restricts the unembed to those positions.
    """
    ctx = _hooks.HookContext(interventions, _hooks.normalize_cache_spec(cache))
    logits = model.apply(
        variables(params), resid, ctx, attention_mask, layer, positions, method="forward_from"
    )
    return logits, ctx.cache


def resume(
    model,
    params,
    inputs,
    stack,
    layer,
    state,
    interventions=(),
    *,
    cache=None,
    attention_mask=None,
    positions=None,
):
    """Traced partial forward through the protocol: everything from `stack` layer `layer` on.

    `state` holds the values of `model.resume_sites(stack, layer)`. Returns `(output, cache)`.
    """
    ctx = _hooks.HookContext(interventions, _hooks.normalize_cache_spec(cache))
    out = model.apply(
        variables(params),
        inputs,
        state,
        ctx,
        attention_mask,
        stack=stack,
        layer=layer,
        positions=positions,
        method="resume",
    )
    return out, ctx.cache


def full_forward(model, params, inputs, interventions=(), *, cache=None, attention_mask=None):
    """Traced full forward with the given interventions; `(logits, cache)`."""
    ctx = _hooks.HookContext(interventions, _hooks.normalize_cache_spec(cache))
    logits = model.apply(variables(params), inputs, ctx, attention_mask)
    return logits, ctx.cache


def split_metric(metric):
    """(fn on position-restricted logits, positions or None) for `metric`.

    Metrics built with `mechjax.analysis.metrics` carry the positions they read; the
    sweeps then unembed only there (exactly the same value, far fewer FLOPs).
    """
    positions = getattr(metric, "positions", None)
    if positions is None:
        return metric, None
    return metric.fn, tuple(int(p) for p in positions)


def n_pos_of(inputs) -> int:
    if isinstance(inputs, dict):
        return int(np.shape(inputs["tokens"])[1])
    return int(np.shape(inputs)[1])


def check_model(model, what: str):
    """The model's config, after checking it implements the protocol (`mechjax.models`)."""
    if not is_model(model):
        raise TypeError(
            f"{what}: {type(model).__name__} does not implement the mechjax model protocol "
            f"(check_inputs, example_inputs, layer_stacks, resume_sites, resume; see "
            f"mechjax.models)."
        )
    return getattr(model, "cfg", None)


def stack_and_layer(model, site: str, what: str):
    """(Stack, layer) of a layer site like `decoder.blocks.2.cross_attn.hook_z`."""
    found = model.stack_of(site)
    if found is None:
        raise ValueError(
            f"{what}: {site!r} is not inside a layer stack of this model "
            f"(stacks: {[s.prefix for s in model.layer_stacks()]})."
        )
    return found


def check_cache(cache, names, what: str, shapes=None):
    """Raises a ValueError naming missing/mis-shaped sites of `cache`."""
    if not isinstance(cache, dict):
        raise TypeError(
            f"{what}: clean_cache must be the dict returned by mj.run, got {type(cache).__name__}"
        )
    missing = [n for n in names if n not in cache]
    if missing:
        spec = _common_wildcard(missing)
        raise ValueError(
            f"{what}: clean_cache lacks {missing[:4]}{' ...' if len(missing) > 4 else ''}; "
            f"run the clean tokens with mj.run(model, params, clean_tokens, cache={spec!r})."
        )
    if shapes is not None:
        for n in names:
            if tuple(np.shape(cache[n])) != tuple(shapes[n]):
                raise ValueError(
                    f"{what}: clean_cache[{n!r}] has shape {tuple(np.shape(cache[n]))}, but the "
                    f"corrupted run has {tuple(shapes[n])} there; clean and corrupted inputs must "
                    f"have the same [batch, pos]."
                )


def _common_wildcard(names):
    import re

    pats = sorted({re.sub(r"blocks\.\d+\.", "blocks.*.", n) for n in names})
    return pats[0] if len(pats) == 1 else tuple(pats)


def as_f32(x):
    return jnp.asarray(x, jnp.float32)
