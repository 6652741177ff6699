"""Weight-space circuits: factored QK / OV matrices, SVD views, composition scores.

Conventions follow TransformerLens (row vectors): a head's QK circuit is
`W_Q[h] W_K[h]^T` `[d_model(query), d_model(key)]`, its OV circuit `W_V[h] W_O[h]`
`[d_model(source), d_model(out)]` (dense versions: `mj.edit.qk_circuit/ov_circuit`).
Everything here works on the rank-`d_head` factors through thin QR decompositions,
so no `d_model x d_model` matrix is ever formed. LayerNorm is not folded in: fold it
first (`mj.edit.fold_layer_norm`) to match TL's processed weights.

Any family: the heads are those of one attention module (`attn`: "attn", or a decoder's
"cross_attn") of one layer stack (`stack`: default the readout's, e.g. `blocks` or
`decoder.blocks`); composition scores can run between stacks (encoder heads into a
decoder's cross-attention keys / values).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mechjax.analysis import _common


def head_factors(model, params, *, stack=None, attn="attn"):
    """Stacked per-head factors, GQA-expanded: dict of `[n_layers, n_heads, ...]` arrays.

    W_Q, W_K, W_V: `[n_layers, n_heads, d_model, d_head]`; W_O: `[n_layers, n_heads, d_head, d_model]`.
    """
    what = "head_factors"
    _common.check_model(model, what)
    st = _common.get_stack(model, stack, what)
    _common.check_attn(st, attn, what)
    rep = st.n_heads // st.n_kv_heads
    out = {k: [] for k in ("W_Q", "W_K", "W_V", "W_O")}
    for i in range(st.n_layers):
        a = _common.module_params(model, params, st.site(i, attn))
        for k in out:
            w = jnp.asarray(a[k]).astype(jnp.float32)
            out[k].append(jnp.repeat(w, rep, axis=0) if k in ("W_K", "W_V") else w)
    return {k: jnp.stack(v) for k, v in out.items()}


def _low_rank_svd(A, B):
    """SVD of A B^T for A, B `[..., d_model, r]` via thin QR: (U, S, Vt) with r components."""
    Qa, Ra = jnp.linalg.qr(A)
    Qb, Rb = jnp.linalg.qr(B)
    U, S, Vt = jnp.linalg.svd(Ra @ jnp.swapaxes(Rb, -1, -2))  # [..., r, r]
    return Qa @ U, S, Vt @ jnp.swapaxes(Qb, -1, -2)


def circuit_svd(model, params, which: str = "ov", *, stack=None, attn="attn"):
    """SVD of every head's QK or OV circuit without forming it.

    Returns (U `[n_layers, n_heads, d_model, d_head]`, S `[n_layers, n_heads, d_head]`,
    Vt `[n_layers, n_heads, d_head, d_model]`); U diag(S) Vt is the circuit. The spectrum
    S shows how low-rank a head is (Lieberum et al. compress q/k/v to a few dims).
    """
    if which not in ("qk", "ov"):
        raise ValueError(f"circuit_svd: which must be 'qk' or 'ov', got {which!r}")
    f = head_factors(model, params, stack=stack, attn=attn)
    if which == "qk":
        return _low_rank_svd(f["W_Q"], f["W_K"])
    if which == "ov":
        return _low_rank_svd(f["W_V"], jnp.swapaxes(f["W_O"], -1, -2))
    raise ValueError(f"circuit_svd: which must be 'qk' or 'ov', got {which!r}")


def _rank(model, st, attn):
    order = _common.site_order(model)
    return order.index(st.site(0, f"{attn}.hook_q"))


def composition_scores(
    model, params, mode: str, *, stack=None, attn="attn", sender_stack=None, sender_attn="attn"
):
    """Q-, K- or V-composition of every earlier head into every later head (Elhage et al.).

    score(h1 -> h2) = |OV_1 R_2|_F / (|OV_1|_F |R_2|_F) with R_2 = QK_2 ("q"), QK_2^T ("k")
    or OV_2 ("v"), as TL's `all_composition_scores`. Receivers: the heads of `attn` in
    `stack`; senders: those of `sender_attn` in `sender_stack` (default: the same stack).

    Returns:
      `[n_layers, n_heads, n_layers, n_heads]` (sender layer/head, receiver layer/head); NaN
      where the receiver does not come after the sender in the forward (same stack: a later
      layer, or a later attention module of the same layer; a sender stack before the
      receivers' makes every pair valid).
    """
    if mode not in ("q", "k", "v"):
        raise ValueError(f"composition_scores: mode must be 'q', 'k' or 'v', got {mode!r}")
    what = "composition_scores"
    _common.check_model(model, what)
    rst = _common.get_stack(model, stack, what)
    sst = rst if sender_stack is None else _common.get_stack(model, sender_stack, what)
    fr = head_factors(model, params, stack=rst.prefix, attn=attn)
    fs = head_factors(model, params, stack=sst.prefix, attn=sender_attn)
    Ls, Hs, Lr, Hr = sst.n_layers, sst.n_heads, rst.n_layers, rst.n_heads
    send = {k: v.reshape((Ls * Hs,) + v.shape[2:]) for k, v in fs.items()}
    recv = {k: v.reshape((Lr * Hr,) + v.shape[2:]) for k, v in fr.items()}
    # Right circuit R = r1 r2 with r1 [d_model, d_head], r2 [d_head, d_model].
    r1, r2t = {
        "q": (recv["W_Q"], recv["W_K"]),
        "k": (recv["W_K"], recv["W_Q"]),
        "v": (recv["W_V"], jnp.swapaxes(recv["W_O"], 1, 2)),
    }[mode]
    _, Rv = jnp.linalg.qr(send["W_V"])  # OV_1 = W_V W_O; |W_V X|_F = |Rv X|_F
    _, Rr = jnp.linalg.qr(r2t)  # r2 = Rr^T Q^T; |X r2|_F = |X Rr^T|_F
    left_norm = jnp.linalg.norm(Rv @ send["W_O"], axis=(1, 2))  # |OV_1|_F  [n]
    right_norm = jnp.linalg.norm(r1 @ jnp.swapaxes(Rr, 1, 2), axis=(1, 2))  # |R_2|_F
    mid = jnp.einsum("aed,bdf->abef", send["W_O"], r1)  # W_O1 r1_2  [n, m, d_head, d_head]
    core = jnp.einsum("aij,abjk,blk->abil", Rv, mid, Rr)  # Rv1 mid Rr2^T
    num = jnp.linalg.norm(core, axis=(2, 3))
    score = num / (left_norm[:, None] * right_norm[None, :])
    score = np.asarray(score).reshape(Ls, Hs, Lr, Hr)
    ps, pr = _common.stack_position(model, sst.prefix), _common.stack_position(model, rst.prefix)
    if ps == pr:  # same layer counts if the sender's module runs first (attn -> cross_attn)
        same_layer = _rank(model, sst, sender_attn) < _rank(model, rst, attn)
        ls, lr = np.arange(Ls)[:, None], np.arange(Lr)[None, :]
        later = (ls <= lr) if same_layer else (ls < lr)
    else:
        later = np.full((Ls, Lr), ps < pr)
    later = np.broadcast_to(later[:, None, :, None], score.shape)
    return np.where(later, score, np.nan).astype(np.float32)
