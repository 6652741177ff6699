"""Patching sweeps equal TransformerLens' on identical weights (skipped without transformer_lens).

Run in an environment with torch, transformers and transformer-lens<4, e.g.
`/work/venv-tl/bin/python -m pytest tests/test_analysis_tl_equivalence.py`.
"""

import importlib.util
import pathlib
import tempfile

import numpy as np
import pytest

tl_patching = pytest.importorskip("transformer_lens.patching")
torch = pytest.importorskip("torch")

import jax.numpy as jnp  # noqa: E402

import mechjax as mj  # noqa: E402

_BENCH = pathlib.Path(__file__).parents[1] / "benchmarks" / "bench_patching_vs_tl.py"
_spec = importlib.util.spec_from_file_location("bench_patching_vs_tl", _BENCH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def pair():
    torch.set_grad_enabled(False)
    hf = bench.build_hf(small=True, seed=1)
    for w in hf.parameters():  # larger weights: patches move the metric visibly
        if w.ndim == 2:
            w.mul_(5.0)
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp, safe_serialization=True)
        model, params = mj.from_pretrained(tmp)
    rng = np.random.default_rng(1)
    clean = rng.integers(0, hf.config.vocab_size, size=(2, 6))
    corr = clean.copy()
    corr[:, 2] = rng.integers(0, hf.config.vocab_size, size=2)
    return bench.tl_model(hf), model, params, clean, corr


CASES = [
    ("get_act_patch_attn_head_out_all_pos", "attn_head_out_all_pos"),
    ("get_act_patch_attn_head_out_by_pos", "attn_head_out_by_pos"),
    ("get_act_patch_attn_head_pattern_by_pos", "attn_head_pattern_by_pos"),
    ("get_act_patch_attn_head_v_all_pos", "attn_head_v_all_pos"),
    ("get_act_patch_resid_pre", "resid_pre"),
    ("get_act_patch_mlp_out", "mlp_out"),
    ("get_act_patch_block_every", "block_every"),
]


@pytest.mark.parametrize("tl_name,mj_name", CASES)
def test_matches_transformer_lens(pair, tl_name, mj_name):
    tl, model, params, clean, corr = pair
    A, B = 3, 7
    _, tl_cache = tl.run_with_cache(torch.tensor(clean))
    want = getattr(tl_patching, tl_name)(
        tl, torch.tensor(corr), tl_cache, lambda lg: (lg[:, -1, A] - lg[:, -1, B]).mean()
    ).numpy()
    _, cache = mj.run(model, params, jnp.asarray(clean), cache=True)
    got = getattr(mj.patching, mj_name)(
        model, params, jnp.asarray(corr), cache, mj.metrics.logit_diff(A, B)
    )
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)
    assert np.ptp(want) > 1e-2  # the sweep is not flat, so agreement is informative
