"""`mj.run`: the forward pass as a pure function of (params, inputs, interventions)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mechjax import hooks as _hooks
from mechjax.interventions import validate_all


def _variables(params):
    """Accepts flax variables ({'params': ...}) or the bare params dict."""
    return params if isinstance(params, dict) and "params" in params else {"params": params}


def _forward(model, cache_spec, record_all, params, inputs, interventions, attention_mask):
    ctx = _hooks.HookContext(interventions, cache_spec, record_all=record_all)
    out = model.apply(_variables(params), inputs, ctx, attention_mask)
    return out, ctx.cache


_forward_jit = jax.jit(_forward, static_argnums=(0, 1, 2))


def _shape_key(tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((tuple(np.shape(x)), str(getattr(x, "dtype", type(x)))) for x in leaves)


@functools.lru_cache(maxsize=256)
def _site_shapes_cached(model, inputs_key, mask_key):
    treedef, specs = inputs_key
    structs = [jax.ShapeDtypeStruct(s, d) for s, d in specs]
    inputs = jax.tree_util.tree_unflatten(treedef, structs)
    mask = None if mask_key is None else jax.ShapeDtypeStruct(*mask_key)
    params = jax.eval_shape(lambda i: model.init(jax.random.key(0), i), inputs)
    _, cache = jax.eval_shape(
        lambda p, i, m: _forward(model, None, True, p, i, (), m), params, inputs, mask
    )
    return {k: tuple(v.shape) for k, v in cache.items()}


def site_shapes(model, inputs, attention_mask=None) -> dict[str, tuple[int, ...]]:
    """Every site of `model` on inputs of this shape -> its shape, in forward order.

    Computed abstractly (no FLOPs) and memoised per input shape.
    """
    mask_key = (
        None
        if attention_mask is None
        else (tuple(np.shape(attention_mask)), str(attention_mask.dtype))
    )
    return dict(_site_shapes_cached(model, _shape_key(inputs), mask_key))


def site_names(model, inputs=None) -> list[str]:
    """All site names of `model` (a 1 x 2 token input is used if `inputs` is None)."""
    if inputs is None:
        inputs = _dummy_inputs(model.cfg)
    return list(site_shapes(model, inputs))


def _dummy_inputs(cfg):
    if cfg.d_vocab > 0:
        return jnp.zeros((1, 2), jnp.int32)
    return jnp.zeros((1, 2, cfg.d_input), jnp.float32)


def _check_mask(inputs, attention_mask):
    if attention_mask is None:
        return
    seq = np.shape(inputs["tokens"] if isinstance(inputs, dict) else inputs)[:2]
    got = tuple(np.shape(attention_mask))
    valid = ((seq[0], seq[1]), (seq[0], seq[1], seq[1]))
    if got not in valid:
        raise ValueError(
            f"attention_mask has shape {got}; for inputs [batch, pos] = {list(seq)} it must be "
            f"[batch, pos] {valid[0]} (padding) or [batch, q_pos, k_pos] {valid[1]}."
        )


def document_mask(segment_ids):
    """`[batch, pos, pos]` attention mask letting each position see only its own segment.

    `segment_ids` `[batch, pos]` labels the document each token belongs to (documents packed
    into one row); pass the result as `attention_mask` (the causal mask still applies).
    """
    s = jnp.asarray(segment_ids)
    return s[:, :, None] == s[:, None, :]


def _check_inputs(model, inputs):
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        return
    if isinstance(inputs, dict):
        missing = {"tokens", "vectors", "is_vector"} - set(inputs)
        if missing:
            raise ValueError(
                f"mixed inputs need keys tokens, vectors, is_vector; missing {sorted(missing)}"
            )
        tokens, is_vec, seq = inputs["tokens"], inputs["is_vector"], np.shape(inputs["tokens"])
    else:
        arr = inputs
        seq = np.shape(arr)
        is_int = jnp.issubdtype(jnp.result_type(arr), jnp.integer)
        tokens, is_vec = (arr, None) if is_int else (None, None)
        if not is_int:
            if not cfg.d_input:
                raise ValueError(
                    f"got float inputs of shape {seq} but the model has no vector embedding "
                    f"(d_input is None); pass int token ids [batch, pos] or set d_input."
                )
            if len(seq) != 3 or seq[-1] != cfg.d_input:
                raise ValueError(f"vector inputs must be [batch, pos, {cfg.d_input}], got {seq}")
    if len(seq) < 2:
        raise ValueError(f"inputs must have a batch axis: expected [batch, pos], got shape {seq}")
    if cfg.positional_embedding_type == "standard" and seq[1] > cfg.n_ctx:
        raise ValueError(f"sequence length {seq[1]} exceeds the model's n_ctx={cfg.n_ctx}")
    if tokens is not None and not isinstance(tokens, jax.core.Tracer):
        t = np.asarray(tokens)
        if is_vec is not None and not isinstance(is_vec, jax.core.Tracer):
            t = np.where(np.asarray(is_vec), 0, t)
        if t.size and (t.min() < 0 or t.max() >= cfg.d_vocab):
            bad = int(t.max()) if t.max() >= cfg.d_vocab else int(t.min())
            raise ValueError(
                f"token id {bad} is outside the vocabulary [0, {cfg.d_vocab}); a JAX gather would "
                f"silently clamp it. Check the tokenizer matches the model."
            )


def run(model, params, inputs, *, cache=None, interventions=(), attention_mask=None):
    """Runs `model` with interventions applied and the requested sites cached.

    Args:
      model: a `mj.Transformer` (or any module whose `__call__(inputs, hooks, attention_mask)`
        calls its hooks).
      params: flax variables `{'params': ...}` (or the bare params dict).
      inputs: int tokens `[batch, pos]`, float vectors `[batch, pos, d_input]`, or the mixed dict.
      cache: site names, wildcards (`'blocks.*.attn.hook_z'`), a predicate `name -> bool`,
        or True for every site. Only these sites are kept.
      interventions: sequence of `mj.patch/clamp/ablate/steer/hook` specs, applied in order.
      attention_mask: optional `[batch, pos]` (1 = real token) for padded batches, or
        `[batch, q_pos, k_pos]` (1 = query may attend to key, on top of the causal mask),
        e.g. a block-diagonal mask from `document_mask` for several documents packed into
        one row.

    Returns:
      `(logits, cache)`: logits `[batch, pos, d_vocab]`; cache maps site name -> array in
      TransformerLens shapes (empty dict if nothing was requested).

    Validates everything on the host (unknown sites, shapes, head ranges, token ids) before
    any compilation. Jitted; changing intervention *values* never recompiles.
    """
    interventions = tuple(interventions)
    cache_spec = _hooks.normalize_cache_spec(cache)
    _check_inputs(model, inputs)
    _check_mask(inputs, attention_mask)
    shapes = site_shapes(model, inputs, attention_mask)
    if isinstance(cache_spec, tuple):
        for spec in cache_spec:
            if not any(_hooks.matches(spec, n) for n in shapes):
                near = _hooks.closest(spec, shapes)
                hint = f" Closest valid sites: {', '.join(near)}." if near else ""
                raise ValueError(f"cache: {spec!r} matches no site of this model.{hint}")
    validate_all(interventions, shapes)
    return _forward_jit(model, cache_spec, False, params, inputs, interventions, attention_mask)


def init(model, key, inputs=None):
    """Initial flax variables `{'params': ...}` for `model`."""
    if inputs is None:
        inputs = _dummy_inputs(model.cfg)
    return model.init(key, inputs)
