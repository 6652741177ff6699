"""Weight-space circuits equal their dense definitions (mj.edit.qk_circuit / ov_circuit)."""

import jax
import numpy as np
import pytest

import mechjax as mj
from mechjax.analysis import weights


@pytest.fixture(scope="module")
def gqa_model():
    cfg = mj.TransformerConfig(
        d_model=24,
        n_layers=3,
        n_heads=4,
        n_kv_heads=2,
        d_head=4,
        d_vocab=11,
        n_ctx=8,
        d_mlp=16,
        name="t",
    )
    model = mj.Transformer(cfg)
    return model, mj.init(model, jax.random.key(0))


def _fro(x):
    return np.linalg.norm(np.asarray(x, np.float64))


def test_composition_scores_match_dense(gqa_model):
    model, params = gqa_model
    for mode in ("q", "k", "v"):
        got = weights.composition_scores(model, params, mode)
        assert got.shape == (3, 4, 3, 4)
        assert np.isnan(got[1, :, 0]).all() and np.isnan(got[1, :, 1]).all()
        for l1, h1, l2, h2 in ((0, 1, 1, 3), (0, 2, 2, 0), (1, 3, 2, 1)):
            ov1 = np.asarray(mj.edit.ov_circuit(params, l1, h1), np.float64)
            right = {
                "q": mj.edit.qk_circuit(params, l2, h2),
                "k": np.asarray(mj.edit.qk_circuit(params, l2, h2)).T,
                "v": mj.edit.ov_circuit(params, l2, h2),
            }[mode]
            right = np.asarray(right, np.float64)
            want = _fro(ov1 @ right) / (_fro(ov1) * _fro(right))
            assert got[l1, h1, l2, h2] == pytest.approx(want, rel=1e-4), (mode, l1, h1, l2, h2)
    with pytest.raises(ValueError, match="mode"):
        weights.composition_scores(model, params, "x")


def test_circuit_svd_matches_dense(gqa_model):
    model, params = gqa_model
    for which, dense in (("qk", mj.edit.qk_circuit), ("ov", mj.edit.ov_circuit)):
        U, S, Vt = weights.circuit_svd(model, params, which)
        assert U.shape == (3, 4, 24, 4) and S.shape == (3, 4, 4)
        M = np.asarray(dense(params, 2, 3), np.float64)
        np.testing.assert_allclose(
            S[2, 3], np.linalg.svd(M, compute_uv=False)[:4], rtol=1e-4, atol=1e-7
        )
        np.testing.assert_allclose((U[2, 3] * S[2, 3]) @ Vt[2, 3], M, atol=1e-6)
