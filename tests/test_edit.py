"""Tests for mechjax.edit: params -> params edits and TransformerLens weight processing."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax import edit

VOCAB, SEQ = 64, 12
VARIANT_NAMES = ["gpt2-tiny", "pythia-tiny", "llama-tiny", "attn-only-2l"]
LN_VARIANTS = ["gpt2-tiny", "pythia-tiny", "attn-only-2l"]


def _make(variant, **overrides):
    # init_range 0.15 gives O(1) logits, so a 1e-4 tolerance is a real constraint.
    cfg = mj.TransformerConfig.from_variant(
        variant, d_vocab=VOCAB, n_ctx=16, init_range=0.15, **overrides
    )
    return mj.Transformer(cfg)


def _perturb(params, seed=0):
    """Non-trivial norm weights and biases (init makes them ones / zeros)."""
    rng = np.random.default_rng(seed)

    def f(path, x):
        name = path[-1].key
        if name == "w":
            return x + 0.3 * rng.standard_normal(x.shape).astype(np.float32)
        if name == "b" or name.startswith("b_"):
            return 0.3 * rng.standard_normal(x.shape).astype(np.float32)
        return x

    return jax.tree_util.tree_map_with_path(f, params)


@functools.cache
def _setup(variant, **overrides):
    model = _make(variant, **overrides)
    params = _perturb(mj.init(model, jax.random.key(1)))
    tokens = jax.random.randint(jax.random.key(2), (2, SEQ), 0, VOCAB)
    logits, _ = mj.run(model, params, tokens)
    return model, params, tokens, np.asarray(logits)


def _logits(model, params, tokens):
    return np.asarray(mj.run(model, params, tokens)[0])


def _log_softmax(x):
    return np.asarray(jax.nn.log_softmax(jnp.asarray(x), axis=-1))


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def _leaves(params):
    return {
        jax.tree_util.keystr(k): np.asarray(v)
        for k, v in jax.tree_util.tree_flatten_with_path(params)[0]
    }


def _norm_params(params):
    p = params["params"]
    lns = [p[f"blocks_{i}"][n] for i in range(2) for n in ("ln1", "ln2") if n in p[f"blocks_{i}"]]
    return lns + ([p["ln_final"]] if "ln_final" in p else [])


# ------------------------------------------------------------------------------ head edits


@pytest.mark.parametrize("variant", ["gpt2-tiny", "llama-tiny"])
def test_ablate_heads_matches_hook_z_ablation(variant):
    model, params, tokens, base = _setup(variant)
    heads = {0: [1], 1: [0, 2]}
    edited = edit.ablate_heads(params, heads)
    ivs = [mj.ablate(f"blocks.{layer}.attn.hook_z", heads=hs) for layer, hs in heads.items()]
    want, _ = mj.run(model, params, tokens, interventions=ivs)
    got = _logits(model, edited, tokens)
    assert _max_diff(got, want) <= 1e-5
    assert _max_diff(got, base) > 1e-2  # the ablation did something
    # Both head formats mean the same thing.
    edited2 = edit.ablate_heads(params, [(1, 2), (0, 1), (1, 0)])
    for k, v in _leaves(edited).items():
        np.testing.assert_array_equal(v, _leaves(edited2)[k])


@pytest.mark.parametrize(
    "variant,direction_kind",
    [("gpt2-tiny", "vector"), ("llama-tiny", "per_layer_dict"), ("gpt2-tiny", "stacked")],
)
def test_project_out_removes_direction_from_head_result(variant, direction_kind):
    model, params, tokens, _ = _setup(variant)
    d_model = model.cfg.d_model
    vs = np.random.default_rng(3).standard_normal((2, d_model)).astype(np.float32)
    direction = {
        "vector": vs[0],
        "per_layer_dict": {0: vs[0], 1: vs[1]},
        "stacked": vs,
    }[direction_kind]
    v_layer1 = vs[0] if direction_kind == "vector" else vs[1]
    v_hat = v_layer1 / np.linalg.norm(v_layer1)
    edited = edit.project_out(params, direction, heads=[(1, 2), (0, 0)])
    site = "blocks.1.attn.hook_result"
    # Same layer-1 input, so compare results with layer 0 unedited.
    partly = edit.project_out(params, direction, heads=[(1, 2)])
    _, before = mj.run(model, params, tokens, cache=(site,))
    _, after = mj.run(model, partly, tokens, cache=(site,))
    r0, r1 = np.asarray(before[site]), np.asarray(after[site])  # [batch, pos, head, d_model]
    along_before = np.abs(r0[:, :, 2] @ v_hat).max()
    along_after = np.abs(r1[:, :, 2] @ v_hat).max()
    assert along_before > 1e-2
    assert along_after <= 1e-5 * max(1.0, along_before)
    others = [h for h in range(model.cfg.n_heads) if h != 2]
    np.testing.assert_allclose(r1[:, :, others], r0[:, :, others], atol=1e-6)
    # The ThinkEdit formula itself, on the weights.
    W = np.asarray(params["params"]["blocks_1"]["attn"]["W_O"][2])
    want = W - np.outer(W @ v_hat, v_hat)
    got = np.asarray(edited["params"]["blocks_1"]["attn"]["W_O"][2])
    np.testing.assert_allclose(got, want, atol=1e-6)


def _svd_truncate(M, k):
    U, S, Vt = np.linalg.svd(np.asarray(M, np.float64))
    return (U[:, :k] * S[:k]) @ Vt[:k]


@pytest.mark.parametrize(
    "variant,kind,layer,head,rank",
    [
        ("gpt2-tiny", "qk", 1, 3, 2),
        ("gpt2-tiny", "ov", 0, 1, 5),
        ("llama-tiny", "qk", 0, 1, 3),  # GQA: W_K[0] is shared by query heads 0 and 1
        ("llama-tiny", "ov", 1, 2, 1),
    ],
)
def test_truncate_circuit_is_rank_k_svd(variant, kind, layer, head, rank):
    model, params, _, _ = _setup(variant)
    truncate = {"qk": edit.truncate_qk, "ov": edit.truncate_ov}[kind]
    circuit = {"qk": edit.qk_circuit, "ov": edit.ov_circuit}[kind]
    edited = truncate(params, layer, head, rank)
    old = np.asarray(circuit(params, layer, head))
    new = np.asarray(circuit(edited, layer, head), np.float64)
    assert old.shape == (model.cfg.d_model, model.cfg.d_model)
    assert np.linalg.matrix_rank(old) == model.cfg.head_dim > rank
    scale = np.abs(old).max()
    np.testing.assert_allclose(new, _svd_truncate(old, rank), atol=2e-5 * scale)
    assert np.linalg.matrix_rank(new, tol=1e-4 * scale) == rank
    # Only one head's per-head matrix changed; shared K/V and every other head are untouched.
    name = {"qk": "W_Q", "ov": "W_O"}[kind]
    key = f"['params']['blocks_{layer}']['attn']['{name}']"
    before, after = _leaves(params), _leaves(edited)
    for k in before:
        if k != key:
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    others = [h for h in range(model.cfg.n_heads) if h != head]
    np.testing.assert_array_equal(after[key][others], before[key][others])
    for h in others:
        np.testing.assert_array_equal(circuit(edited, layer, h), circuit(params, layer, h))


def test_truncate_full_rank_is_identity_and_rank_zero_is_zero():
    _, params, _, _ = _setup("llama-tiny")
    d_head = params["params"]["blocks_0"]["attn"]["W_Q"].shape[-1]
    full = edit.truncate_qk(params, 0, 3, d_head)
    np.testing.assert_allclose(
        edit.qk_circuit(full, 0, 3), edit.qk_circuit(params, 0, 3), atol=1e-5
    )
    zero = edit.truncate_ov(params, 0, 3, 0)
    assert np.abs(np.asarray(edit.ov_circuit(zero, 0, 3))).max() == 0


# ------------------------------------------------------------------------------ weight processing


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_fold_layer_norm_keeps_logits(variant):
    model, params, tokens, base = _setup(variant)
    new_model, folded = edit.fold_layer_norm(model, params)
    assert _max_diff(_logits(new_model, folded, tokens), base) <= 1e-4
    for ln in _norm_params(folded):
        np.testing.assert_array_equal(ln["w"], 1.0)
        if "b" in ln:
            np.testing.assert_array_equal(ln["b"], 0.0)
    # Negative control: dropping the norm weights without folding does change the logits.
    unfolded = jax.tree_util.tree_map_with_path(
        lambda path, x: (
            jnp.ones_like(x)
            if path[-1].key == "w"
            else (jnp.zeros_like(x) if path[-1].key == "b" else x)
        ),
        params,
    )
    assert _max_diff(_logits(model, unfolded, tokens), base) > 1e-2
    if model.cfg.normalization_type == "LN":
        # Reading weights are centred over d_model (they only see centred inputs).
        W_Q = np.asarray(folded["params"]["blocks_0"]["attn"]["W_Q"])
        assert np.abs(W_Q.mean(axis=1)).max() <= 1e-6
        assert np.abs(np.asarray(params["params"]["blocks_0"]["attn"]["W_Q"]).mean(1)).max() > 1e-3


def test_fold_layer_norm_adds_missing_unembed_bias():
    model, params, tokens, base = _setup("gpt2-tiny")
    assert not model.cfg.unembed_bias and "b_U" not in params["params"]
    new_model, folded = edit.fold_layer_norm(model, params)
    assert new_model.cfg.unembed_bias and "b_U" in folded["params"]
    assert model.cfg.unembed_bias is False  # the input model is untouched


@pytest.mark.parametrize(
    "variant,overrides",
    [
        ("gpt2-tiny", (("attn_bias", False), ("mlp_bias", False))),
        ("llama-tiny", (("normalization_type", "LN"),)),  # gated MLP: ln2.b -> new b_gate
    ],
    ids=["gpt2-no-biases", "llama-layernorm-gated"],
)
def test_fold_layer_norm_adds_missing_block_biases(variant, overrides):
    model, params, tokens, base = _setup(variant, **dict(overrides))
    assert not model.cfg.attn_bias and not model.cfg.mlp_bias
    new_model, folded = edit.fold_layer_norm(model, params)
    assert new_model.cfg.attn_bias and new_model.cfg.mlp_bias
    mlp = folded["params"]["blocks_1"]["mlp"]
    assert ("b_gate" in mlp) == model.cfg.gated_mlp
    assert _max_diff(_logits(new_model, folded, tokens), base) <= 1e-4


@pytest.mark.parametrize("variant", LN_VARIANTS)
def test_center_writing_weights_keeps_logits(variant):
    model, params, tokens, base = _setup(variant)
    centred = edit.center_writing_weights(model, params)
    assert _max_diff(_logits(model, centred, tokens), base) <= 1e-4
    p0, p1 = params["params"], centred["params"]
    for before, after in [
        (p0["W_E"], p1["W_E"]),
        (p0["blocks_1"]["attn"]["W_O"], p1["blocks_1"]["attn"]["W_O"]),
    ]:
        assert np.abs(np.asarray(before).mean(-1)).max() > 1e-3
        assert np.abs(np.asarray(after).mean(-1)).max() <= 1e-6


def test_center_writing_weights_rejects_rmsnorm():
    model, params, _, _ = _setup("llama-tiny")
    with pytest.raises(ValueError, match="LayerNorm"):
        edit.center_writing_weights(model, params)


@pytest.mark.parametrize("variant", ["gpt2-tiny", "attn-only-2l"])
def test_center_unembed_keeps_log_probs(variant):
    model, params, tokens, base = _setup(variant)
    centred = edit.center_unembed(params)
    got = _logits(model, centred, tokens)
    assert _max_diff(_log_softmax(got), _log_softmax(base)) <= 1e-4
    assert _max_diff(got, base) > 1e-3  # logits themselves shift
    assert np.abs(np.asarray(centred["params"]["W_U"]).mean(-1)).max() <= 1e-6


@pytest.mark.parametrize(
    "variant,overrides",
    [
        ("gpt2-tiny", ()),
        ("pythia-tiny", ()),
        ("attn-only-2l", ()),
        ("llama-tiny", (("attn_bias", True),)),  # GQA: b_V per kv head, W_O per query head
    ],
    ids=["gpt2-tiny", "pythia-tiny", "attn-only-2l", "llama-tiny-gqa-bias"],
)
def test_fold_value_biases_keeps_logits(variant, overrides):
    model, params, tokens, base = _setup(variant, **dict(overrides))
    folded = edit.fold_value_biases(params)
    assert _max_diff(_logits(model, folded, tokens), base) <= 1e-4
    a0, a1 = params["params"]["blocks_0"]["attn"], folded["params"]["blocks_0"]["attn"]
    np.testing.assert_array_equal(a1["b_V"], 0.0)
    assert _max_diff(a1["b_O"], a0["b_O"]) > 1e-3


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_process_weights_keeps_log_probs(variant):
    model, params, tokens, base = _setup(variant)
    new_model, processed = edit.process_weights(model, params)
    got = _logits(new_model, processed, tokens)
    assert _max_diff(_log_softmax(got), _log_softmax(base)) <= 1e-4
    p = processed["params"]
    assert np.abs(np.asarray(p["W_U"]).mean(-1)).max() <= 1e-6
    if new_model.cfg.normalization_type == "LN":
        assert np.abs(np.asarray(p["blocks_0"]["attn"]["W_O"]).mean(-1)).max() <= 1e-6


def test_tied_embeddings():
    model, params, tokens, base = _setup("gpt2-tiny", tie_embeddings=True)
    with pytest.raises(ValueError, match="tie_embeddings models: .*untie_embeddings"):
        edit.fold_layer_norm(model, params)
    with pytest.raises(ValueError, match="tie_embeddings models"):
        edit.center_writing_weights(model, params)
    with pytest.raises(ValueError, match="untie_embeddings"):
        edit.center_unembed(params)
    new_model, processed = edit.process_weights(model, params)
    assert not new_model.cfg.tie_embeddings
    got = _logits(new_model, processed, tokens)
    assert _max_diff(_log_softmax(got), _log_softmax(base)) <= 1e-4


class _TwoWayHead(nn.Module):
    """A classifier head reading the last position's ln_final output."""

    @nn.compact
    def __call__(self, resid, hooks=mj.hooks.NO_HOOKS):
        return nn.Dense(2, name="proj")(resid[:, -1])  # [batch, 2]


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied-ignored"])
def test_process_weights_with_head_module(tied):
    # With a head there is no W_U: ln_final feeds the head and stays; the rest is processed.
    cfg = mj.TransformerConfig.from_variant(
        "gpt2-tiny", d_vocab=VOCAB, n_ctx=16, init_range=0.15, tie_embeddings=tied
    )
    model = mj.Transformer(cfg, head=_TwoWayHead())
    params = _perturb(mj.init(model, jax.random.key(5)))
    tokens = jax.random.randint(jax.random.key(6), (2, SEQ), 0, VOCAB)
    base = _logits(model, params, tokens)
    new_model, processed = edit.process_weights(model, params)
    assert "W_U" not in processed["params"]
    assert _max_diff(_logits(new_model, processed, tokens), base) <= 1e-4
    np.testing.assert_array_equal(
        processed["params"]["ln_final"]["w"], params["params"]["ln_final"]["w"]
    )
    np.testing.assert_array_equal(processed["params"]["blocks_0"]["ln1"]["w"], 1.0)


# ------------------------------------------------------------------------------ purity and errors


def test_edits_do_not_mutate_inputs():
    model, params, _, _ = _setup("gpt2-tiny")
    snapshot = _leaves(params)
    edit.ablate_heads(params, {0: [0]})
    edit.project_out(params, np.ones(model.cfg.d_model, np.float32), {1: [1]})
    edit.truncate_qk(params, 0, 0, 1)
    edit.truncate_ov(params, 0, 0, 1)
    edit.process_weights(model, params)
    after = _leaves(params)
    assert after.keys() == snapshot.keys()
    for k, v in snapshot.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)
    assert "b_U" not in params["params"]


def test_project_out_under_jit_and_grad():
    """Values may be traced: the edit is usable inside jit and differentiable in direction."""
    _, params, _, _ = _setup("gpt2-tiny")
    v = np.random.default_rng(4).standard_normal(64).astype(np.float32)
    eager = edit.project_out(params, v, {1: [3]})
    jitted = jax.jit(lambda p, d: edit.project_out(p, d, {1: [3]}))(params, v)
    for k, x in _leaves(eager).items():
        np.testing.assert_allclose(_leaves(jitted)[k], x, atol=1e-6, err_msg=k)

    def written_along(d):  # |W_O[3] d_hat| after the edit: should be ~0 with ~0 gradient
        W = edit.project_out(params, d, {1: [3]})["params"]["blocks_1"]["attn"]["W_O"][3]
        return jnp.sum((W @ (d / jnp.linalg.norm(d))) ** 2)

    assert float(written_along(jnp.asarray(v))) <= 1e-10
    assert np.all(np.isfinite(np.asarray(jax.grad(written_along)(jnp.asarray(v)))))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda p: edit.ablate_heads(p, {2: [0]}), r"layer 2 is out of range; valid: 0\.\.1"),
        (lambda p: edit.ablate_heads(p, [(0, 4)]), r"head \(layer 0\) 4 is out of range"),
        (lambda p: edit.ablate_heads(p, [(0, 1, 2)]), r"\(layer, head\) pairs"),
        (lambda p: edit.ablate_heads(p, 3), "heads must be"),
        (lambda p: edit.project_out(p, np.ones(5), {0: [0]}), r"shape \[d_model\]=\(64,\)"),
        (lambda p: edit.project_out(p, np.zeros(64), {0: [0]}), "zero vector"),
        (lambda p: edit.project_out(p, {0: np.ones(64)}, {1: [0]}), "no entry for it"),
        (lambda p: edit.truncate_qk(p, 0, 0, 17), r"valid: 0\.\.16"),
        (lambda p: edit.truncate_ov(p, 0, -1, 1), "head -1 is out of range"),
        (lambda p: edit.qk_circuit(p, 5, 0), "layer 5 is out of range"),
        (lambda p: edit.ablate_heads({"foo": 1}, {0: [0]}), "expected flax variables"),
        (
            lambda p: edit.fold_layer_norm(_make("llama-tiny"), p),
            r"W_K has shape \(4, 64, 16\) but model.cfg expects \(2, 64, 16\)",
        ),
    ],
    ids=[
        "layer-range",
        "head-range",
        "bad-pairs",
        "bad-heads-type",
        "direction-shape",
        "zero-direction",
        "direction-missing-layer",
        "rank-range",
        "negative-head",
        "circuit-layer",
        "not-params",
        "model-params-mismatch",
    ],
)
def test_errors(call, match):
    _, params, _, _ = _setup("gpt2-tiny")
    with pytest.raises((ValueError, TypeError), match=match):
        call(params)
