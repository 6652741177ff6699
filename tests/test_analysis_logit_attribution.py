"""Logit attribution: decompositions sum to the logits; logit lens ends at the logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax.analysis import logit_attribution as la

ARCHS = {
    "gpt2": dict(),
    "rms_rotary_tied": dict(
        normalization_type="RMS",
        positional_embedding_type="rotary",
        tie_embeddings=True,
        unembed_bias=False,
    ),
}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_dla_sums_to_logit_difference(arch):
    cfg = mj.TransformerConfig(
        d_model=16, n_layers=2, n_heads=4, d_vocab=13, n_ctx=8, d_mlp=32, **ARCHS[arch]
    )
    model = mj.Transformer(cfg)
    params = mj.init(model, jax.random.key(0))
    # Nonzero biases / norm params, so the constants are exercised.
    params = jax.tree.map(
        lambda x: x + 0.3 * jax.random.normal(jax.random.key(x.size), x.shape), params
    )
    tokens = jax.random.randint(jax.random.key(1), (3, 6), 0, 13)
    logits, cache = mj.run(model, params, tokens, cache=True)
    good, bad = jnp.array([1, 2, 3]), jnp.array([4, 5, 6])
    dla = la.direct_logit_attribution(model, params, cache, good, bad, pos=-1)
    assert dla["heads"].shape == (2, 4, 3) and dla["mlps"].shape == (2, 3)
    total = (
        dla["heads"].sum((0, 1))
        + dla["attn_bias"].sum(0)
        + dla["mlps"].sum(0)
        + dla["embed"]
        + dla["constant"]
    )
    want = logits[jnp.arange(3), -1, good] - logits[jnp.arange(3), -1, bad]
    np.testing.assert_allclose(total, want, atol=1e-4, rtol=1e-4)

    lens, labels = la.logit_lens(model, params, cache)
    assert labels == ["0_pre", "1_pre", "final_post"] and lens.shape == (3, 3, 6, 13)
    np.testing.assert_allclose(lens[-1], logits, atol=1e-4, rtol=1e-4)


def test_stacks_match_cache():
    model = mj.Transformer(
        mj.TransformerConfig.from_variant("gpt2-tiny", d_model=16, d_vocab=13, n_heads=2)
    )
    params = jax.tree.map(lambda x: x + 0.1, mj.init(model, jax.random.key(0)))
    tokens = jax.random.randint(jax.random.key(1), (2, 5), 0, 13)
    _, cache = mj.run(model, params, tokens, cache=True)
    heads, labels = la.stacked_head_results(model, params, cache)
    assert labels[:3] == ["L0H0", "L0H1", "L1H0"] and heads.shape == (4, 2, 5, 16)
    b_O = params["params"]["blocks_1"]["attn"]["b_O"]
    np.testing.assert_allclose(heads[2:].sum(0) + b_O, cache["blocks.1.hook_attn_out"], atol=1e-5)
    parts, labels = la.decompose_resid(model, cache)
    assert labels == ["embed", "pos_embed", "0_attn_out", "0_mlp_out", "1_attn_out", "1_mlp_out"]
    np.testing.assert_allclose(parts.sum(0), cache["blocks.1.hook_resid_post"], atol=1e-5)
    acc, labels = la.accumulated_resid(model, cache, layer=1, incl_mid=True, pos_slice=-1)
    assert labels == ["0_pre", "0_mid"] and acc.shape == (2, 2, 1, 16)
    # TL semantics: centred and divided by the scale of the stream it feeds (here ln1 of layer 1).
    ln = la.apply_ln_to_stack(model, acc, cache, layer=1, pos_slice=-1)
    x = acc - acc.mean(-1, keepdims=True)
    np.testing.assert_allclose(ln, x / cache["blocks.1.ln1.hook_scale"][:, -1:], atol=1e-6)
    with pytest.raises(ValueError, match="hook_mlp_out"):
        la.decompose_resid(model, {k: v for k, v in cache.items() if "mlp_out" not in k})
