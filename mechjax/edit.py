"""Edits: params -> params. Head ablation, ThinkEdit projection, low-rank QK/OV circuits,
and TransformerLens-style weight processing (fold LayerNorm, centering, value-bias folding).

Every function is pure: it returns new flax variables `{"params": ...}` (or a bare params
dict, if that is what it was given) and never mutates its input. Head and layer indices are
checked on the host, before any array work, and errors name what was wrong and what is valid.

Layouts (TransformerLens names; see `mechjax.models.axes` for the axis vocabulary):
`W_Q[head, d_model, d_head]`, `W_K / W_V[kv_head, d_model, d_head]`,
`W_O[head, d_head, d_model]`, `W_in / W_gate[d_model, d_mlp]`, `W_out[d_mlp, d_model]`,
`W_E[d_vocab, d_model]`, `W_U[d_model, d_vocab]`. Under grouped-query attention query head
`h` reads key/value head `h // (n_heads // n_kv_heads)`.

    import mechjax as mj
    params2 = mj.edit.ablate_heads(params, {0: [1, 3]})
    params3 = mj.edit.project_out(params, v, heads=[(5, 2)])          # ThinkEdit
    model4, params4 = mj.edit.process_weights(model, params)           # TL fold_ln + centering
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ablate_heads",
    "center_unembed",
    "center_writing_weights",
    "fold_layer_norm",
    "fold_value_biases",
    "ov_circuit",
    "process_weights",
    "project_out",
    "qk_circuit",
    "truncate_ov",
    "truncate_qk",
    "untie_embeddings",
]

_BLOCK = re.compile(r"^blocks_(\d+)$")


# ----------------------------------------------------------------------------------------------
# Plumbing: copy-on-write params, host-side validation
# ----------------------------------------------------------------------------------------------


def _copy(tree):
    """New dict containers all the way down (arrays are immutable and shared)."""
    if isinstance(tree, Mapping):
        return {k: _copy(v) for k, v in tree.items()}
    return tree


def _unwrap(variables, fn: str):
    """(mutable copy of the params dict, function that re-wraps it like the input)."""
    if not isinstance(variables, Mapping):
        raise TypeError(
            f"{fn}: expected flax variables {{'params': {{...}}}} (as returned by mj.init), "
            f"got {type(variables).__name__}"
        )
    if "params" in variables:
        rest = {k: _copy(v) for k, v in variables.items() if k != "params"}
        params = _copy(variables["params"])
        return params, lambda p: {"params": p, **rest}
    if not any(_BLOCK.match(k) for k in variables):
        raise ValueError(
            f"{fn}: expected flax variables {{'params': {{...}}}} or a params dict with "
            f"'blocks_0', ...; got keys {sorted(variables)}"
        )
    return _copy(variables), lambda p: p


def _n_layers(p) -> int:
    return len([k for k in p if _BLOCK.match(k)])


def _attn(p, layer: int, fn: str):
    try:
        return p[f"blocks_{layer}"]["attn"]
    except KeyError:
        raise ValueError(f"{fn}: params have no 'blocks_{layer}/attn'") from None


def _n_heads(p, fn: str) -> tuple[int, int]:
    a = _attn(p, 0, fn)
    return a["W_O"].shape[0], a["W_K"].shape[0]


def _check_index(what: str, i, n: int, fn: str) -> int:
    if isinstance(i, bool) or not isinstance(i, int | np.integer):
        raise TypeError(f"{fn}: {what} must be an int, got {i!r}")
    if not 0 <= int(i) < n:
        raise ValueError(f"{fn}: {what} {int(i)} is out of range; valid: 0..{n - 1}")
    return int(i)


def _parse_heads(heads, p, fn: str) -> dict[int, list[int]]:
    """{layer: [head, ...]} or [(layer, head), ...] -> validated {layer: sorted unique heads}."""
    n_layers, (n_heads, _) = _n_layers(p), _n_heads(p, fn)
    if isinstance(heads, Mapping):
        pairs = []
        for layer, hs in heads.items():
            hs = [hs] if isinstance(hs, int | np.integer) else list(hs)
            pairs += [(layer, h) for h in hs]
    else:
        try:
            pairs = [tuple(x) for x in heads]
        except TypeError:
            raise TypeError(
                f"{fn}: heads must be {{layer: [head, ...]}} or [(layer, head), ...], got {heads!r}"
            ) from None
        if any(len(x) != 2 for x in pairs):
            raise ValueError(f"{fn}: heads as a list must hold (layer, head) pairs, got {heads!r}")
    out: dict[int, list[int]] = {}
    for layer, h in pairs:
        layer = _check_index("layer", layer, n_layers, fn)
        h = _check_index(f"head (layer {layer})", h, n_heads, fn)
        out.setdefault(layer, [])
        if h not in out[layer]:
            out[layer].append(h)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _f32(x):
    return jnp.asarray(x, jnp.float32)


def _like(new, old):
    return jnp.asarray(new).astype(jnp.asarray(old).dtype)


def _maybe_nonzero(x) -> bool:
    """False only when `x` is a concrete all-zero array (traced values count as non-zero)."""
    if isinstance(x, jax.core.Tracer):
        return True
    return bool(np.any(np.asarray(x) != 0))


def _cfg(model, fn: str):
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        raise TypeError(f"{fn}: expected a mj.Transformer (with .cfg), got {type(model).__name__}")
    return cfg


def _check_matches(cfg, p, fn: str) -> None:
    """Params belong to this config (layer count and attention shapes)."""
    if _n_layers(p) != cfg.n_layers:
        raise ValueError(
            f"{fn}: params have {_n_layers(p)} blocks but model.cfg.n_layers={cfg.n_layers}; "
            f"pass the model these params were made for."
        )
    a = _attn(p, 0, fn)
    want = {
        "W_Q": (cfg.n_heads, cfg.d_model, cfg.head_dim),
        "W_K": (cfg.kv_heads, cfg.d_model, cfg.head_dim),
    }
    for name, shape in want.items():
        if tuple(a[name].shape) != shape:
            raise ValueError(
                f"{fn}: blocks_0/attn/{name} has shape {tuple(a[name].shape)} but model.cfg "
                f"expects {shape}; pass the model these params were made for."
            )


# ----------------------------------------------------------------------------------------------
# Head edits
# ----------------------------------------------------------------------------------------------


def ablate_heads(params, heads):
    """Zeroes the chosen heads' `W_O[head]` so they write nothing to the residual stream.

    Same logits as zero-ablating `blocks.L.attn.hook_z` for those heads (`b_O` is kept).

    Args:
      params: flax variables `{"params": ...}`.
      heads: `{layer: [head, ...]}` or `[(layer, head), ...]` (query-head indices).
    Returns:
      new variables; the input is not modified.
    """
    p, wrap = _unwrap(params, "ablate_heads")
    for layer, hs in _parse_heads(heads, p, "ablate_heads").items():
        a = p[f"blocks_{layer}"]["attn"]
        a["W_O"] = a["W_O"].at[np.asarray(hs)].set(0)  # [head, d_head, d_model]
    return wrap(p)


def project_out(params, direction, heads):
    """ThinkEdit: removes `direction` from what the chosen heads can write.

    `W_O[h] <- W_O[h] - (W_O[h] v) v^T` with `v = direction / |direction|`, so the head's
    output `z_h W_O[h]` (its `hook_result`) has no component along `v`.

    Args:
      params: flax variables `{"params": ...}`.
      direction: `[d_model]` (one direction for every listed head), `[n_layers, d_model]`,
        or a dict `layer -> [d_model]` (each listed head uses its layer's direction).
      heads: `{layer: [head, ...]}` or `[(layer, head), ...]`.
    Returns:
      new variables; the input is not modified.
    """
    fn = "project_out"
    p, wrap = _unwrap(params, fn)
    sel = _parse_heads(heads, p, fn)
    d_model = p["blocks_0"]["attn"]["W_O"].shape[-1]
    n_layers = _n_layers(p)

    def direction_for(layer):
        if isinstance(direction, Mapping):
            if layer not in direction:
                raise ValueError(
                    f"{fn}: heads include layer {layer} but direction has no entry for it; "
                    f"direction layers: {sorted(direction)}"
                )
            v = direction[layer]
            where = f"direction[{layer}]"
        else:
            v = direction
            where = "direction"
            if np.ndim(v) == 2:
                if np.shape(v)[0] != n_layers:
                    raise ValueError(
                        f"{fn}: a 2-D direction must be [n_layers={n_layers}, d_model={d_model}], "
                        f"got {np.shape(v)}"
                    )
                v, where = v[layer], f"direction[{layer}]"
        if np.shape(v) != (d_model,):
            raise ValueError(
                f"{fn}: {where} must have shape [d_model]=({d_model},), got {np.shape(v)}"
            )
        if not isinstance(v, jax.core.Tracer) and not np.any(np.asarray(v) != 0):
            raise ValueError(f"{fn}: {where} is the zero vector; it has no direction")
        v = _f32(v)
        return v / jnp.linalg.norm(v)

    directions = {layer: direction_for(layer) for layer in sel}  # validate all before editing
    for layer, hs in sel.items():
        v = directions[layer]  # [d_model]
        a = p[f"blocks_{layer}"]["attn"]
        idx = np.asarray(hs)
        W = _f32(a["W_O"][idx])  # [sel_head, d_head, d_model]
        W = W - jnp.einsum("hed,d->he", W, v)[..., None] * v  # drop each row's v component
        a["W_O"] = a["W_O"].at[idx].set(_like(W, a["W_O"]))
    return wrap(p)


# ----------------------------------------------------------------------------------------------
# Factored circuits and low-rank truncation
# ----------------------------------------------------------------------------------------------


def _head_mats(p, layer, head, fn):
    """Validated (layer, head, kv_head) of one query head."""
    layer = _check_index("layer", layer, _n_layers(p), fn)
    n_heads, n_kv = _n_heads(p, fn)
    head = _check_index("head", head, n_heads, fn)
    return layer, head, head // (n_heads // n_kv)


def qk_circuit(params, layer: int, head: int):
    """The head's bilinear attention form `W_Q[h] @ W_K[kv(h)]^T`: `[d_model(query), d_model(key)]`.

    Bias- and position-free (rotary and `b_Q`/`b_K` are not included), as in TransformerLens.
    """
    p, _ = _unwrap(params, "qk_circuit")
    layer, head, kv = _head_mats(p, layer, head, "qk_circuit")
    a = p[f"blocks_{layer}"]["attn"]
    return _f32(a["W_Q"][head]) @ _f32(a["W_K"][kv]).T


def ov_circuit(params, layer: int, head: int):
    """The head's value-to-output map `W_V[kv(h)] @ W_O[h]`: `[d_model(source), d_model(out)]`."""
    p, _ = _unwrap(params, "ov_circuit")
    layer, head, kv = _head_mats(p, layer, head, "ov_circuit")
    a = p[f"blocks_{layer}"]["attn"]
    return _f32(a["W_V"][kv]) @ _f32(a["W_O"][head])


def _rank_k_factor(A, B, k: int):
    """A' `[d_model, d_head]` such that `A' B^T` is the best rank-k approximation of `A B^T`.

    B stays fixed (it may be shared by other heads). With A = Qa Ra, B = Qb Rb (thin QR),
    A B^T = Qa (Ra Rb^T) Qb^T, so its SVD comes from the small d_head x d_head core, and
    A' = M_k pinv(B^T) = Qa C_k pinv(Rb^T): exact because M_k's rows lie in B's column space.
    """
    Qa, Ra = jnp.linalg.qr(A)  # [d_model, d_head], [d_head, d_head]
    Qb, Rb = jnp.linalg.qr(B)
    U, S, Vt = jnp.linalg.svd(Ra @ Rb.T)  # core [d_head, d_head]
    core_k = (U[:, :k] * S[:k]) @ Vt[:k]  # [d_head, d_head]
    return Qa @ core_k @ jnp.linalg.pinv(Rb.T)  # [d_model, d_head]


def _check_rank(rank, d_head, fn):
    if isinstance(rank, bool) or not isinstance(rank, int | np.integer):
        raise TypeError(f"{fn}: rank must be an int, got {rank!r}")
    if not 0 <= rank <= d_head:
        raise ValueError(
            f"{fn}: rank {rank} is out of range; the circuit has rank <= d_head={d_head}, "
            f"valid: 0..{d_head}"
        )
    return int(rank)


def truncate_qk(params, layer: int, head: int, rank: int):
    """Replaces head `(layer, head)`'s QK circuit by its best rank-`rank` approximation.

    Only `W_Q[head]` changes (`W_Q' = M_k pinv(W_K^T)`), so under GQA the shared
    `W_K[kv(head)]` and the other query heads reading it are untouched. Biases are kept.

    Returns:
      new variables with `qk_circuit(new, layer, head) == SVD_rank_k(qk_circuit(old, ...))`.
    """
    fn = "truncate_qk"
    p, wrap = _unwrap(params, fn)
    layer, head, kv = _head_mats(p, layer, head, fn)
    a = p[f"blocks_{layer}"]["attn"]
    rank = _check_rank(rank, a["W_Q"].shape[-1], fn)
    new = _rank_k_factor(_f32(a["W_Q"][head]), _f32(a["W_K"][kv]), rank)  # [d_model, d_head]
    a["W_Q"] = a["W_Q"].at[head].set(_like(new, a["W_Q"]))
    return wrap(p)


def truncate_ov(params, layer: int, head: int, rank: int):
    """Replaces head `(layer, head)`'s OV circuit by its best rank-`rank` approximation.

    Only `W_O[head]` changes (`W_O' = pinv(W_V) M_k`); the (possibly shared) `W_V` is kept.

    Returns:
      new variables with `ov_circuit(new, layer, head) == SVD_rank_k(ov_circuit(old, ...))`.
    """
    fn = "truncate_ov"
    p, wrap = _unwrap(params, fn)
    layer, head, kv = _head_mats(p, layer, head, fn)
    a = p[f"blocks_{layer}"]["attn"]
    rank = _check_rank(rank, a["W_O"].shape[1], fn)
    # OV^T = W_O[h]^T W_V^T: the same problem as QK with A = W_O[h]^T, B = W_V (transpose
    # commutes with rank-k truncation).
    new_t = _rank_k_factor(_f32(a["W_O"][head]).T, _f32(a["W_V"][kv]), rank)  # [d_model, d_head]
    a["W_O"] = a["W_O"].at[head].set(_like(new_t.T, a["W_O"]))
    return wrap(p)


# ----------------------------------------------------------------------------------------------
# TransformerLens weight processing
# ----------------------------------------------------------------------------------------------


def untie_embeddings(model, params):
    """Gives a tied-embedding model its own unembedding `W_U = W_E^T` (same outputs).

    Needed before folding `ln_final` or centering, which would otherwise also change `W_E`.

    Returns:
      `(model, params)` with `cfg.tie_embeddings=False`, `unembed_bias=False`.
    """
    cfg = _cfg(model, "untie_embeddings")
    if not cfg.tie_embeddings:
        raise ValueError("untie_embeddings: the model is not tied (cfg.tie_embeddings=False)")
    p, wrap = _unwrap(params, "untie_embeddings")
    _check_matches(cfg, p, "untie_embeddings")
    p["W_U"] = jnp.asarray(p["W_E"]).T  # [d_model, d_vocab]
    return model.clone(cfg=cfg.replace(tie_embeddings=False, unembed_bias=False)), wrap(p)


def _tied_error(fn, what):
    return ValueError(
        f"{fn}: tie_embeddings models: {what} would also change W_E (the embedding). Untie "
        f"first: `model, params = mj.edit.untie_embeddings(model, params)` (process_weights "
        f"does this for you)."
    )


def _has_final_ln(cfg) -> bool:
    return cfg.normalization_type is not None and cfg.final_norm


def _bias_flags_needed(cfg, p, has_head: bool) -> dict:
    """Config bias flags a LayerNorm fold must switch on, because some LN bias is non-zero."""
    if cfg.normalization_type != "LN":
        return {}
    need = {}
    for layer in range(cfg.n_layers):
        blk = p[f"blocks_{layer}"]
        if not cfg.attn_bias and _maybe_nonzero(blk["ln1"]["b"]):
            need["attn_bias"] = True
        if not cfg.attn_only and not cfg.mlp_bias and _maybe_nonzero(blk["ln2"]["b"]):
            need["mlp_bias"] = True
    if _has_final_ln(cfg) and not has_head and not cfg.unembed_bias:
        if _maybe_nonzero(p["ln_final"]["b"]):
            need["unembed_bias"] = True
    return need


def _add_zero_biases(cfg, p, flags):
    """Adds the zero biases a newly switched-on config flag makes the model expect."""
    D, H, K, E = cfg.d_model, cfg.n_heads, cfg.kv_heads, cfg.head_dim
    for layer in range(cfg.n_layers):
        blk = p[f"blocks_{layer}"]
        dt = blk["attn"]["W_Q"].dtype
        if flags.get("attn_bias"):
            blk["attn"].update(
                b_Q=jnp.zeros((H, E), dt),
                b_K=jnp.zeros((K, E), dt),
                b_V=jnp.zeros((K, E), dt),
                b_O=jnp.zeros((D,), dt),
            )
        if flags.get("mlp_bias"):
            blk["mlp"].update(b_in=jnp.zeros((cfg.mlp_dim,), dt), b_out=jnp.zeros((D,), dt))
            if cfg.gated_mlp:
                blk["mlp"]["b_gate"] = jnp.zeros((cfg.mlp_dim,), dt)
    if flags.get("unembed_bias"):
        p["b_U"] = jnp.zeros((cfg.vocab_out,), p["W_U"].dtype)


def _fold_into(ln, mats, center: bool):
    """Folds LN `w` (and `b`) into the linear maps reading its output.

    mats: list of (container, weight name, bias name or None, d_model axis of the weight).
    """
    w = _f32(ln["w"])  # [d_model]
    b = _f32(ln["b"]) if "b" in ln else None
    for box, wname, bname, axis in mats:
        W = _f32(box[wname])
        shape = [1] * W.ndim
        shape[axis] = -1
        if b is not None and bname is not None:
            # (n w + b) W = n (w W) + b W: the bias moves into the map's own bias.
            bW = jnp.tensordot(b, W, axes=([0], [axis]))
            box[bname] = _like(_f32(box[bname]) + bW, box[bname])
        W = W * w.reshape(shape)
        if center:
            # LN output n has zero mean over d_model, so W's mean over d_model is never read.
            W = W - W.mean(axis=axis, keepdims=True)
        box[wname] = _like(W, box[wname])
    ln["w"] = jnp.ones_like(ln["w"])
    if "b" in ln:
        ln["b"] = jnp.zeros_like(ln["b"])


def fold_layer_norm(model, params, *, center_weights: bool = True):
    """Folds every norm's weight (and LayerNorm bias) into the weights that read it.

    LayerNorm: `w` scales the rows of the following `W_Q/W_K/W_V`, `W_in/W_gate`, `W_U`;
    `b @ W` is added to their biases; then (`center_weights`) those reading weights are
    centred over `d_model`, which the LN's own centring makes free. RMSNorm: `w` only.
    Afterwards every norm has `w = 1` (`b = 0`), so outputs are unchanged.

    If a LayerNorm bias must go where the model has no bias (e.g. GPT-2's
    `unembed_bias=False` with a non-zero `ln_final.b`), the config flag is switched on and
    zero biases are added, hence the returned model. With a head module (`model.head`),
    `ln_final` feeds the head and is left as it is.

    Returns:
      `(model, params)`.
    """
    fn = "fold_layer_norm"
    cfg = _cfg(model, fn)
    p, wrap = _unwrap(params, fn)
    _check_matches(cfg, p, fn)
    if cfg.normalization_type is None:
        return model, wrap(p)
    has_head = getattr(model, "head", None) is not None
    if cfg.tie_embeddings and not has_head and _has_final_ln(cfg):
        raise _tied_error(fn, "folding ln_final into the unembedding")
    flags = _bias_flags_needed(cfg, p, has_head)
    if flags:
        _add_zero_biases(cfg, p, flags)
        cfg = cfg.replace(**flags)
    center = center_weights and cfg.normalization_type == "LN"
    for layer in range(cfg.n_layers):
        blk = p[f"blocks_{layer}"]
        a = blk["attn"]
        bias = cfg.attn_bias
        _fold_into(
            blk["ln1"],
            [(a, f"W_{x}", f"b_{x}" if bias else None, 1) for x in "QKV"],
            center,
        )
        if not cfg.attn_only:
            m = blk["mlp"]
            mats = [(m, "W_in", "b_in" if cfg.mlp_bias else None, 0)]
            if cfg.gated_mlp:
                mats.append((m, "W_gate", "b_gate" if cfg.mlp_bias else None, 0))
            _fold_into(blk["ln2"], mats, center)
    if _has_final_ln(cfg) and not has_head:
        _fold_into(p["ln_final"], [(p, "W_U", "b_U" if cfg.unembed_bias else None, 0)], center)
    return model.clone(cfg=cfg), wrap(p)


def _centering_problem(cfg, fn) -> str | None:
    if cfg.normalization_type != "LN":
        return (
            f"{fn}: needs LayerNorm models (normalization_type='LN'), got "
            f"{cfg.normalization_type!r}: only LayerNorm removes the residual's mean, so "
            f"centring would change the outputs of this model."
        )
    if not cfg.final_norm:
        return (
            f"{fn}: final_norm=False models: the unembedding reads the residual without a "
            f"LayerNorm, so centring would change the logits."
        )
    return None


def center_writing_weights(model, params):
    """Subtracts the `d_model`-mean from everything that writes to the residual stream.

    `W_E`, `W_pos`, `W_vec`/`b_vec`, and per block `W_O`, `b_O`, `W_out`, `b_out`. Every
    reader of the residual is a LayerNorm, which removes that mean anyway, so outputs are
    unchanged (residual-stream sites change). LayerNorm models only.

    Returns:
      new params (the model is unchanged).
    """
    fn = "center_writing_weights"
    cfg = _cfg(model, fn)
    problem = _centering_problem(cfg, fn)
    if problem:
        raise ValueError(problem)
    if cfg.tie_embeddings and getattr(model, "head", None) is None:
        raise _tied_error(fn, "centring W_E")
    p, wrap = _unwrap(params, fn)
    _check_matches(cfg, p, fn)

    def center(box, name):
        if name in box:
            x = _f32(box[name])
            box[name] = _like(x - x.mean(axis=-1, keepdims=True), box[name])

    for name in ("W_E", "W_pos", "W_vec", "b_vec"):
        center(p, name)
    for layer in range(cfg.n_layers):
        blk = p[f"blocks_{layer}"]
        center(blk["attn"], "W_O")  # [head, d_head, d_model]
        center(blk["attn"], "b_O")
        if not cfg.attn_only:
            center(blk["mlp"], "W_out")  # [d_mlp, d_model]
            center(blk["mlp"], "b_out")
    return wrap(p)


def center_unembed(params):
    """Subtracts the mean over the vocabulary from `W_U[d_model, d_vocab]` and `b_U`.

    Softmax is shift-invariant, so log-probabilities are unchanged (logits are not).

    Returns:
      new params.
    """
    fn = "center_unembed"
    p, wrap = _unwrap(params, fn)
    if "W_U" not in p:
        raise ValueError(
            f"{fn}: params have no 'W_U'. tie_embeddings models: untie first with "
            f"mj.edit.untie_embeddings(model, params); models with a head module have no "
            f"unembedding to centre."
        )
    for name in ("W_U", "b_U"):
        if name in p:
            x = _f32(p[name])
            p[name] = _like(x - x.mean(axis=-1, keepdims=True), p[name])
    return wrap(p)


def fold_value_biases(params):
    """Moves `b_V` into `b_O`: `b_O += sum_h b_V[kv(h)] @ W_O[h]`, then `b_V = 0`.

    Exact because each attention row sums to one, so the value bias reaches the output
    unchanged. (Not exact for query positions whose every key is masked out by an
    `attention_mask`: their pattern row is zero.) `hook_v`/`hook_z` change; outputs do not.
    Models without attention biases are returned unchanged.

    Returns:
      new params.
    """
    fn = "fold_value_biases"
    p, wrap = _unwrap(params, fn)
    n_heads, n_kv = _n_heads(p, fn)
    group = n_heads // n_kv
    for layer in range(_n_layers(p)):
        a = p[f"blocks_{layer}"]["attn"]
        if "b_V" not in a:
            continue
        b_V = jnp.repeat(_f32(a["b_V"]), group, axis=0)  # [head, d_head]
        add = jnp.einsum("he,hed->d", b_V, _f32(a["W_O"]))  # [d_model]
        a["b_O"] = _like(_f32(a["b_O"]) + add, a["b_O"])
        a["b_V"] = jnp.zeros_like(a["b_V"])
    return wrap(p)


def process_weights(
    model,
    params,
    fold_ln: bool = True,
    center_writing_weights: bool = True,
    center_unembed: bool = True,
    fold_value_biases: bool = True,
):
    """TransformerLens' weight processing, in its order; outputs' log-probs are unchanged.

    Applies each step where it is valid: `center_writing_weights` only on LayerNorm models
    with a final LayerNorm (skipped for RMSNorm / no-norm models, as TransformerLens does);
    `center_unembed` only when there is a `W_U`. Tied-embedding models are untied first.

    Returns:
      `(model, params)`.
    """
    cfg = _cfg(model, "process_weights")
    _check_matches(cfg, _unwrap(params, "process_weights")[0], "process_weights")
    has_head = getattr(model, "head", None) is not None
    do_center = center_writing_weights and _centering_problem(cfg, "") is None
    needs_untied = (fold_ln and _has_final_ln(cfg)) or do_center or center_unembed
    if cfg.tie_embeddings and not has_head and needs_untied:
        model, params = untie_embeddings(model, params)
    else:
        params = _copy(params)
    if fold_ln:
        model, params = fold_layer_norm(model, params)
    if do_center:
        params = _center_writing_weights(model, params)
    if center_unembed and not has_head:
        params = _center_unembed(params)
    if fold_value_biases:
        params = _fold_value_biases(params)
    return model, params


# process_weights' keyword names shadow the functions inside it.
_center_writing_weights = center_writing_weights
_center_unembed = center_unembed
_fold_value_biases = fold_value_biases
