"""Core: sites, interventions as data, host-side errors. Tiny models, named cases."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj

VARIANTS = ["gpt2-tiny", "pythia-tiny", "llama-tiny", "attn-only-2l"]


def _setup(variant, seq=7, batch=3, seed=0, **overrides):
    cfg = mj.TransformerConfig.from_variant(variant, **overrides)
    model = mj.Transformer(cfg)
    params = mj.init(model, jax.random.key(seed))
    # Random LN / bias values so tests don't pass by accident on ones/zeros.
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    params = jax.tree.unflatten(treedef, leaves)
    tokens = jax.random.randint(jax.random.key(seed + 2), (batch, seq), 0, cfg.d_vocab)
    return cfg, model, params, tokens


@pytest.mark.parametrize("variant", VARIANTS)
def test_sites_have_transformerlens_shapes(variant):
    cfg, model, params, tokens = _setup(variant)
    B, P, H, E, D = 3, 7, cfg.n_heads, cfg.head_dim, cfg.d_model
    shapes = mj.site_shapes(model, tokens)
    assert shapes["hook_embed"] == (B, P, D)
    assert shapes["blocks.1.attn.hook_z"] == (B, P, H, E)
    assert shapes["blocks.1.attn.hook_k"] == (B, P, cfg.kv_heads, E)
    assert shapes["blocks.0.attn.hook_pattern"] == (B, H, P, P)
    assert shapes["blocks.0.attn.hook_result"] == (B, P, H, D)
    assert shapes["ln_final.hook_normalized"] == (B, P, D)
    assert shapes["hook_logits"] == (B, P, cfg.d_vocab)
    if not cfg.attn_only:
        assert shapes["blocks.0.mlp.hook_post"] == (B, P, cfg.mlp_dim)
    assert ("blocks.0.hook_resid_mid" in shapes) == (
        not cfg.attn_only and not cfg.parallel_attn_mlp
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_cache_by_name_wildcard_and_predicate(variant):
    _, model, params, tokens = _setup(variant)
    logits0, empty = mj.run(model, params, tokens)
    assert empty == {}
    logits, cache = mj.run(model, params, tokens, cache="blocks.*.attn.hook_z")
    assert sorted(cache) == ["blocks.0.attn.hook_z", "blocks.1.attn.hook_z"]
    np.testing.assert_array_equal(logits, logits0)
    _, cache = mj.run(model, params, tokens, cache=lambda n: n.endswith("hook_resid_post"))
    assert sorted(cache) == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    # hook_result summed over heads plus b_O is exactly what the layer writes.
    _, cache = mj.run(
        model, params, tokens, cache=("blocks.0.attn.hook_result", "blocks.0.hook_attn_out")
    )
    b_O = params["params"]["blocks_0"]["attn"].get("b_O", 0.0)
    np.testing.assert_allclose(
        cache["blocks.0.attn.hook_result"].sum(2) + b_O, cache["blocks.0.hook_attn_out"], atol=1e-5
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_patching_own_cache_changes_nothing(variant):
    _, model, params, tokens = _setup(variant)
    logits, cache = mj.run(model, params, tokens, cache=True)
    ivs = [mj.patch(name, value) for name, value in cache.items()]
    patched, _ = mj.run(model, params, tokens, interventions=ivs)
    np.testing.assert_allclose(patched, logits, atol=1e-5)


def test_zero_ablating_all_heads_leaves_only_output_bias():
    cfg, model, params, tokens = _setup("gpt2-tiny")
    _, cache = mj.run(
        model,
        params,
        tokens,
        cache="blocks.0.hook_attn_out",
        interventions=[mj.ablate("blocks.0.attn.hook_z")],
    )
    b_O = params["params"]["blocks_0"]["attn"]["b_O"]
    out = cache["blocks.0.hook_attn_out"]
    np.testing.assert_allclose(out, jnp.broadcast_to(b_O, out.shape), atol=1e-6)
    assert float(jnp.abs(b_O).max()) > 0  # the check above would be vacuous with a zero bias


def test_patching_one_head_changes_only_that_head_in_its_layer():
    cfg, model, params, tokens = _setup("gpt2-tiny")
    corrupt = (tokens + 1) % cfg.d_vocab
    _, clean = mj.run(model, params, tokens, cache="blocks.1.attn.hook_z")
    _, base = mj.run(model, params, corrupt, cache="blocks.1.attn.hook_z")
    _, patched = mj.run(
        model,
        params,
        corrupt,
        cache="blocks.1.attn.hook_z",
        interventions=[mj.patch("blocks.1.attn.hook_z", clean["blocks.1.attn.hook_z"], heads=[2])],
    )
    z, z0, zc = (c["blocks.1.attn.hook_z"] for c in (patched, base, clean))
    np.testing.assert_array_equal(z[:, :, 2], zc[:, :, 2])
    others = [h for h in range(cfg.n_heads) if h != 2]
    np.testing.assert_array_equal(z[:, :, others], z0[:, :, others])
    assert not np.allclose(z0[:, :, 2], zc[:, :, 2])


def test_clamped_pattern_is_exactly_the_clamp():
    cfg, model, params, tokens = _setup("attn-only-2l", seq=6)
    P = tokens.shape[1]
    prev = jnp.eye(P, k=-1).at[0, 0].set(1.0)  # [q_pos, k_pos]: attend to the previous token
    site = "blocks.0.attn.hook_pattern"
    _, cache = mj.run(
        model, params, tokens, cache=site, interventions=[mj.clamp(site, prev, heads=[0, 3])]
    )
    pat = cache[site]
    np.testing.assert_array_equal(pat[:, 0], jnp.broadcast_to(prev, pat[:, 0].shape))
    np.testing.assert_array_equal(pat[:, 3], jnp.broadcast_to(prev, pat[:, 3].shape))
    assert not np.allclose(pat[:, 1], prev)


def test_clamp_with_elementwise_mask_and_positions():
    _, model, params, tokens = _setup("attn-only-2l", seq=6)
    site = "blocks.1.hook_resid_pre"
    _, base = mj.run(model, params, tokens, cache=site)
    mask = jnp.zeros(64, bool).at[:5].set(True)
    _, cache = mj.run(
        model,
        params,
        tokens,
        cache=site,
        interventions=[mj.clamp(site, 3.0, positions=[1, 4], mask=mask)],
    )
    x, x0 = cache[site], base[site]
    np.testing.assert_array_equal(x[:, [1, 4], :5], 3.0)
    np.testing.assert_array_equal(x[:, [1, 4], 5:], x0[:, [1, 4], 5:])
    np.testing.assert_array_equal(x[:, [0, 2, 3, 5]], x0[:, [0, 2, 3, 5]])


def test_index_and_mask_selections_agree():
    cfg, model, params, tokens = _setup("llama-tiny")
    site = "blocks.0.attn.hook_z"
    val = jnp.ones((tokens.shape[0], tokens.shape[1], cfg.n_heads, cfg.head_dim))
    a, _ = mj.run(
        model, params, tokens, interventions=[mj.patch(site, val, heads=[1], positions=[2, 3])]
    )
    hm = jnp.zeros(cfg.n_heads, bool).at[1].set(True)
    pm = jnp.zeros(tokens.shape[1], bool).at[2:4].set(True)
    b, _ = mj.run(
        model, params, tokens, interventions=[mj.patch(site, val, heads=hm, positions=pm)]
    )
    np.testing.assert_array_equal(a, b)
    c, _ = mj.run(
        model,
        params,
        tokens,
        interventions=[mj.patch(site, val, heads=hm.astype(jnp.float32), positions=pm)],
    )
    np.testing.assert_allclose(a, c, atol=1e-5)


def test_mean_ablation_and_neuron_selection():
    cfg, model, params, tokens = _setup("gpt2-tiny")
    site = "blocks.0.mlp.hook_post"
    _, base = mj.run(model, params, tokens, cache=site)
    _, cache = mj.run(
        model,
        params,
        tokens,
        cache=site,
        interventions=[mj.ablate(site, neurons=[0, 5], method="mean")],
    )
    x, x0 = cache[site], base[site]
    np.testing.assert_allclose(
        x[..., [0, 5]], jnp.broadcast_to(x0[..., [0, 5]].mean(0), x[..., [0, 5]].shape), atol=1e-6
    )
    np.testing.assert_array_equal(x[..., 1:5], x0[..., 1:5])
    given = jnp.full((cfg.mlp_dim,), 0.25)
    _, cache = mj.run(
        model,
        params,
        tokens,
        cache=site,
        interventions=[mj.ablate(site, neurons=[3], method="mean", mean=given)],
    )
    np.testing.assert_array_equal(cache[site][..., 3], 0.25)


def test_interventions_compose_in_order_at_one_site():
    _, model, params, tokens = _setup("attn-only-2l")
    site = "blocks.0.hook_resid_post"
    vec = jnp.arange(64, dtype=jnp.float32)
    _, cache = mj.run(
        model,
        params,
        tokens,
        cache=site,
        interventions=[mj.clamp(site, 1.0), mj.steer(site, vec, scale=2.0)],
    )
    np.testing.assert_allclose(cache[site], jnp.broadcast_to(1.0 + 2.0 * vec, cache[site].shape))
    _, cache = mj.run(
        model,
        params,
        tokens,
        cache=site,
        interventions=[mj.steer(site, vec, scale=2.0), mj.clamp(site, 1.0)],
    )
    np.testing.assert_array_equal(cache[site], 1.0)


def test_wildcard_intervention_hits_every_layer():
    _, model, params, tokens = _setup("attn-only-2l")
    _, cache = mj.run(
        model,
        params,
        tokens,
        cache="blocks.*.attn.hook_z",
        interventions=[mj.ablate("blocks.*.attn.hook_z", heads=[7])],
    )
    for layer in range(2):
        np.testing.assert_array_equal(cache[f"blocks.{layer}.attn.hook_z"][:, :, 7], 0.0)


def test_steering_positions_only():
    _, model, params, tokens = _setup("gpt2-tiny")
    site = "blocks.1.hook_resid_pre"
    _, base = mj.run(model, params, tokens, cache=site)
    vec = jnp.ones(64)
    _, cache = mj.run(
        model,
        params,
        tokens,
        cache=site,
        interventions=[mj.steer(site, vec, scale=0.5, positions=[-1])],
    )
    np.testing.assert_allclose(cache[site][:, -1], base[site][:, -1] + 0.5, atol=1e-6)
    np.testing.assert_array_equal(cache[site][:, :-1], base[site][:, :-1])


def test_user_function_escape_hatch():
    _, model, params, tokens = _setup("gpt2-tiny")
    site = "blocks.0.hook_attn_out"
    _, base = mj.run(model, params, tokens, cache=site)

    def double_plus(x, c):
        return 2 * x + c

    _, cache = mj.run(
        model,
        params,
        tokens,
        cache=site,
        interventions=[mj.hook(site, double_plus, value=jnp.float32(1.0), positions=[0])],
    )
    np.testing.assert_allclose(cache[site][:, 0], 2 * base[site][:, 0] + 1, atol=1e-5)
    np.testing.assert_array_equal(cache[site][:, 1:], base[site][:, 1:])


def test_one_compilation_serves_every_steering_vector():
    _, model, params, tokens = _setup("gpt2-tiny")

    @jax.jit
    @chex.assert_max_traces(n=1)
    def steered(vec):
        return mj.run(
            model, params, tokens, interventions=[mj.steer("blocks.0.hook_resid_post", vec)]
        )[0]

    outs = [steered(jax.random.normal(jax.random.key(i), (64,))) for i in range(5)]
    assert not np.allclose(outs[0], outs[1])


def test_changing_head_mask_or_gate_does_not_retrace():
    cfg, model, params, tokens = _setup("attn-only-2l")

    @jax.jit
    @chex.assert_max_traces(n=1)
    def ablated(mask, on):
        return mj.run(
            model,
            params,
            tokens,
            interventions=[mj.ablate("blocks.1.attn.hook_z", heads=mask).when(on)],
        )[0]

    for h in range(cfg.n_heads):
        ablated(jax.nn.one_hot(h, cfg.n_heads) > 0, jnp.array(h % 2 == 0))


def test_vmap_over_values_equals_python_loop():
    cfg, model, params, tokens = _setup("gpt2-tiny")
    vecs = jax.random.normal(jax.random.key(3), (4, cfg.d_model))
    masks = jax.nn.one_hot(jnp.arange(cfg.n_heads), cfg.n_heads) > 0

    def steered(v):
        return mj.run(
            model, params, tokens, interventions=[mj.steer("blocks.1.hook_resid_pre", v)]
        )[0]

    def head_ablated(m):
        return mj.run(
            model, params, tokens, interventions=[mj.ablate("blocks.0.attn.hook_z", heads=m)]
        )[0]

    np.testing.assert_allclose(
        jax.vmap(steered)(vecs), jnp.stack([steered(v) for v in vecs]), atol=1e-5
    )
    looped = jnp.stack(
        [
            mj.run(
                model, params, tokens, interventions=[mj.ablate("blocks.0.attn.hook_z", heads=[h])]
            )[0]
            for h in range(cfg.n_heads)
        ]
    )
    np.testing.assert_allclose(jax.vmap(head_ablated)(masks), looped, atol=1e-5)


def test_gradients_flow_around_a_clamp():
    cfg, model, params, tokens = _setup("attn-only-2l")

    def loss(p, value):
        logits, _ = mj.run(
            model, p, tokens, interventions=[mj.clamp("blocks.0.hook_resid_post", value)]
        )
        return jax.nn.logsumexp(logits, -1).mean()

    value = jnp.zeros((3, 7, cfg.d_model))
    g = jax.grad(loss)(params, value)["params"]
    # Everything upstream of a fully clamped residual gets no gradient; downstream does.
    assert float(jnp.abs(g["blocks_0"]["attn"]["W_Q"]).max()) == 0.0
    assert float(jnp.abs(g["W_E"]).max()) == 0.0
    assert float(jnp.abs(g["blocks_1"]["attn"]["W_V"]).max()) > 0.0
    assert float(jnp.abs(jax.grad(loss, argnums=1)(params, value)).max()) > 0.0


def test_mixed_token_and_vector_inputs():
    cfg = mj.TransformerConfig.from_variant(
        "attn-only-2l", d_input=5, d_vocab=4, positional_embedding_type="rotary"
    )
    model = mj.Transformer(cfg)
    is_vec = jnp.array([[True, False, True, False, True]])
    inputs = {
        "tokens": jnp.array([[0, 2, 0, 3, 0]]),
        "vectors": jnp.ones((1, 5, 5)),
        "is_vector": is_vec,
    }
    params = mj.init(model, jax.random.key(0), inputs)
    _, cache = mj.run(model, params, inputs, cache="hook_embed")
    emb = cache["hook_embed"][0]
    p = params["params"]
    np.testing.assert_allclose(emb[1], p["W_E"][2], atol=1e-6)
    np.testing.assert_allclose(emb[0], jnp.ones(5) @ p["W_vec"] + p["b_vec"], atol=1e-5)
    logits, _ = mj.run(model, params, jnp.ones((2, 3, 5)))
    assert logits.shape == (2, 3, 4)


def test_bf16_activations_keep_softmax_in_fp32():
    _, model, params, tokens = _setup("llama-tiny", dtype="bfloat16")
    logits, cache = mj.run(model, params, tokens, cache="blocks.0.attn.hook_pattern")
    assert logits.dtype == jnp.bfloat16
    assert cache["blocks.0.attn.hook_pattern"].dtype == jnp.bfloat16
    ref, _ = mj.run(*_setup("llama-tiny")[1:3], tokens)
    assert float(jnp.abs(logits.astype(jnp.float32) - ref).max()) < 0.1


def test_attention_mask_blocks_padding_keys():
    _, model, params, tokens = _setup("gpt2-tiny", seq=5, batch=2)
    mask = jnp.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    _, cache = mj.run(
        model, params, tokens, attention_mask=mask, cache="blocks.0.attn.hook_pattern"
    )
    pat = cache["blocks.0.attn.hook_pattern"]
    np.testing.assert_array_equal(pat[1, :, :, 3:], 0.0)
    np.testing.assert_allclose(pat.sum(-1), 1.0, atol=1e-5)


def test_document_mask_packs_documents_like_separate_runs():
    # two documents in one row behind mj.document_mask give each document's own logits:
    # RoPE sees only relative positions, so the second document's offset does not matter
    _, model, params, _ = _setup("llama-tiny")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 100, (1, 4)), rng.integers(0, 100, (1, 6))
    row = jnp.asarray(np.concatenate([a, b], 1))
    seg = jnp.asarray([[0] * 4 + [1] * 6])
    mask = mj.document_mask(seg)
    assert mask.shape == (1, 10, 10) and not bool(mask[0, 5, 2]) and bool(mask[0, 5, 4])
    packed, _ = mj.run(model, params, row, attention_mask=mask)
    la, _ = mj.run(model, params, jnp.asarray(a))
    lb, _ = mj.run(model, params, jnp.asarray(b))
    np.testing.assert_allclose(packed[:, :4], la, atol=1e-4)
    np.testing.assert_allclose(packed[:, 4:], lb, atol=1e-4)
    unmasked, _ = mj.run(model, params, row)
    assert float(jnp.abs(unmasked[:, 4:] - lb).max()) > 1e-3  # the mask is what separates them


def test_attention_mask_of_wrong_shape_is_rejected_with_valid_shapes():
    _, model, params, tokens = _setup("gpt2-tiny", seq=5, batch=2)
    with pytest.raises(
        ValueError, match=r"attention_mask has shape \(2, 4\).*\(2, 5\).*\(2, 5, 5\)"
    ):
        mj.run(model, params, tokens, attention_mask=jnp.ones((2, 4)))


# --- errors on the host, before tracing ------------------------------------------------------


def test_unknown_site_names_the_closest_valid_ones():
    _, model, params, tokens = _setup("gpt2-tiny")
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.hook_z"):
        mj.run(model, params, tokens, interventions=[mj.ablate("blocks.0.attn.hook_zz")])
    with pytest.raises(ValueError, match=r"matches no site.*blocks\.1\.hook_resid_post"):
        mj.run(model, params, tokens, cache="blocks.1.hook_resid_pots")


def test_wrong_value_shape_names_site_expected_and_got():
    _, model, params, tokens = _setup("gpt2-tiny")
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.hook_z.*\(3, 7, 4, 16\).*\(3, 7, 16\)"):
        mj.run(
            model,
            params,
            tokens,
            interventions=[mj.patch("blocks.0.attn.hook_z", jnp.zeros((3, 7, 16)))],
        )


def test_head_and_position_out_of_range():
    _, model, params, tokens = _setup("gpt2-tiny")
    with pytest.raises(ValueError, match=r"head index \[4\] out of range; valid heads are 0\.\.3"):
        mj.run(model, params, tokens, interventions=[mj.ablate("blocks.0.attn.hook_z", heads=[4])])
    with pytest.raises(ValueError, match=r"pos index \[9\] out of range"):
        mj.run(
            model, params, tokens, interventions=[mj.ablate("blocks.0.hook_resid_pre", positions=9)]
        )
    with pytest.raises(ValueError, match=r"head mask has shape \(3,\), expected \(4,\)"):
        mj.run(
            model,
            params,
            tokens,
            interventions=[mj.ablate("blocks.0.attn.hook_z", heads=jnp.ones(3, bool))],
        )
    with pytest.raises(ValueError, match=r"has no head axis"):
        mj.run(
            model, params, tokens, interventions=[mj.ablate("blocks.0.hook_resid_pre", heads=[0])]
        )


def test_token_id_outside_vocab():
    cfg, model, params, tokens = _setup("gpt2-tiny")
    with pytest.raises(ValueError, match=r"token id 512 is outside the vocabulary \[0, 512\)"):
        mj.run(model, params, tokens.at[0, 0].set(cfg.d_vocab))
    with pytest.raises(ValueError, match="exceeds the model's n_ctx"):
        mj.run(model, params, jnp.zeros((1, cfg.n_ctx + 1), jnp.int32))


def test_bad_config_and_constructor_arguments():
    with pytest.raises(ValueError, match="act_fn='swish'.*gelu_new"):
        mj.TransformerConfig(d_model=8, n_layers=1, n_heads=2, d_vocab=5, act_fn="swish")
    with pytest.raises(ValueError, match="Unknown variant"):
        mj.TransformerConfig.from_variant("gpt5")
    with pytest.raises(ValueError, match="method must be 'zero' or 'mean'"):
        mj.ablate("hook_embed", method="resample")
    with pytest.raises(TypeError, match="heads="):
        mj.ablate("blocks.0.attn.hook_z", heads=[0.5])


def test_any_head_module_replaces_the_unembedding():
    import flax.linen as nn

    class TwoWayHead(nn.Module):
        """Classifies from the last position; its own site is named like any other."""

        @nn.compact
        def __call__(self, resid, hooks=mj.hooks.NO_HOOKS):
            out = nn.Dense(2, name="proj")(resid[:, -1])  # [batch, 2]
            return hooks("head.hook_out", out, ("batch", "class"))

    cfg = mj.TransformerConfig.from_variant("attn-only-2l")
    model = mj.Transformer(cfg, head=TwoWayHead())
    params = mj.init(model, jax.random.key(0))
    assert "W_U" not in params["params"] and "head" in params["params"]
    tokens = jnp.zeros((3, 5), jnp.int32)
    out, cache = mj.run(
        model,
        params,
        tokens,
        cache="head.hook_out",
        interventions=[mj.clamp("head.hook_out", jnp.array([1.0, -1.0]))],
    )
    assert out.shape == (3, 2)
    np.testing.assert_array_equal(
        cache["head.hook_out"], jnp.broadcast_to(jnp.array([1.0, -1.0]), (3, 2))
    )
