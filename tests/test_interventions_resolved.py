"""Core v2 interventions: batch- and probe-dependent entries, host-resolved cache specs,
list inputs, finite float masks on -inf scores, registered ops."""

import importlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax.models import axes as A

run_mod = importlib.import_module("mechjax.run")


@pytest.fixture(scope="module")
def setup():
    cfg = mj.TransformerConfig.from_variant("gpt2-tiny")
    model = mj.Transformer(cfg)
    params = mj.init(model, jax.random.key(0))
    tokens = jax.random.randint(jax.random.key(1), (3, 7), 0, cfg.d_vocab)
    return cfg, model, params, tokens


@pytest.fixture
def count_traces(monkeypatch):
    """Replaces mj.run's jitted forward with one that fails on a second trace."""
    wrapped = jax.jit(chex.assert_max_traces(run_mod._forward, n=1), static_argnums=(0, 1, 2))
    monkeypatch.setattr(run_mod, "_forward_jit", wrapped)
    yield
    chex.clear_trace_counter()


def test_fresh_predicate_or_list_cache_spec_never_recompiles(setup, count_traces):
    _, model, params, tokens = setup
    outs = []
    for _ in range(3):  # a new lambda and a new list every call
        _, cache = mj.run(model, params, tokens, cache=lambda n: n.endswith("hook_pattern"))
        outs.append(cache)
        _, cache2 = mj.run(
            model,
            params,
            tokens,
            cache=["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"],
        )
    assert sorted(outs[0]) == ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]
    assert sorted(cache2) == sorted(outs[0])


def test_predicate_cache_matches_names(setup):
    _, model, params, tokens = setup
    _, by_pred = mj.run(model, params, tokens, cache=lambda n: n.startswith("blocks.1.mlp"))
    _, by_glob = mj.run(model, params, tokens, cache="blocks.1.mlp.*")
    assert list(by_pred) == list(by_glob) and len(by_pred) == 2


def test_python_list_inputs(setup):
    _, model, params, _ = setup
    from_list, _ = mj.run(model, params, [[0, 5, 7], [1, 2, 3]])
    from_arr, _ = mj.run(model, params, jnp.array([[0, 5, 7], [1, 2, 3]]))
    np.testing.assert_array_equal(from_list, from_arr)
    with pytest.raises(ValueError, match="rectangular"):
        mj.run(model, params, [[0, 5, 7], [1, 2]])


def test_float_mask_on_attention_scores_is_finite(setup):
    _, model, params, tokens = setup
    site = "blocks.0.attn.hook_attn_scores"
    half = jnp.full((1, 1, 7, 7), 0.5)  # blends every entry, including the causal -inf ones
    logits, cache = mj.run(
        model, params, tokens, cache=site, interventions=[mj.clamp(site, 0.0, mask=half)]
    )
    assert np.isfinite(np.asarray(logits)).all()
    # 0/1 float masks give exactly what the bool mask gives (-inf entries untouched)
    upper = np.triu(np.ones((7, 7), bool), 1)[None, None]
    with_float, _ = mj.run(
        model,
        params,
        tokens,
        interventions=[mj.clamp(site, 1.0, mask=jnp.asarray(~upper, jnp.float32))],
    )
    with_bool, _ = mj.run(
        model, params, tokens, interventions=[mj.clamp(site, 1.0, mask=jnp.asarray(~upper))]
    )
    assert np.isfinite(np.asarray(with_float)).all()
    np.testing.assert_array_equal(with_float, with_bool)


def _clamp_pattern_at(batch, value):
    """From-batch builder: query row `batch['row']` of head 1 attends only to key 0."""
    n = batch["tokens"].shape[1]
    target = jax.nn.one_hot(jnp.zeros(n, jnp.int32), n)  # [q_pos, k_pos]
    rows = jax.nn.one_hot(batch["row"], n)[:, None, :, None] > 0  # [batch, 1, q_pos, 1]
    return (mj.clamp("blocks.1.attn.hook_pattern", target, heads=[1], mask=rows).when(value),)


def test_from_batch_equals_the_plain_intervention(setup):
    _, model, params, tokens = setup
    batch = {"tokens": tokens, "row": jnp.array([2, 4, 6])}
    iv = mj.from_batch(_clamp_pattern_at, jnp.array(True))
    got, cache = mj.run(
        model, params, tokens, interventions=[iv], batch=batch, cache="blocks.1.attn.hook_pattern"
    )
    (plain,) = _clamp_pattern_at(batch, jnp.array(True))
    want, _ = mj.run(model, params, tokens, interventions=[plain])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert float(cache["blocks.1.attn.hook_pattern"][1, 1, 4, 0]) == 1.0
    off, _ = mj.run(
        model, params, tokens, interventions=[mj.from_batch(_clamp_pattern_at, False)], batch=batch
    )
    np.testing.assert_allclose(off, mj.run(model, params, tokens)[0], atol=1e-6)


def _preserve(cache, batch, value):
    site = "blocks.1.attn.hook_pattern"
    return (mj.clamp(site, cache[site]).when(value),)


def test_two_pass_equals_two_explicit_runs_with_gradients(setup):
    _, model, params, tokens = setup
    probe = (mj.ablate("blocks.0.attn.hook_z", heads=[0, 1]),)
    site = "blocks.1.attn.hook_pattern"

    def lib(p):
        iv = mj.two_pass(site, _preserve, probe=probe, value=jnp.array(True))
        return mj.run(model, p, tokens, interventions=[mj.ablate("blocks.0.hook_attn_out"), iv])[0]

    def manual(p):
        _, c = mj.run(model, p, tokens, cache=site, interventions=probe)
        ivs = [mj.ablate("blocks.0.hook_attn_out"), mj.clamp(site, c[site])]
        return mj.run(model, p, tokens, interventions=ivs)[0]

    np.testing.assert_allclose(lib(params), manual(params), atol=1e-6)
    loss = lambda f: lambda p: jnp.sum(jax.nn.log_softmax(f(p))[..., 3])  # noqa: E731
    g_lib, g_man = jax.grad(loss(lib))(params), jax.grad(loss(manual))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), g_lib, g_man)
    # the gradient reaches layer 0's queries only through the probe pass
    assert float(jnp.abs(g_lib["params"]["blocks_0"]["attn"]["W_Q"]).max()) > 0


def test_resolved_entries_are_validated_on_the_host(setup):
    _, model, params, tokens = setup

    def bad(batch, value):
        return (mj.ablate("blocks.9.attn.hook_z"),)

    with pytest.raises(ValueError, match="matches no site"):
        mj.run(model, params, tokens, interventions=[mj.from_batch(bad)])


def test_registered_op_and_unknown_op(setup):
    _, model, params, tokens = setup
    mj.register_op("double_it")(lambda iv, x: 2 * x)
    site = "blocks.0.hook_resid_post"
    iv = mj.Intervention(site=site, op="double_it", pos_idx=(1,))
    _, base = mj.run(model, params, tokens, cache=site)
    _, got = mj.run(model, params, tokens, cache=site, interventions=[iv])
    np.testing.assert_allclose(got[site][:, 1], 2 * base[site][:, 1], atol=1e-6)
    np.testing.assert_array_equal(got[site][:, 0], base[site][:, 0])
    with pytest.raises(ValueError, match="unknown op 'nope'"):
        mj.run(model, params, tokens, interventions=[mj.Intervention(site=site, op="nope")])


def test_axes_are_declared_by_the_site(setup):
    _, model, _, _ = setup
    assert mj.site_axes(model, "blocks.0.attn.hook_pattern") == A.PATTERN
    assert mj.site_axes(model, "blocks.0.attn.hook_k") == A.KV
    assert mj.site_axes(model, "hook_logits") == A.LOGITS
    with pytest.raises(KeyError, match="closest"):
        mj.site_axes(model, "blocks.0.attn.hook_zz")
