"""Weight-space circuits: factored QK / OV matrices, SVD views, composition scores.

Conventions follow TransformerLens (row vectors): a head's QK circuit is
`W_Q[h] W_K[h]^T` `[d_model(query), d_model(key)]`, its OV circuit `W_V[h] W_O[h]`
`[d_model(source), d_model(out)]` (dense versions: `mj.edit.qk_circuit/ov_circuit`).
Everything here works on the rank-`d_head` factors through thin QR decompositions,
so no `d_model x d_model` matrix is ever formed. LayerNorm is not folded in: fold it
first (`mj.edit.fold_layer_norm`) to match TL's processed weights.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mechjax.analysis import _common


def head_factors(model, params):
    """Stacked per-head factors, GQA-expanded: dict of `[n_layers, n_heads, ...]` arrays.

    W_Q, W_K, W_V: `[n_layers, n_heads, d_model, d_head]`; W_O: `[n_layers, n_heads, d_head, d_model]`.
    """
    cfg = _common.check_model(model, "head_factors")
    p = _common.variables(params)["params"]
    rep = cfg.n_heads // cfg.kv_heads
    out = {k: [] for k in ("W_Q", "W_K", "W_V", "W_O")}
    for i in range(cfg.n_layers):
        a = p[f"blocks_{i}"]["attn"]
        for k in out:
            w = a[k].astype(jnp.float32)
            out[k].append(jnp.repeat(w, rep, axis=0) if k in ("W_K", "W_V") else w)
    return {k: jnp.stack(v) for k, v in out.items()}


def _low_rank_svd(A, B):
    """SVD of A B^T for A, B `[..., d_model, r]` via thin QR: (U, S, Vt) with r components."""
    Qa, Ra = jnp.linalg.qr(A)
    Qb, Rb = jnp.linalg.qr(B)
    U, S, Vt = jnp.linalg.svd(Ra @ jnp.swapaxes(Rb, -1, -2))  # [..., r, r]
    return Qa @ U, S, Vt @ jnp.swapaxes(Qb, -1, -2)


def circuit_svd(model, params, which: str = "ov"):
    """SVD of every head's QK or OV circuit without forming it.

    Returns (U `[n_layers, n_heads, d_model, d_head]`, S `[n_layers, n_heads, d_head]`,
    Vt `[n_layers, n_heads, d_head, d_model]`); U diag(S) Vt is the circuit. The spectrum
    S shows how low-rank a head is (Lieberum et al. compress q/k/v to a few dims).
    """
    f = head_factors(model, params)
    if which == "qk":
        return _low_rank_svd(f["W_Q"], f["W_K"])
    if which == "ov":
        return _low_rank_svd(f["W_V"], jnp.swapaxes(f["W_O"], -1, -2))
    raise ValueError(f"circuit_svd: which must be 'qk' or 'ov', got {which!r}")


def composition_scores(model, params, mode: str):
    """Q-, K- or V-composition of every earlier head into every later head (Elhage et al.).

    score(h1 -> h2) = |OV_1 R_2|_F / (|OV_1|_F |R_2|_F) with R_2 = QK_2 ("q"), QK_2^T ("k")
    or OV_2 ("v"), as TL's `all_composition_scores`.

    Returns:
      `[n_layers, n_heads, n_layers, n_heads]` (sender layer/head, receiver layer/head); NaN
      where the receiver's layer is not after the sender's.
    """
    if mode not in ("q", "k", "v"):
        raise ValueError(f"composition_scores: mode must be 'q', 'k' or 'v', got {mode!r}")
    cfg = _common.check_model(model, "composition_scores")
    f = head_factors(model, params)
    L, H = cfg.n_layers, cfg.n_heads
    flat = {k: v.reshape((L * H,) + v.shape[2:]) for k, v in f.items()}
    # Right circuit R = r1 r2 with r1 [d_model, d_head], r2 [d_head, d_model].
    r1, r2t = {
        "q": (flat["W_Q"], flat["W_K"]),
        "k": (flat["W_K"], flat["W_Q"]),
        "v": (flat["W_V"], jnp.swapaxes(flat["W_O"], 1, 2)),
    }[mode]
    _, Rv = jnp.linalg.qr(flat["W_V"])  # OV_1 = W_V W_O; |W_V X|_F = |Rv X|_F
    _, Rr = jnp.linalg.qr(r2t)  # r2 = Rr^T Q^T; |X r2|_F = |X Rr^T|_F
    left_norm = jnp.linalg.norm(Rv @ flat["W_O"], axis=(1, 2))  # |OV_1|_F  [n]
    right_norm = jnp.linalg.norm(r1 @ jnp.swapaxes(Rr, 1, 2), axis=(1, 2))  # |R_2|_F
    mid = jnp.einsum("aed,bdf->abef", flat["W_O"], r1)  # W_O1 r1_2  [n, n, d_head, d_head]
    core = jnp.einsum("aij,abjk,blk->abil", Rv, mid, Rr)  # Rv1 mid Rr2^T
    num = jnp.linalg.norm(core, axis=(2, 3))
    score = num / (left_norm[:, None] * right_norm[None, :])
    score = np.asarray(score).reshape(L, H, L, H)
    later = np.arange(L)[:, None, None, None] < np.arange(L)[None, None, :, None]
    return np.where(np.broadcast_to(later, score.shape), score, np.nan).astype(np.float32)
