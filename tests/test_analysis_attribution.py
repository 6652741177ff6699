"""Attribution patching equals exact patching where the model is linear in the patched site."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax.analysis import attribution, metrics, patching


def _setup(scale=5.0, **kw):
    cfg = dict(d_model=16, n_layers=2, n_heads=2, d_vocab=11, n_ctx=8, name="t")
    cfg.update(kw)
    model = mj.Transformer(mj.TransformerConfig(**cfg))
    params = jax.tree.map(lambda x: scale * x, mj.init(model, jax.random.key(0)))
    clean = jax.random.randint(jax.random.key(1), (3, 6), 0, 11)
    corr = jax.random.randint(jax.random.key(2), (3, 6), 0, 11)
    _, cache = mj.run(model, params, clean, cache=True)
    return model, params, clean, corr, cache


def test_exact_when_linear_in_site():
    # Attention-only, no norms: the logits are affine in the last layer's z, attn_out, result.
    model, params, _, corr, cache = _setup(scale=30.0, attn_only=True, normalization_type=None)
    ld = metrics.logit_diff(jnp.array([1, 2, 3]), jnp.array([4, 5, 6]))
    for site, index in (("z", ("head",)), ("z", ("pos", "head")), ("attn_out", ("pos",))):
        exact = patching.activation_patch(model, params, corr, cache, ld, site, index, layers=(1,))
        for ig in (None, 3):
            approx = attribution.attribute(
                model, params, corr, cache, ld, site, index, layers=(1,), ig_steps=ig
            )
            np.testing.assert_allclose(
                approx, exact, atol=1e-4, rtol=1e-4, err_msg=f"{site} {index} ig={ig}"
            )
        assert np.ptp(np.asarray(exact)) > 1e-2  # not a trivially flat sweep


def test_nonlinear_site_is_an_approximation():
    """In layer 0 (feeding layer-1 attention and the MLPs) the estimate is not exact, but tracks."""
    model, params, _, corr, cache = _setup(d_mlp=32)
    metric = lambda lg: jnp.mean(lg[:, -1, 1] - lg[:, -1, 2])  # noqa: E731
    exact = patching.attn_head_out_by_pos(model, params, corr, cache, metric)
    approx = attribution.attn_head_out_by_pos(model, params, corr, cache, metric)
    ig = attribution.attn_head_out_by_pos(
        model, params, corr, cache, metric, ig_steps=4, chunk_size=2
    )
    assert approx.shape == exact.shape == ig.shape == (2, 6, 2)
    stats = attribution.compare(exact, approx)
    assert stats["max_abs_err"] > 1e-6  # genuinely an approximation here
    assert stats["pearson"] > 0.5, stats
    assert np.all(np.isfinite(ig))


def test_integrated_gradients_complete_on_input_path():
    """IG along the corrupted -> clean input path is complete: it recovers metric(clean)."""
    model, params, clean, corr, cache = _setup(d_mlp=32)
    metric = lambda lg: jnp.mean(lg[:, -1, 1] - lg[:, -1, 2])  # noqa: E731
    want = float(metric(mj.run(model, params, clean)[0]))
    base = float(metric(mj.run(model, params, corr)[0]))
    kw = dict(site="resid_pre", index=(), layers=(0,))
    ig = float(attribution.attribute(model, params, corr, cache, metric, ig_steps=32, **kw)[0])
    grad = float(attribution.attribute(model, params, corr, cache, metric, **kw)[0])
    assert abs(want - base) > 0.1
    assert abs(ig - want) < 0.02 * abs(want - base)
    assert abs(grad - want) > 5 * abs(ig - want)  # plain gradients are only first order


def test_compare_and_errors():
    s = attribution.compare([1.0, 2.0, 3.0], [2.0, 4.0, 7.0])
    assert s["spearman"] == pytest.approx(1.0) and 0.9 < s["pearson"] < 1.0
    assert s["max_abs_err"] == pytest.approx(4.0)
    model, params, _, corr, cache = _setup(attn_only=True)
    with pytest.raises(ValueError, match="ig_steps"):
        attribution.attn_head_out_all_pos(
            model, params, corr, cache, lambda lg: lg.sum(), ig_steps=0
        )


def _ln(x, w, b, eps=1e-5):
    c = x - x.mean(-1, keepdims=True)
    return c / jnp.sqrt((c**2).mean(-1, keepdims=True) + eps) * w + b


def test_edge_attribution_equals_directional_derivative():
    """EAP score(u -> v) = d/de metric(v's input only gets e * (clean_u - corr_u)) at e = 0."""
    model, params, clean, corr, cache = _setup(d_mlp=32)
    p = params["params"]
    metric = lambda lg: jnp.mean(lg[:, -1, 1] - lg[:, -1, 2])  # noqa: E731
    res = attribution.edge_attribution(model, params, corr, cache, metric)
    S, R, snd = res["scores"], res["receivers"], res["senders"]
    assert S.shape == (len(R), len(snd)) and R[-1] == "logits" and snd[0] == "embed"
    assert np.isnan(S[R.index("L0H0.q"), snd.index("L0H1")])  # same layer: not upstream
    _, cc = mj.run(model, params, corr, cache=True)
    W_O = p["blocks_0"]["attn"]["W_O"]
    diff_head = jnp.einsum(
        "bpe,ed->bpd", (cache["blocks.0.attn.hook_z"] - cc["blocks.0.attn.hook_z"])[:, :, 1], W_O[1]
    )
    diff_mlp = cache["blocks.0.hook_mlp_out"] - cc["blocks.0.hook_mlp_out"]

    def q_input(x, eps):  # head 0 of layer 1 reads resid_pre + eps * diff_head
        b1 = p["blocks_1"]
        xin = _ln(cc["blocks.1.hook_resid_pre"] + eps * diff_head, b1["ln1"]["w"], b1["ln1"]["b"])
        q = xin @ b1["attn"]["W_Q"][0] + b1["attn"]["b_Q"][0]  # [batch, pos, d_head]
        return x.at[:, :, 0].set(q)

    def mlp_input(x, eps):  # MLP 1 reads resid_mid + eps * diff_mlp
        b1 = p["blocks_1"]
        xin = _ln(cc["blocks.1.hook_resid_mid"] + eps * diff_mlp, b1["ln2"]["w"], b1["ln2"]["b"])
        h = jax.nn.gelu(xin @ b1["mlp"]["W_in"] + b1["mlp"]["b_in"], approximate=True)
        return h @ b1["mlp"]["W_out"] + b1["mlp"]["b_out"]

    for site, fn, r, s in (
        ("blocks.1.attn.hook_q", q_input, "L1H0.q", "L0H1"),
        ("blocks.1.hook_mlp_out", mlp_input, "MLP1", "MLP0"),
    ):
        d = jax.grad(
            lambda e, site=site, fn=fn: metric(
                mj.run(model, params, corr, interventions=[mj.hook(site, fn, value=e)])[0]
            )
        )(0.0)
        assert abs(float(d)) > 1e-4
        np.testing.assert_allclose(
            S[R.index(r), snd.index(s)], d, rtol=2e-3, atol=1e-5, err_msg=f"{s}->{r}"
        )


@pytest.mark.slow
def test_edge_attribution_ig_runs_vmapped():
    model, params, clean, corr, cache = _setup(d_mlp=32)
    metric = lambda lg: jnp.mean(lg[:, -1, 1] - lg[:, -1, 2])  # noqa: E731
    plain = attribution.edge_attribution(model, params, corr, cache, metric)["scores"]
    ig = attribution.edge_attribution(model, params, corr, cache, metric, ig_steps=3, chunk_size=2)[
        "scores"
    ]
    assert ig.shape == plain.shape
    np.testing.assert_array_equal(np.isnan(ig), np.isnan(plain))
    ok = ~np.isnan(plain)
    assert np.all(np.isfinite(ig[ok])) and np.max(np.abs(ig[ok] - plain[ok])) > 1e-4
