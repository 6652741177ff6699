"""Activation patching sweeps equal naive loops of single mj.run + mj.patch calls."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax.analysis import metrics, patching

B, P = 2, 5


def _model(**kw):
    base = dict(d_model=16, n_layers=2, n_heads=2, d_vocab=13, n_ctx=8, d_mlp=32, name="t")
    base.update(kw)
    model = mj.Transformer(mj.TransformerConfig(**base))
    params = mj.init(model, jax.random.key(0))
    # Larger weights than the init so patches move the metric visibly.
    params = jax.tree.map(lambda x: x * 4.0 if x.ndim >= 2 else x, params)
    return model, params


def _tokens():
    clean = jax.random.randint(jax.random.key(1), (B, P), 0, 13)
    corr = jax.random.randint(jax.random.key(2), (B, P), 0, 13)
    return clean, corr


def _plain_metric(logits):
    return jnp.mean(logits[:, -1, 3] - logits[:, -1, 5]) + 0.1 * jnp.mean(logits[:, 1, 7])


MODELS = {
    "gpt2": {},
    "llama_gqa": dict(
        n_heads=4,
        n_kv_heads=2,
        act_fn="silu",
        gated_mlp=True,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        attn_bias=False,
        mlp_bias=False,
    ),
}


def _oh(n, i):
    """Bool one-hot mask: a leaf, so the naive loop compiles once per site, not per index."""
    m = np.zeros(n, bool)
    m[i] = True
    return m


def _naive(model, params, corr, cache, metric, template, n_layers, sel_sizes, build):
    out = np.zeros((n_layers, *sel_sizes))
    for layer in range(n_layers):
        name = template.format(layer)
        for idx in itertools.product(*[range(s) for s in sel_sizes]):
            logits, _ = mj.run(model, params, corr, interventions=[build(name, cache[name], idx)])
            out[(layer, *idx)] = float(metric(logits))
    return out


CASES = {
    # name: (function, site template, sizes fn(cfg), build(name, value, idx))
    "head_out_all_pos": (
        patching.attn_head_out_all_pos,
        "blocks.{}.attn.hook_z",
        lambda c: (c.n_heads,),
        lambda n, v, i: mj.patch(n, v, heads=_oh(v.shape[2], i[0])),
    ),
    "head_v_all_pos": (
        patching.attn_head_v_all_pos,
        "blocks.{}.attn.hook_v",
        lambda c: (c.kv_heads,),
        lambda n, v, i: mj.patch(n, v, heads=_oh(v.shape[2], i[0])),
    ),
    "head_pattern_all_pos": (
        patching.attn_head_pattern_all_pos,
        "blocks.{}.attn.hook_pattern",
        lambda c: (c.n_heads,),
        lambda n, v, i: mj.patch(n, v, heads=_oh(v.shape[1], i[0])),
    ),
    "resid_pre": (
        patching.resid_pre,
        "blocks.{}.hook_resid_pre",
        lambda c: (P,),
        lambda n, v, i: mj.patch(n, v, positions=_oh(v.shape[1], i[0])),
    ),
    "mlp_out": (
        patching.mlp_out,
        "blocks.{}.hook_mlp_out",
        lambda c: (P,),
        lambda n, v, i: mj.patch(n, v, positions=_oh(v.shape[1], i[0])),
    ),
    "head_q_by_pos": (
        patching.attn_head_q_by_pos,
        "blocks.{}.attn.hook_q",
        lambda c: (P, c.n_heads),
        lambda n, v, i: mj.patch(
            n, v, positions=_oh(v.shape[1], i[0]), heads=_oh(v.shape[2], i[1])
        ),
    ),
    "head_pattern_by_pos": (
        patching.attn_head_pattern_by_pos,
        "blocks.{}.attn.hook_pattern",
        lambda c: (c.n_heads, P),
        lambda n, v, i: mj.patch(
            n, v, heads=_oh(v.shape[1], i[0]), positions=_oh(v.shape[2], i[1])
        ),
    ),
}


ARCH_CASES = {
    "gpt2": sorted(CASES),
    "llama_gqa": ["head_out_all_pos", "head_v_all_pos", "head_q_by_pos"],
}


@pytest.mark.parametrize("arch", ["gpt2", pytest.param("llama_gqa", marks=pytest.mark.slow)])
def test_sweep_equals_naive_loop(arch):
    model, params = _model(**MODELS[arch])
    clean, corr = _tokens()
    _, cache = mj.run(model, params, clean, cache=True)
    for case in ARCH_CASES[arch]:
        fn, template, sizes, build = CASES[case]
        got = np.asarray(fn(model, params, corr, cache, _plain_metric))
        want = _naive(
            model, params, corr, cache, _plain_metric, template, 2, sizes(model.cfg), build
        )
        assert got.shape == want.shape, case
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5, err_msg=case)
        assert np.ptp(want) > 1e-3, case  # the patches do something, so equality is informative


@pytest.mark.slow  # 100 naive forwards
def test_dest_src_and_resid_mid_and_chunked():
    model, params = _model()
    clean, corr = _tokens()
    _, cache = mj.run(
        model, params, clean, cache=("blocks.*.attn.hook_pattern", "blocks.*.hook_resid_mid")
    )
    got = np.asarray(
        patching.attn_head_pattern_dest_src_pos(
            model, params, corr, cache, _plain_metric, chunk_size=7
        )
    )
    want = np.zeros((2, 2, P, P))
    for layer, h, q, k in itertools.product(range(2), range(2), range(P), range(P)):
        m = np.zeros((1, 2, P, P), bool)
        m[0, h, q, k] = True
        name = f"blocks.{layer}.attn.hook_pattern"
        logits, _ = mj.run(model, params, corr, interventions=[mj.clamp(name, cache[name], mask=m)])
        want[layer, h, q, k] = float(_plain_metric(logits))
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
    mid = patching.resid_mid(model, params, corr, cache, _plain_metric, chunk_size=2)
    mid_full = patching.resid_mid(model, params, corr, cache, _plain_metric)
    np.testing.assert_allclose(mid, mid_full, atol=1e-5)


def test_logit_metric_positions_same_value():
    """A LogitMetric unembeds only its positions; results equal the full-logit metric."""
    model, params = _model()
    clean, corr = _tokens()
    _, cache = mj.run(model, params, clean, cache="blocks.*.attn.hook_z")
    ld = metrics.logit_diff(jnp.array([3, 4]), jnp.array([5, 1]))
    fast = patching.attn_head_out_all_pos(model, params, corr, cache, ld)
    slow = patching.attn_head_out_all_pos(model, params, corr, cache, lambda lg: ld(lg))
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    # Patching every head's clean z into layer 1 is the clean run for what follows.
    logits_clean, _ = mj.run(model, params, clean)
    assert np.ptp(np.asarray(fast)) > 1e-3
    assert np.isfinite(float(ld(logits_clean)))


@pytest.mark.slow
def test_every_helpers_shapes():
    model, params = _model()
    clean, corr = _tokens()
    _, cache = mj.run(model, params, clean, cache=True)
    a = patching.attn_head_all_pos_every(model, params, corr, cache, _plain_metric)
    b = patching.block_every(model, params, corr, cache, _plain_metric)
    c = patching.attn_head_by_pos_every(model, params, corr, cache, _plain_metric)
    assert a.shape == (5, 2, 2) and b.shape == (3, 2, P) and c.shape == (5, 2, P, 2)
    np.testing.assert_allclose(
        a[0], patching.attn_head_out_all_pos(model, params, corr, cache, _plain_metric)
    )
    np.testing.assert_allclose(
        c[4],
        np.swapaxes(
            patching.attn_head_pattern_by_pos(model, params, corr, cache, _plain_metric), 1, 2
        ),
    )


def test_contract_name_and_errors():
    model, params = _model()
    clean, corr = _tokens()
    _, cache = mj.run(model, params, clean, cache="blocks.0.attn.hook_z")
    with pytest.raises(ValueError, match="blocks.1.attn.hook_z"):
        mj.patching.attn_head_out_all_pos(model, params, corr, cache, _plain_metric)
    _, cache = mj.run(model, params, clean[:, :3], cache="blocks.*.attn.hook_z")
    with pytest.raises(ValueError, match="same \\[batch, pos\\]"):
        mj.patching.attn_head_out_all_pos(model, params, corr, cache, _plain_metric)
    with pytest.raises(ValueError, match="site must be one of"):
        patching.activation_patch(model, params, corr, cache, _plain_metric, "hook_zz")
    with pytest.raises(ValueError, match="chunk_size"):
        patching.attn_head_out_all_pos(model, params, corr, cache, _plain_metric, chunk_size=0)
