"""mj.EncoderDecoder: cross-attention sites, patching, sweeps over both stacks, learned
queries, post-norm, resume, and host-side input errors. Tiny random models."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax.analysis import patching
from mechjax.models import axes as A

run_mod = importlib.import_module("mechjax.run")

B, N_ENC, N_DEC, V = 2, 6, 5, 13


def _cfg(**kw):
    base = dict(
        d_model=16,
        n_encoder_layers=2,
        n_decoder_layers=2,
        n_heads=4,
        d_mlp=32,
        d_vocab=V,
        n_ctx=8,
        name="t",
    )
    base.update(kw)
    return mj.EncoderDecoderConfig(**base)


def _setup(seed=0, **kw):
    model = mj.EncoderDecoder(_cfg(**kw))
    params = mj.init(model, jax.random.key(seed))
    # Random norm / bias values and larger matrices than the init, so patches move the
    # outputs visibly and nothing passes by accident on ones / zeros.
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [
        (x * 4.0 if x.ndim >= 2 else x) + 0.1 * jax.random.normal(k, x.shape)
        for x, k in zip(leaves, keys)
    ]
    return model, jax.tree.unflatten(treedef, leaves)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    dec = rng.integers(0, V, (B, N_DEC)).astype(np.int32)
    clean = {"encoder": rng.integers(0, V, (B, N_ENC)).astype(np.int32), "decoder": dec}
    # Corrupted: another encoder input, the same decoder tokens.
    corrupt = {"encoder": rng.integers(0, V, (B, N_ENC)).astype(np.int32), "decoder": dec}
    return clean, corrupt


def _metric(logits):
    return jnp.mean(logits[:, -1, 3] - logits[:, -1, 5]) + 0.1 * jnp.mean(logits[:, 1, 7])


def _oh(n, i):
    """Bool one-hot mask: a leaf, so the naive loop compiles once, not once per head."""
    m = np.zeros(n, bool)
    m[i] = True
    return m


def test_cross_attention_pattern_sites_and_axes():
    model, params = _setup()
    clean, _ = _inputs()
    site = "decoder.blocks.1.cross_attn.hook_pattern"
    logits, cache = mj.run(model, params, clean, cache=site)
    assert logits.shape == (B, N_DEC, V)
    pat = np.asarray(cache[site])
    assert pat.shape == (B, 4, N_DEC, N_ENC)  # [batch, head, q_pos (decoder), k_pos (encoder)]
    np.testing.assert_allclose(pat.sum(-1), 1.0, atol=1e-5)
    assert np.triu(pat[0, 0], 1).max() > 1e-3  # cross-attention is not causal
    assert mj.site_axes(model, site) == A.PATTERN == ("batch", "head", "q_pos", "k_pos")
    assert mj.site_axes(model, "decoder.blocks.0.cross_attn.hook_k") == A.KV
    assert mj.site_axes(model, "hook_logits") == A.LOGITS
    shapes = mj.site_shapes(model, clean)
    assert shapes["decoder.blocks.0.cross_attn.hook_q"] == (B, N_DEC, 4, 4)
    assert shapes["decoder.blocks.0.cross_attn.hook_k"] == (B, N_ENC, 4, 4)
    assert shapes["decoder.blocks.0.cross_attn.hook_result"] == (B, N_DEC, 4, 16)
    assert shapes["decoder.blocks.0.attn.hook_pattern"] == (B, 4, N_DEC, N_DEC)
    assert shapes["encoder.blocks.1.attn.hook_pattern"] == (B, 4, N_ENC, N_ENC)
    assert shapes["encoder.hook_out"] == (B, N_ENC, 16)
    for s in ("hook_resid_mid", "hook_cross_attn_out", "hook_resid_cross", "hook_resid_post"):
        assert shapes[f"decoder.blocks.1.{s}"] == (B, N_DEC, 16)
    # The decoder's self-attention is causal.
    _, cache = mj.run(model, params, clean, cache="decoder.blocks.0.attn.hook_pattern")
    assert np.triu(np.asarray(cache["decoder.blocks.0.attn.hook_pattern"]), 1).max() == 0.0


def test_encoder_padding_masks_cross_attention_keys():
    model, params = _setup()
    clean, _ = _inputs()
    mask = np.ones((B, N_ENC), np.int32)
    mask[1, 4:] = 0
    sites = ("decoder.blocks.*.cross_attn.hook_pattern", "encoder.blocks.0.attn.hook_pattern")
    _, cache = mj.run(model, params, clean, cache=sites, attention_mask={"encoder": mask})
    for name in ("decoder.blocks.0.cross_attn.hook_pattern", "encoder.blocks.0.attn.hook_pattern"):
        pat = np.asarray(cache[name])
        np.testing.assert_array_equal(pat[1, :, :, 4:], 0.0)
        np.testing.assert_allclose(pat.sum(-1), 1.0, atol=1e-5)
    # Padding changes nothing for the unpadded row; the decoder mask composes with causality.
    full, _ = mj.run(model, params, clean)
    masked, _ = mj.run(model, params, clean, attention_mask={"encoder": mask})
    np.testing.assert_allclose(masked[0], full[0], atol=1e-5)
    assert not np.allclose(masked[1], full[1])
    dmask = np.ones((B, N_DEC), np.int32)
    dmask[0, 3:] = 0
    site = "decoder.blocks.0.attn.hook_pattern"
    _, cache = mj.run(model, params, clean, cache=site, attention_mask={"decoder": dmask})
    pat = np.asarray(cache[site])
    np.testing.assert_array_equal(pat[0, :, :, 3:], 0.0)
    np.testing.assert_allclose(pat.sum(-1), 1.0, atol=1e-5)


def test_patching_one_cross_attention_head_changes_only_later_positions():
    model, params = _setup()
    clean, corrupt = _inputs()
    site, head, start = "decoder.blocks.0.cross_attn.hook_z", 1, 2
    _, c_clean = mj.run(model, params, clean, cache=site)
    base, c_base = mj.run(model, params, corrupt, cache=site)
    later = list(range(start, N_DEC))
    patched, c_pat = mj.run(
        model,
        params,
        corrupt,
        cache=site,
        interventions=[mj.patch(site, c_clean[site], heads=[head], positions=later)],
    )
    z, z0, zc = (np.asarray(c[site]) for c in (c_pat, c_base, c_clean))
    np.testing.assert_array_equal(z[:, later, head], zc[:, later, head])
    np.testing.assert_array_equal(z[:, :start], z0[:, :start])
    others = [h for h in range(4) if h != head]
    np.testing.assert_array_equal(z[:, :, others], z0[:, :, others])
    # The decoder is causal: logits before `start` cannot change, every later one does.
    np.testing.assert_array_equal(patched[:, :start], base[:, :start])
    diff = np.abs(np.asarray(patched) - np.asarray(base)).max(axis=(0, 2))  # per position
    assert (diff[start:] > 1e-4).all(), diff


def _naive(model, params, inputs, cache, template, n_layers, n, build, mask=None):
    out = np.zeros((n_layers, n))
    before = run_mod._forward_jit._cache_size()
    for layer in range(n_layers):
        name = template.format(layer)
        for i in range(n):
            logits, _ = mj.run(
                model,
                params,
                inputs,
                interventions=[build(name, cache[name], i)],
                attention_mask=mask,
            )
            out[layer, i] = float(_metric(logits))
    # bool masks are leaves: one compile per site (layer), never one per head / position
    assert run_mod._forward_jit._cache_size() - before <= n_layers
    return out


@pytest.mark.parametrize(
    "stack, site, template",
    [
        ("decoder.blocks", "cross_z", "decoder.blocks.{}.cross_attn.hook_z"),
        ("encoder.blocks", "z", "encoder.blocks.{}.attn.hook_z"),
    ],
)
def test_head_sweep_equals_loop_of_single_patches(stack, site, template):
    model, params = _setup()
    clean, corrupt = _inputs()
    _, cache = mj.run(model, params, clean, cache=True)
    metric = lambda lg: _metric(lg)  # noqa: E731  (a fresh function: a fresh jit cache entry)
    compiled = patching._sweep._cache_size()
    got = np.asarray(
        patching.activation_patch(
            model, params, corrupt, cache, metric, site, ("head",), stack=stack
        )
    )
    assert patching._sweep._cache_size() == compiled + 1  # the whole sweep is one program
    want = _naive(
        model,
        params,
        corrupt,
        cache,
        template,
        2,
        4,
        lambda n, v, i: mj.patch(n, v, heads=_oh(v.shape[2], i)),
    )
    assert got.shape == (2, 4)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
    assert np.ptp(want) > 1e-3  # the patches do something, so equality is informative
    # Other clean values: the same compiled sweep, no retrace.
    _, cache2 = mj.run(model, params, _inputs(seed=5)[0], cache=True)
    again = patching.activation_patch(
        model, params, corrupt, cache2, metric, site, ("head",), stack=stack
    )
    assert patching._sweep._cache_size() == compiled + 1
    assert not np.allclose(again, got)


@pytest.mark.slow  # 22 naive forwards, 4 compiles
def test_position_sweeps_with_padding_equal_loops():
    """Encoder resid_pre by position and the decoder's resid_cross (a template) by position,
    under an encoder padding mask."""
    model, params = _setup()
    clean, corrupt = _inputs()
    mask = {"encoder": np.array([[1] * N_ENC, [1] * 4 + [0] * (N_ENC - 4)], np.int32)}
    _, cache = mj.run(model, params, clean, cache=True, attention_mask=mask)
    for site, stack, template, n in (
        ("resid_pre", "encoder.blocks", "encoder.blocks.{}.hook_resid_pre", N_ENC),
        ("decoder.blocks.{}.hook_resid_cross", None, "decoder.blocks.{}.hook_resid_cross", N_DEC),
    ):
        got = patching.activation_patch(
            model, params, corrupt, cache, _metric, site, ("pos",), stack=stack, attention_mask=mask
        )
        want = _naive(
            model,
            params,
            corrupt,
            cache,
            template,
            2,
            n,
            lambda nm, v, i: mj.patch(nm, v, positions=_oh(v.shape[1], i)),
            mask=mask,
        )
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5, err_msg=site)
        assert np.ptp(want) > 1e-3, site


def test_resume_from_every_layer_equals_full_forward():
    model, params = _setup()
    clean, _ = _inputs()
    mask = {"encoder": np.array([[1] * N_ENC, [1] * 3 + [0] * (N_ENC - 3)], np.int32)}
    full, cache = mj.run(model, params, clean, cache=True, attention_mask=mask)
    for st in model.layer_stacks():
        for layer in range(st.n_layers):
            state = {n: cache[n] for n in model.resume_sites(st.prefix, layer)}
            out = model.apply(
                params, clean, state, attention_mask=mask, stack=st.prefix, layer=layer,
                method="resume",
            )  # fmt: skip
            np.testing.assert_allclose(out, full, atol=1e-5, err_msg=f"{st.prefix}.{layer}")
    state = {n: cache[n] for n in model.resume_sites("decoder.blocks", 1)}
    out = model.apply(
        params, clean, state, attention_mask=mask, stack="decoder.blocks", layer=1,
        positions=(4, 1), method="resume",
    )  # fmt: skip
    np.testing.assert_allclose(out, full[:, [4, 1]], atol=1e-5)
    assert model.resume_sites("decoder.blocks", 1) == (
        "decoder.blocks.1.hook_resid_pre",
        "encoder.hook_out",
    )
    with pytest.raises(ValueError, match="no layer stack 'blocks'"):
        model.resume_sites("blocks", 0)


def test_layer_stacks_and_readout():
    model, params = _setup()
    enc, dec = model.layer_stacks()
    assert (enc.prefix, enc.attn, enc.n_layers) == ("encoder.blocks", ("attn",), 2)
    assert (dec.prefix, dec.attn, dec.n_heads) == ("decoder.blocks", ("attn", "cross_attn"), 4)
    assert not dec.post_norm
    r = model.readout()
    assert (r.stack, r.norm, r.site) == ("decoder.blocks", "decoder.ln_final", "hook_logits")
    clean, _ = _inputs()
    logits, cache = mj.run(model, params, clean, cache="decoder.hook_out")
    W, b = model.readout_weights(params)
    np.testing.assert_allclose(cache["decoder.hook_out"] @ W + b, logits, atol=1e-4)
    tied, tparams = _setup(tie_embeddings=True, unembed_bias=False)
    W, b = tied.readout_weights(tparams)
    np.testing.assert_array_equal(W, tparams["params"]["W_E"].T)
    assert b is None and "W_U" not in tparams["params"]


def test_learned_queries_mode():
    model, params = _setup(n_queries=3, d_vocab=0, d_input=6, d_vocab_out=5)
    x = np.random.default_rng(0).normal(size=(B, N_ENC, 6)).astype(np.float32)
    inputs = {"encoder": x}
    sites = ("decoder.blocks.*.attn.hook_pattern", "decoder.blocks.1.cross_attn.hook_pattern")
    out, cache = mj.run(model, params, inputs, cache=sites + ("decoder.hook_embed",))
    assert out.shape == (B, 3, 5)  # [batch, n_queries, d_vocab_out]
    assert cache["decoder.blocks.1.cross_attn.hook_pattern"].shape == (B, 4, 3, N_ENC)
    self_pat = np.asarray(cache["decoder.blocks.0.attn.hook_pattern"])
    assert self_pat.shape == (B, 4, 3, 3) and np.triu(self_pat, 1).max() > 1e-3  # non-causal
    np.testing.assert_array_equal(  # every example starts from the same learned queries
        cache["decoder.hook_embed"][0], cache["decoder.hook_embed"][1]
    )
    assert "decoder.hook_pos_embed" not in mj.site_names(model)
    # Sweeps work the same way (the queries are recomputed from params when resuming).
    _, c2 = mj.run(model, params, {"encoder": x[::-1]}, cache=True)
    res = patching.activation_patch(
        model, params, inputs, c2, lambda lg: lg[:, :, 0].sum(), "cross_z", ("head",)
    )
    assert res.shape == (2, 4)
    # d_vocab_out=0: the decoder's final query stream.
    bare, bparams = _setup(n_queries=3, d_vocab=0, d_input=6, d_vocab_out=0)
    out, _ = mj.run(bare, bparams, inputs)
    assert out.shape == (B, 3, 16) and bare.readout_weights(bparams) is None
    with pytest.raises(ValueError, match="takes no decoder inputs"):
        mj.run(model, params, {"encoder": x, "decoder": np.zeros((B, 2), np.int32)})
    with pytest.raises(ValueError, match="learned queries"):
        mj.run(model, params, inputs, attention_mask={"decoder": np.ones((B, 3))})


def test_post_norm_cross_first_and_mixed_encoder_inputs():
    model, params = _setup(norm_position="post", cross_attn_first=True, d_input=3, pos_offset=2)
    assert model.cfg.has_final_norm is False
    assert all(s.post_norm for s in model.layer_stacks()) and model.readout().norm is None
    rng = np.random.default_rng(1)
    enc = {
        "tokens": rng.integers(0, V, (B, N_ENC)).astype(np.int32),
        "vectors": rng.normal(size=(B, N_ENC, 3)).astype(np.float32),
        "is_vector": np.arange(N_ENC)[None].repeat(B, 0) < 2,
    }
    enc["tokens"][:, :2] = 999  # ignored where is_vector (not checked against the vocabulary)
    inputs = {"encoder": enc, "decoder": rng.integers(0, V, (B, N_DEC)).astype(np.int32)}
    out, cache = mj.run(model, params, inputs, cache=True)
    assert out.shape == (B, N_DEC, V)
    names = list(mj.site_names(model, inputs))
    assert "decoder.ln_final.hook_scale" not in names and "encoder.blocks.0.ln1.hook_scale" in names
    for st in ("encoder.blocks", "decoder.blocks"):
        np.testing.assert_array_equal(
            cache[f"{st}.0.hook_resid_post"], cache[f"{st}.1.hook_resid_pre"]
        )
    # Post-norm: each resid site is a normed stream (mean 0 before the LN's w, b).
    x = cache["decoder.blocks.0.ln_cross.hook_normalized"]
    np.testing.assert_allclose(np.asarray(x).mean(-1), 0.0, atol=1e-5)
    # The stream runs through W_pos[2:] (pos_offset) and both streams share W_E.
    W_pos = params["params"]["decoder"]["W_pos"]
    assert W_pos.shape == (8 + 2, 16)
    np.testing.assert_allclose(cache["decoder.hook_pos_embed"][0], W_pos[2 : 2 + N_DEC])


def test_config_validation_and_round_trip():
    cfg = _cfg(norm_position="post", pos_offset=2, n_queries=0, d_input=4)
    assert mj.EncoderDecoderConfig.from_dict(cfg.to_dict()) == cfg
    import json

    assert mj.EncoderDecoderConfig.from_dict(json.loads(cfg.to_json())) == cfg
    hash(cfg)
    bad = [
        (dict(norm_position="middle"), "norm_position"),
        (dict(act_fn="tanh"), "act_fn"),
        (dict(n_heads=3), "not divisible"),
        (dict(d_vocab=0), "needs an input"),
        (dict(d_vocab=0, d_input=4), "decoder reads tokens"),
        (dict(tie_embeddings=True, d_vocab_out=7), "tie_embeddings"),
        (dict(n_encoder_layers=0), "positive int"),
        (dict(pos_offset=-1), "int >= 0"),
        (dict(scale_embedding=1), "True or False"),
    ]
    for kw, match in bad:
        with pytest.raises(ValueError, match=match):
            _cfg(**kw)
    with pytest.raises(ValueError, match="Unknown EncoderDecoderConfig fields"):
        mj.EncoderDecoderConfig.from_dict({**cfg.to_dict(), "n_layers": 2})


def test_bad_inputs_fail_on_the_host_with_clear_messages():
    model, params = _setup()
    clean, _ = _inputs()
    enc, dec = clean["encoder"], clean["decoder"]
    cases = [
        (enc, None, r"takes a dict \{'encoder'"),
        ({"encoder": enc}, None, r"lacks \['decoder'\]"),
        ({"decoder": dec}, None, r"lacks \['encoder'\]"),
        ({**clean, "tokens": enc}, None, r"unknown keys \['tokens'\]"),
        ({"encoder": enc, "decoder": dec.astype(np.float32)}, None, "must be int token ids"),
        ({"encoder": enc, "decoder": dec[0]}, None, r"add a batch axis"),
        ({"encoder": enc + V, "decoder": dec}, None, r"inputs\['encoder'\] token id .* outside"),
        ({"encoder": enc, "decoder": dec - V}, None, r"inputs\['decoder'\] token id -"),
        ({"encoder": np.zeros((B, 9), np.int32), "decoder": dec}, None, "n_encoder_ctx=8"),
        ({"encoder": enc, "decoder": np.zeros((B, 9), np.int32)}, None, "n_ctx=8"),
        (
            {"encoder": enc, "decoder": dec[:1]},
            None,
            "batch 2 but inputs\\['decoder'\\] has batch 1",
        ),
        ({"encoder": enc.astype(np.float32), "decoder": dec}, None, "d_input=None"),
        (clean, np.ones((B, N_ENC)), "attention_mask of an EncoderDecoder is a dict"),
        (clean, {"enc": np.ones((B, N_ENC))}, r"unknown keys \['enc'\]"),
        (clean, {"encoder": np.ones((B, N_DEC))}, r"attention_mask\['encoder'\] has shape"),
        (clean, {"decoder": np.ones((B, N_ENC))}, r"attention_mask\['decoder'\] has shape"),
    ]
    for inputs, mask, match in cases:
        with pytest.raises(ValueError, match=match):
            mj.run(model, params, inputs, attention_mask=mask)
    with pytest.raises(ValueError, match="matches no site"):
        mj.run(model, params, clean, cache="decoder.blocks.0.cross_attn.hook_zz")
    with pytest.raises(ValueError, match="head"):
        mj.run(
            model,
            params,
            clean,
            interventions=[mj.ablate("decoder.blocks.0.cross_attn.hook_z", heads=[4])],
        )
