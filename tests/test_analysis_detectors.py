"""Detectors find heads planted by hand-written weights in a 2-layer attention-only model.

Residual layout (d_model 32): dims 0-7 token one-hot, 8-23 position one-hot, 24-31 the
previous token (written by the previous-token head L0H0). L1H0 is an induction head that
copies; L1H1 attends to the current token's occurrences and writes its successor.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax.analysis import detectors

V, N, C = 8, 16, 10.0


def _planted():
    cfg = mj.TransformerConfig(
        d_model=32,
        n_layers=2,
        n_heads=2,
        d_head=16,
        d_vocab=V,
        n_ctx=N,
        attn_only=True,
        normalization_type=None,
        attn_bias=False,
        unembed_bias=False,
        name="planted",
    )
    model = mj.Transformer(cfg)
    p = jax.tree.map(np.zeros_like, mj.init(model, jax.random.key(0))["params"])
    p = jax.tree.map(np.array, p)
    tok, pos, prev = np.arange(V), np.arange(N), 24 + np.arange(V)
    p["W_E"][tok, tok] = 1.0
    p["W_pos"][pos, 8 + pos] = 1.0
    p["W_U"][tok, tok] = 1.0
    a0, a1 = p["blocks_0"]["attn"], p["blocks_1"]["attn"]
    # L0H0: query at position i matches key at position i - 1; copies the token to `prev`.
    a0["W_Q"][0, 8 + pos, pos] = C
    a0["W_K"][0, 8 + pos[:-1], pos[:-1] + 1] = C
    a0["W_V"][0, tok, tok] = 1.0
    a0["W_O"][0, tok, prev] = 1.0
    # L1H0: query = current token, key = previous token at that position; copies strongly.
    a1["W_Q"][0, tok, tok] = C
    a1["W_K"][0, prev, tok] = C
    a1["W_V"][0, tok, tok] = 1.0
    a1["W_O"][0, tok, tok] = 10.0
    # L1H1: attends to occurrences of the current token; writes the successor token.
    a1["W_Q"][1, tok, tok] = C
    a1["W_K"][1, tok, tok] = C
    a1["W_V"][1, tok, tok] = 1.0
    a1["W_O"][1, tok, (tok + 1) % V] = 1.0
    return model, {"params": jax.tree.map(jnp.asarray, p)}


def _repeated(batch=3, n=7, seed=0):
    rng = np.random.default_rng(seed)
    first = np.stack([rng.permutation(V)[:n] for _ in range(batch)])
    return jnp.asarray(np.concatenate([first, first], 1))


def _argmax2(x):
    return tuple(int(i) for i in np.unravel_index(np.argmax(np.asarray(x)), np.shape(x)))


def test_attention_detectors_find_planted_heads():
    model, params = _planted()
    toks = _repeated()
    prev = detectors.previous_token_score(model, params, toks)
    ind = detectors.induction_score(model, params, toks)
    dup = detectors.duplicate_token_score(model, params, toks)
    assert prev.shape == ind.shape == dup.shape == (2, 2)
    assert _argmax2(prev) == (0, 0) and prev[0, 0] > 0.99 and np.sort(np.ravel(prev))[-2] < 0.5
    # Not 1: position 0 attends to itself, so key 0 also "follows" r_1 for the row at r_1.
    assert _argmax2(ind) == (1, 0) and ind[1, 0] > 0.9 and np.sort(np.ravel(ind))[-2] < 0.5
    assert _argmax2(dup) == (1, 1) and 0.4 < dup[1, 1] < 0.6  # shares with itself


def test_weight_detectors_find_planted_heads():
    model, params = _planted()
    copy = detectors.copying_score(model, params)
    np.testing.assert_allclose(copy, [[0, 0], [1, 0]], atol=1e-5)  # shift: roots of unity sum to 0
    succ = detectors.successor_score(model, params, [list(range(V))])
    np.testing.assert_allclose(succ, [[0, 0], [0, 1]], atol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        detectors.successor_score(model, params, [[1, 99]])


def test_retrieval_score_during_greedy_decoding():
    model, params = _planted()
    toks = np.asarray(_repeated(batch=2))[:, :9]  # needle (7 tokens), then its first two again
    buf = np.concatenate([toks, np.zeros((2, 4), toks.dtype)], 1)
    scores, out = detectors.retrieval_score(model, params, buf, [[0, 7], [0, 7]], n_steps=4)
    np.testing.assert_array_equal(out[:, 9:], toks[:, 2:6])  # the induction head continues the copy
    assert scores.shape == (2, 2, 2)
    np.testing.assert_allclose(scores[:, 1, 0], 4 / 7, atol=1e-6)
    assert float(np.max(np.delete(np.asarray(scores).reshape(2, 4), 2, axis=1))) < 0.1
