"""`mj.run`: the forward pass as a pure function of (params, inputs, interventions).

Works on any model implementing the protocol of `mechjax.models` (decoder LMs, ViTs,
encoder-decoders, models with head modules): everything model-specific goes through
`model.check_inputs`, `model.example_inputs` and the axes each site declares.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mechjax import hooks as _hooks
from mechjax.interventions import needs_resolution, resolve, validate_all


def _variables(params):
    """Accepts flax variables ({'params': ...}) or the bare params dict."""
    return params if isinstance(params, dict) and "params" in params else {"params": params}


def resolve_interventions(model, params, inputs, interventions, attention_mask, batch=None):
    """Expands `mj.from_batch` / `mj.two_pass` entries (traced; probe passes run here)."""
    interventions = tuple(interventions)
    if not needs_resolution(interventions):
        return interventions

    def probe(ivs, sites):
        ctx = _hooks.HookContext(ivs, tuple(sites))
        model.apply(_variables(params), inputs, ctx, attention_mask)
        return ctx.cache

    return resolve(interventions, inputs if batch is None else batch, probe)


def _forward(model, cache_spec, record_all, params, inputs, interventions, attention_mask, batch):
    interventions = resolve_interventions(
        model, params, inputs, interventions, attention_mask, batch
    )
    ctx = _hooks.HookContext(interventions, cache_spec, record_all=record_all)
    out = model.apply(_variables(params), inputs, ctx, attention_mask)
    return out, ctx.cache


_forward_jit = jax.jit(_forward, static_argnums=(0, 1, 2))


def _shape_key(tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((tuple(np.shape(x)), str(getattr(x, "dtype", type(x)))) for x in leaves)


def _structs(key):
    treedef, specs = key
    return jax.tree_util.tree_unflatten(treedef, [jax.ShapeDtypeStruct(s, d) for s, d in specs])


@functools.lru_cache(maxsize=256)
def _site_info_cached(model, inputs_key, mask_key):
    inputs, mask = _structs(inputs_key), _structs(mask_key)
    params = jax.eval_shape(lambda i: model.init(jax.random.key(0), i), inputs)
    axes = {}

    def fwd(p, i, m):
        ctx = _hooks.HookContext((), None, record_all=True)
        model.apply(_variables(p), i, ctx, m)
        axes.update(ctx.axes)
        return ctx.cache

    cache = jax.eval_shape(fwd, params, inputs, mask)
    # `axes` was filled in call order (eval_shape returns the cache dict with sorted keys)
    order = [k for k in axes if k in cache] + [k for k in cache if k not in axes]
    return tuple((k, tuple(cache[k].shape), axes.get(k)) for k in order)


def site_info(model, inputs, attention_mask=None) -> dict[str, tuple[tuple[int, ...], tuple]]:
    """Every site of `model` on inputs of this shape -> (shape, declared axes), forward order."""
    info = _site_info_cached(model, _shape_key(inputs), _shape_key(attention_mask))
    return {k: (s, a) for k, s, a in info}


def site_shapes(model, inputs, attention_mask=None) -> dict[str, tuple[int, ...]]:
    """Every site of `model` on inputs of this shape -> its shape, in forward order.

    Computed abstractly (no FLOPs) and memoised per input shape.
    """
    return {k: s for k, (s, _) in site_info(model, inputs, attention_mask).items()}


def site_axes(model, name: str | None = None, inputs=None):
    """The axes a site declares, e.g. `('batch', 'pos', 'head', 'd_head')`.

    With `name=None`, a dict of every site -> axes. Uses `model.example_inputs()` when
    `inputs` is None (axes do not depend on the input shape).
    """
    info = site_info(model, example_inputs(model) if inputs is None else inputs)
    if name is None:
        return {k: a for k, (_, a) in info.items()}
    if name not in info:
        near = _hooks.closest(name, info)
        raise KeyError(f"{name!r} is not a site of this model; closest: {near}")
    return info[name][1]


def site_names(model, inputs=None) -> list[str]:
    """All site names of `model` (on `model.example_inputs()` if `inputs` is None)."""
    return list(site_shapes(model, example_inputs(model) if inputs is None else inputs))


def example_inputs(model):
    if hasattr(model, "example_inputs"):
        return model.example_inputs()
    raise TypeError(
        f"{type(model).__name__} has no example_inputs(); pass inputs explicitly (or implement "
        f"the model protocol, see mechjax.models)."
    )


def document_mask(segment_ids):
    """`[batch, pos, pos]` attention mask letting each position see only its own segment.

    `segment_ids` `[batch, pos]` labels the document each token belongs to (documents packed
    into one row); pass the result as `attention_mask` (the causal mask still applies).
    """
    s = jnp.asarray(segment_ids)
    return s[:, :, None] == s[:, None, :]


def as_arrays(tree):
    """Python lists / tuples of numbers (anywhere in a dict of inputs) -> numpy arrays."""
    if tree is None:
        return None
    if isinstance(tree, dict):
        return {k: as_arrays(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        try:
            arr = np.asarray(tree)
        except ValueError as e:
            raise ValueError(f"inputs given as nested lists must be rectangular: {e}") from None
        if arr.dtype == object:
            raise ValueError("inputs given as nested lists must be rectangular (equal lengths)")
        # JAX's default widths (what jnp.asarray would give without x64)
        return arr.astype(
            {"i": np.int32, "u": np.int32, "f": np.float32}.get(arr.dtype.kind, arr.dtype)
        )
    return tree


def check_inputs(model, inputs, attention_mask=None) -> None:
    """Host-side check through the model's protocol (no-op for modules without one)."""
    if hasattr(model, "check_inputs"):
        model.check_inputs(inputs, attention_mask)


def prepare(
    model, inputs, cache=None, interventions=(), attention_mask=None, params=None, batch=None
):
    """Host-side part of `mj.run`: normalises and validates everything before tracing.

    Returns `(inputs, attention_mask, cache_names, interventions)` with the cache spec
    resolved to a tuple of exact site names (so a predicate never recompiles).
    """
    inputs, attention_mask = as_arrays(inputs), as_arrays(attention_mask)
    interventions = tuple(interventions)
    check_inputs(model, inputs, attention_mask)
    info = site_info(model, inputs, attention_mask)
    shapes = {k: s for k, (s, _) in info.items()}
    axes = {k: a for k, (_, a) in info.items()}
    names = _hooks.resolve_cache_spec(cache, shapes)
    plain = interventions
    if needs_resolution(interventions):
        if params is None:
            raise ValueError("interventions from mj.from_batch / mj.two_pass need params")
        plain = jax.eval_shape(
            lambda p, i, m, b, ivs: resolve_interventions(model, p, i, ivs, m, b),
            params,
            inputs,
            attention_mask,
            batch,
            interventions,
        )
    validate_all(plain, shapes, axes)
    return inputs, attention_mask, names, interventions


def run(model, params, inputs, *, cache=None, interventions=(), attention_mask=None, batch=None):
    """Runs `model` with interventions applied and the requested sites cached.

    Args:
      model: any model implementing the protocol of `mechjax.models` (`mj.Transformer`,
        `mj.ViT`, `mj.EncoderDecoder`, ...).
      params: flax variables `{'params': ...}` (or the bare params dict).
      inputs: what the model takes: int tokens `[batch, pos]` (a nested Python list works),
        float vectors `[batch, pos, d_input]` or the mixed dict for `mj.Transformer`; images
        `[batch, height, width, channels]` for `mj.ViT`; `{"encoder": ..., "decoder": ...}`
        for `mj.EncoderDecoder`.
      cache: site names, wildcards (`'blocks.*.attn.hook_z'`), a predicate `name -> bool`,
        or True for every site. Only these sites are kept. Resolved to exact names on the
        host, so a fresh predicate per call does not recompile.
      interventions: sequence of `mj.patch/clamp/ablate/steer/hook` specs, applied in order,
        and `mj.from_batch` / `mj.two_pass` entries, expanded in place inside the forward.
      attention_mask: optional `[batch, pos]` (1 = real token) for padded batches, or
        `[batch, q_pos, k_pos]` (1 = query may attend to key, on top of the causal mask),
        e.g. a block-diagonal mask from `document_mask` for several documents packed into
        one row. Encoder-decoders take a dict per stream.
      batch: what `mj.from_batch` / `mj.two_pass` builders receive (default: `inputs`), e.g.
        a training batch dict with labels or answer positions.

    Returns:
      `(output, cache)`: the model's output (LM logits `[batch, pos, d_vocab]`, class logits
      `[batch, class]`, ...); cache maps site name -> array in TransformerLens shapes (empty
      dict if nothing was requested).

    Validates everything on the host (unknown sites, shapes, head ranges, token ids) before
    any compilation. Jitted; changing intervention *values* never recompiles.
    """
    inputs, attention_mask, names, interventions = prepare(
        model, inputs, cache, interventions, attention_mask, params, batch
    )
    return _forward_jit(model, names, False, params, inputs, interventions, attention_mask, batch)


def init(model, key, inputs=None):
    """Initial flax variables `{'params': ...}` for `model`."""
    if inputs is None:
        inputs = example_inputs(model)
    return model.init(key, as_arrays(inputs))
