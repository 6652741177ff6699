"""Hooks under nn.remat and nn.scan over layers: the same sites, caches, interventions,
gradients and partial forwards as the unrolled model, on the same (converted) weights."""

import dataclasses
import functools
import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax.models import stacking

VARIANTS = ["gpt2-tiny", "llama-tiny"]
MODES = {
    "remat": dict(remat=True),
    "scan": dict(scan_layers=True),
    "remat+scan": dict(remat=True, scan_layers=True),
}
CACHE = ("blocks.*.attn.hook_pattern", "blocks.1.hook_resid_post", "blocks.0.attn.hook_result")
TOL = dict(atol=1e-5, rtol=1e-5)


@functools.cache
def _unrolled(variant):
    """The reference: an unrolled model with randomised weights (LN / biases too)."""
    cfg = mj.TransformerConfig.from_variant(variant)
    model = mj.Transformer(cfg)
    # random weights drawn with numpy from the init's shapes (no compile per leaf), norm
    # scales around 1 and biases nonzero, so nothing passes by accident on ones / zeros
    rng = np.random.default_rng(1)
    shapes = jax.eval_shape(lambda: mj.init(model, jax.random.key(0)))

    def draw(path, s):
        base = 1.0 if path[-1].key == "w" else 0.0
        return jnp.asarray(base + 0.1 * rng.standard_normal(s.shape, np.float32))

    params = jax.tree_util.tree_map_with_path(draw, shapes)
    tokens = jnp.asarray(rng.integers(0, cfg.d_vocab, (3, 7)), jnp.int32)
    return cfg, model, params, tokens


@functools.cache
def _stacked(variant, mode):
    """The same weights as `_unrolled(variant)`, run with remat and / or scan_layers."""
    cfg, _, params, tokens = _unrolled(variant)
    flags = MODES[mode]
    model = mj.Transformer(cfg.replace(**flags))
    if flags.get("scan_layers"):
        params = mj.stack_layers(params)
    return model, params, tokens


def _normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, np.float32))


def _interventions(cfg, tokens):
    B, P = tokens.shape
    v = _normal(5, (B, P, cfg.kv_heads, cfg.head_dim))
    return [
        mj.ablate("blocks.1.attn.hook_z", heads=[2]),
        mj.ablate("blocks.0.attn.hook_z", heads=[0]),  # same site, other layer and head
        mj.steer("blocks.0.hook_resid_post", jnp.linspace(-1.0, 1.0, cfg.d_model), scale=0.5),
        mj.patch("blocks.*.attn.hook_v", v),
    ]


IV_CACHE = ("blocks.*.attn.hook_z", "blocks.*.attn.hook_v", "blocks.0.hook_resid_post")


@functools.cache
def _reference(variant):
    cfg, model, params, tokens = _unrolled(variant)
    plain = mj.run(model, params, tokens, cache=CACHE)
    ivs = _interventions(cfg, tokens)
    edited = mj.run(model, params, tokens, cache=IV_CACHE, interventions=ivs)
    return plain, edited


def _assert_same(got, want):
    out, cache = got
    ref_out, ref_cache = want
    np.testing.assert_allclose(out, ref_out, **TOL)
    assert list(cache) == list(ref_cache)  # same names, same (forward) order
    for name in ref_cache:
        np.testing.assert_allclose(cache[name], ref_cache[name], **TOL, err_msg=name)


def _assert_trees_close(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, **TOL)


# --- config and parameter layouts --------------------------------------------------------------


def test_config_flags_are_validated_and_round_trip_through_json():
    cfg = mj.TransformerConfig.from_variant("gpt2-tiny")
    assert not cfg.remat and not cfg.scan_layers
    for flags in MODES.values():
        c = cfg.replace(**flags)
        assert mj.TransformerConfig.from_dict(json.loads(c.to_json())) == c
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("remat", "scan_layers")}
    assert mj.TransformerConfig.from_dict(old) == cfg  # JSON written before the flags existed
    with pytest.raises(ValueError, match="scan_layers must be True or False"):
        cfg.replace(scan_layers="yes")
    with pytest.raises(ValueError, match="remat must be True or False"):
        cfg.replace(remat=1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_param_layouts_and_conversion(variant):
    cfg, model, params, _ = _unrolled(variant)
    shapes = jax.eval_shape(lambda p: p, params)
    remat = mj.Transformer(cfg.replace(remat=True))
    assert jax.eval_shape(lambda: mj.init(remat, jax.random.key(0))) == shapes  # unchanged
    scan = mj.Transformer(cfg.replace(scan_layers=True))
    stacked = mj.stack_layers(params)
    assert "blocks" in stacked["params"] and "blocks_0" not in stacked["params"]
    assert stacked["params"]["blocks"]["attn"]["W_Q"].shape == (
        cfg.n_layers,
        cfg.n_heads,
        cfg.d_model,
        cfg.head_dim,
    )
    assert jax.eval_shape(lambda: mj.init(scan, jax.random.key(0))) == jax.eval_shape(
        lambda p: p, stacked
    )
    _assert_trees_close(mj.unstack_layers(stacked), params)
    _assert_trees_close(mj.unstack_layers(stacked["params"]), params["params"])  # bare dicts
    with pytest.raises(ValueError, match="no 'blocks_0'"):
        mj.stack_layers(stacked)
    with pytest.raises(ValueError, match="no stacked 'blocks'"):
        mj.unstack_layers(params)


# --- the same model, three ways -----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_site_names_and_axes_agree(variant, mode):
    _, ref, _, tokens = _unrolled(variant)
    model, _, _ = _stacked(variant, mode)
    assert mj.site_names(model) == mj.site_names(ref)
    assert not [n for n in mj.site_names(model) if stacking.PLACEHOLDER in n]
    assert mj.site_axes(model) == mj.site_axes(ref)
    assert mj.site_shapes(model, tokens) == mj.site_shapes(ref, tokens)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_same_logits_and_cache(variant, mode):
    model, params, tokens = _stacked(variant, mode)
    got = mj.run(model, params, tokens, cache=CACHE)
    want, _ = _reference(variant)
    assert sorted(got[1]) == sorted(
        ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]
        + ["blocks.1.hook_resid_post", "blocks.0.attn.hook_result"]
    )
    _assert_same(got, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_same_intervention_effects(variant, mode):
    cfg, ref_model, ref_params, _ = _unrolled(variant)
    model, params, tokens = _stacked(variant, mode)
    ivs = _interventions(cfg, tokens)
    got = mj.run(model, params, tokens, cache=IV_CACHE, interventions=ivs)
    _, want = _reference(variant)
    _assert_same(got, want)
    cache = got[1]
    # each intervention hit its own layer only
    z0, z1 = cache["blocks.0.attn.hook_z"], cache["blocks.1.attn.hook_z"]
    np.testing.assert_array_equal(z1[:, :, 2], 0.0)
    np.testing.assert_array_equal(z0[:, :, 0], 0.0)
    assert float(jnp.abs(z0[:, :, 2]).min()) > 0 and float(jnp.abs(z1[:, :, 0]).min()) > 0
    for layer in range(cfg.n_layers):
        np.testing.assert_array_equal(cache[f"blocks.{layer}.attn.hook_v"], ivs[3].value)
    plain, _ = mj.run(ref_model, ref_params, tokens)
    assert float(jnp.abs(got[0] - plain).max()) > 1e-3  # the interventions did something


def test_every_site_cached_and_patched_back_under_scan():
    # one intervention per layer at every site: the scanned body picks each layer's own
    _, ref_model, ref_params, tokens = _unrolled("gpt2-tiny")
    model, params, _ = _stacked("gpt2-tiny", "scan")
    want = mj.run(ref_model, ref_params, tokens, cache=True)
    got = mj.run(model, params, tokens, cache=True)
    _assert_same(got, want)
    ivs = [mj.patch(name, value) for name, value in want[1].items()]
    patched, _ = mj.run(model, params, tokens, interventions=ivs)
    np.testing.assert_allclose(patched, want[0], **TOL)


def _clamp_loss(model, p, value):
    tokens = _unrolled("gpt2-tiny")[3]
    logits, _ = mj.run(
        model,
        p,
        tokens,
        interventions=[mj.clamp("blocks.0.hook_resid_post", value, positions=[1, 3])],
    )
    return jax.nn.logsumexp(logits, -1).mean() - logits[..., 0].mean()


@functools.cache
def _grads(mode):
    cfg, model, params, tokens = _unrolled("gpt2-tiny")
    if mode is not None:
        model, params, _ = _stacked("gpt2-tiny", mode)
    value = _normal(7, (*tokens.shape, cfg.d_model))
    return jax.grad(_clamp_loss, argnums=(1, 2))(model, params, value)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_through_a_clamp_match_the_unrolled_model(mode):
    gp_ref, gv_ref = _grads(None)
    gp, gv = _grads(mode)
    if MODES[mode].get("scan_layers"):
        gp = mj.unstack_layers(gp)
    _assert_trees_close(gp, gp_ref)
    np.testing.assert_allclose(gv, gv_ref, **TOL)
    assert float(jnp.abs(gp["params"]["blocks_1"]["attn"]["W_V"]).max()) > 0
    assert float(jnp.abs(gv).max()) > 0


@functools.cache
def _sweep(mode):
    cfg, model, params, tokens = _unrolled("llama-tiny")
    corrupt = (tokens + 1) % cfg.d_vocab
    _, clean = mj.run(model, params, tokens, cache="blocks.*.attn.hook_z")
    if mode is not None:
        model, params, _ = _stacked("llama-tiny", mode)
    metric = mj.metrics.logit_diff(1, 2)
    return mj.patching.attn_head_out_all_pos(model, params, corrupt, clean, metric)


@pytest.mark.parametrize("mode", ["remat", "scan"])
def test_patching_sweeps_resume_mid_stack(mode):
    # the sweep resumes at each layer L (forward_from(start_layer=L)); under scan that
    # scans the slice params[L:]
    cfg = _unrolled("llama-tiny")[0]
    got = _sweep(mode)
    assert got.shape == (cfg.n_layers, cfg.n_heads)
    np.testing.assert_allclose(got, _sweep(None), **TOL)


# --- compilation ----------------------------------------------------------------------------------


def test_one_compile_per_shape():
    cfg, _, _, _ = _unrolled("gpt2-tiny")
    model, params, tokens = _stacked("gpt2-tiny", "remat+scan")
    fwd = importlib.import_module("mechjax.run")._forward_jit
    site = "blocks.1.attn.hook_z"
    before = fwd._cache_size()
    outs = []
    for i in range(3):
        ivs = [
            mj.steer("blocks.0.hook_resid_post", _normal(i, (cfg.d_model,))),
            mj.ablate(site, heads=jax.nn.one_hot(i, cfg.n_heads) > 0),
        ]
        outs.append(mj.run(model, params, tokens, cache=site, interventions=ivs))
    assert fwd._cache_size() == before + 1
    for i, (_, cache) in enumerate(outs):
        np.testing.assert_array_equal(cache[site][:, :, i], 0.0)
    assert not np.allclose(outs[0][0], outs[1][0])
    mj.run(model, params, tokens[:, :5], cache=site, interventions=ivs)  # a new shape
    assert fwd._cache_size() == before + 2


def test_scan_traces_one_body_whatever_the_depth():
    def n_eqns(n_layers):
        cfg = mj.TransformerConfig.from_variant("gpt2-tiny", n_layers=n_layers, scan_layers=True)
        model = mj.Transformer(cfg)
        params = jax.eval_shape(lambda: mj.init(model, jax.random.key(0)))
        tokens = jnp.zeros((1, 4), jnp.int32)
        ivs = [mj.ablate("blocks.1.attn.hook_z"), mj.steer("blocks.*.hook_resid_mid", 1.0)]
        ctx = lambda: mj.hooks.HookContext(ivs, ("blocks.1.attn.hook_pattern",))  # noqa: E731
        return len(jax.make_jaxpr(lambda p: model.apply(p, tokens, ctx()))(params).eqns)

    assert n_eqns(2) == n_eqns(6)


# --- plumbing ------------------------------------------------------------------------------------


def test_no_hooks_works_and_foreign_hooks_or_unstacked_params_are_refused():
    _, ref_model, ref_params, tokens = _unrolled("gpt2-tiny")
    model, params, _ = _stacked("gpt2-tiny", "scan")
    np.testing.assert_allclose(
        jax.jit(model.apply)(params, tokens), jax.jit(ref_model.apply)(ref_params, tokens), **TOL
    )

    class Printer:
        def active(self, name):
            return False

        def __call__(self, name, x, axes=None):
            return x

    with pytest.raises(TypeError, match="need a mechjax.hooks.HookContext"):
        model.apply(params, tokens, Printer())
    with pytest.raises(ValueError, match=r"stacked under 'blocks'.*mj\.stack_layers"):
        mj.run(model, ref_params, tokens)  # unrolled params given to a scanned model


def test_hook_context_child_and_merge():
    parent = mj.hooks.HookContext([mj.ablate("blocks.0.attn.hook_z")], ("blocks.0.*",))
    child = parent.child(())
    assert child.cache_spec == parent.cache_spec and child.interventions == ()
    x = jnp.ones((1, 2, 3))
    child("blocks.0.hook_resid_pre", x, ("batch", "pos", "d_model"))
    child("blocks.1.hook_resid_pre", x, ("batch", "pos", "d_model"))
    parent.merge(child.cache, child.axes)
    assert list(parent.cache) == ["blocks.0.hook_resid_pre"]
    assert parent.axes["blocks.1.hook_resid_pre"] == ("batch", "pos", "d_model")
    assert parent.child().interventions == parent.interventions


def test_unrolled_twin_for_per_layer_param_analyses():
    cfg, ref_model, ref_params, tokens = _unrolled("gpt2-tiny")
    model, params, _ = _stacked("gpt2-tiny", "scan")
    twin, twin_params = stacking.unrolled(model, params)
    assert not twin.cfg.scan_layers and "blocks_1" in twin_params["params"]
    assert dataclasses.replace(twin.cfg, scan_layers=True) == model.cfg
    _assert_trees_close(twin_params, ref_params)
    assert stacking.unrolled(ref_model, ref_params) == (ref_model, ref_params)
