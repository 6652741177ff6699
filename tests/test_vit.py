"""`mj.ViT`: config, sites and interventions, host-side input checks, the protocol, and
FlexiViT (PI-resize's defining property; a tiny ViT trained at patch sizes 8 and 16 gives
the same predictions at both)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mechjax as mj
from mechjax.models import axes as A
from mechjax.models.vit import (
    bilinear_resize_matrix,
    patchify,
    pi_resize,
    resize_pos_embed,
)


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
    with jax.default_matmul_precision("highest"):
        yield


def _cfg(**kw):
    base = dict(
        image_size=16, patch_size=4, n_channels=3, d_model=32, n_layers=2, n_heads=4, n_classes=5
    )
    return mj.ViTConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def vit():
    model = mj.ViT(_cfg())
    params = mj.init(model, jax.random.key(0))
    images = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
    return model, params, images


# -- config ------------------------------------------------------------------------------------


def test_config_roundtrip_and_sizes():
    cfg = _cfg(image_size=(8, 12), patch_size=4, d_mlp=48, pool="mean", class_token=False)
    again = mj.ViTConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg and hash(again) == hash(cfg) and again.image_size == (8, 12)
    assert (cfg.grid(), cfg.n_pos(), cfg.grid(2), cfg.n_pos(2)) == ((2, 3), 6, (4, 6), 24)
    bc = cfg.block_config
    assert (bc.causal, bc.positional_embedding_type, bc.normalization_type) == (False, "none", "LN")
    assert (bc.mlp_dim, bc.act_fn, bc.eps) == (48, "gelu", 1e-6)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(image_size=18), "not divisible by patch_size=4"),
        (dict(pool="max"), "pool"),
        (dict(class_token=False), "class_token=False"),
        (dict(act_fn="tanh"), "act_fn"),
        (dict(n_heads=5), "not divisible by n_heads"),
        (dict(n_classes=-1), "n_classes"),
        (dict(patch_size=0), "patch_size must be a positive int"),
        (dict(image_size=(16, 16, 3)), "image_size"),
        (dict(dtype="float64"), "dtype"),
    ],
)
def test_config_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        _cfg(**kw)
    with pytest.raises(ValueError, match="Unknown ViTConfig fields"):
        mj.ViTConfig.from_dict({**_cfg().to_dict(), "n_ctx": 3})


# -- sites, interventions, protocol -------------------------------------------------------------


def test_sites_and_axes(vit):
    model, params, images = vit
    n_pos = 1 + 16  # class token + a 4x4 grid of patches
    logits, cache = mj.run(model, params, images, cache="blocks.0.attn.hook_pattern")
    assert logits.shape == (2, 5)
    assert cache["blocks.0.attn.hook_pattern"].shape == (2, 4, n_pos, n_pos)
    assert mj.site_axes(model, "hook_logits") == ("batch", "class") == A.CLASS_LOGITS
    assert mj.site_axes(model, "hook_pooled") == A.POOLED
    assert mj.site_axes(model, "hook_embed") == A.RESID
    shapes = mj.site_shapes(model, images)
    assert shapes["hook_embed"] == shapes["hook_pos_embed"] == (2, n_pos, 32)
    assert shapes["ln_final.hook_scale"] == (2, n_pos, 1)
    # The block sites are exactly the LM's (the same TransformerBlock).
    lm = mj.Transformer(mj.TransformerConfig(d_model=32, n_layers=2, n_heads=4, d_vocab=7))
    block = {s for s in mj.site_names(lm) if s.startswith("blocks.")}
    assert block == {s for s in shapes if s.startswith("blocks.")}
    assert set(shapes) - block == {
        "hook_embed",
        "hook_pos_embed",
        "ln_final.hook_scale",
        "ln_final.hook_normalized",
        "hook_pooled",
        "hook_logits",
    }


def test_ablation_changes_logits_and_matches_manual(vit):
    model, params, images = vit
    clean, _ = mj.run(model, params, images)
    ablated, cache = mj.run(
        model,
        params,
        images,
        cache="blocks.0.attn.hook_z",
        interventions=[mj.ablate("blocks.0.attn.hook_z", heads=[1])],
    )
    assert float(jnp.abs(ablated - clean).max()) > 1e-3
    z = cache["blocks.0.attn.hook_z"]
    assert float(jnp.abs(z[:, :, 1]).max()) == 0.0 and float(jnp.abs(z[:, :, 0]).max()) > 0
    # Zeroing head 1's z is zeroing its rows of W_O.
    p = jax.tree.map(lambda x: x, params)
    p["params"]["blocks_0"]["attn"]["W_O"] = p["params"]["blocks_0"]["attn"]["W_O"].at[1].set(0)
    np.testing.assert_allclose(mj.run(model, p, images)[0], ablated, atol=1e-5)


def test_bad_images_fail_on_host(vit):
    model, params, images = vit
    cases = [
        (images[0], "rank 3.*add a batch axis"),
        (images[..., :2], "2 channels.*n_channels=3"),
        (images.transpose(0, 3, 1, 2), "16 channels.*channels-first.*transpose\\(0, 2, 3, 1\\)"),
        (jnp.zeros((2, 18, 18, 3)), "not divisible by the patch size 4"),
        (jnp.zeros((2, 20, 20, 3)), "position grid.*4x4 grid.*\\[batch, 16, 16, 3\\]"),
        (jnp.zeros((2, 16, 16, 3), jnp.uint8), "must be floats"),
    ]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match):
            mj.run(model, params, bad)
    with pytest.raises(ValueError, match="no attention_mask"):
        mj.run(model, params, images, attention_mask=jnp.ones((2, 17)))
    with pytest.raises(ValueError, match="does not tile.*valid patch sizes: \\[1, 2, 4, 8, 16\\]"):
        model.with_patch_size(3)
    with pytest.raises(ValueError, match="not divisible by the patch size 8"):
        mj.run(model.with_patch_size(8), params, jnp.zeros((1, 20, 20, 3)))


def test_protocol_resume_and_readout(vit):
    model, params, images = vit
    assert mj.models.is_model(model)
    (stack,) = model.layer_stacks()
    assert (stack.prefix, stack.n_layers, stack.n_heads, stack.d_head) == ("blocks", 2, 4, 8)
    logits, cache = mj.run(model, params, images, cache=True)
    resumed = model.apply(
        params,
        images,
        {"blocks.1.hook_resid_pre": cache["blocks.1.hook_resid_pre"]},
        stack="blocks",
        layer=1,
        method="resume",
    )
    np.testing.assert_allclose(resumed, logits, atol=1e-5)
    # Direct logit attribution: logits = pool(ln_final(resid)) @ W_U + b_U.
    r = model.readout()
    assert (r.stack, r.norm, r.norm_type, r.pool, r.site) == (
        "blocks",
        "ln_final",
        "LN",
        "cls",
        "hook_logits",
    )
    W, b = model.readout_weights(params)
    ln = params["params"]["ln_final"]
    normed = cache["ln_final.hook_normalized"] * ln["w"] + ln["b"]
    np.testing.assert_allclose(normed[:, 0] @ W + b, logits, atol=1e-5)


def test_patching_sweep_runs_on_vit(vit):
    """A generic analysis (head patching through `resume`) agrees with a direct patch."""
    model, params, images = vit
    corrupted = images[::-1]
    _, clean_cache = mj.run(model, params, images, cache="blocks.*.attn.hook_z")
    metric = lambda logits: logits[:, 0].mean()
    sweep = mj.patching.attn_head_out_all_pos(model, params, corrupted, clean_cache, metric)
    assert sweep.shape == (2, 4)
    z = clean_cache["blocks.1.attn.hook_z"]
    direct, _ = mj.run(
        model, params, corrupted, interventions=[mj.patch("blocks.1.attn.hook_z", z, heads=[2])]
    )
    np.testing.assert_allclose(sweep[1, 2], metric(direct), atol=1e-5)


def test_mean_pool_without_class_token():
    model = mj.ViT(_cfg(pool="mean", class_token=False))
    params = mj.init(model, jax.random.key(0))
    assert "cls_token" not in params["params"] and params["params"]["W_pos"].shape == (16, 32)
    images = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
    logits, cache = mj.run(model, params, images, cache=["hook_pooled", "ln_final.*"])
    assert cache["hook_pooled"].shape == (2, 32)
    ln = params["params"]["ln_final"]
    normed = cache["ln_final.hook_normalized"] * ln["w"] + ln["b"]
    W, b = model.readout_weights(params)
    np.testing.assert_allclose(normed.mean(1) @ W + b, logits, atol=1e-5)


def test_feature_extractor_without_head():
    model = mj.ViT(_cfg(n_classes=0))
    params = mj.init(model, jax.random.key(0))
    out, _ = mj.run(model, params, jnp.zeros((2, 16, 16, 3)))
    assert out.shape == (2, 17, 32) and "W_U" not in params["params"]
    assert model.readout_weights(params) is None and model.readout().site is None


# -- FlexiViT -----------------------------------------------------------------------------------


def test_patchify_order():
    x = jax.random.normal(jax.random.key(0), (2, 8, 12, 3))
    patches = patchify(x, 4)  # [batch, 2 * 3, 4 * 4 * 3]
    assert patches.shape == (2, 6, 48)
    for i in range(2):
        for j in range(3):
            want = x[:, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4, :].reshape(2, -1)
            np.testing.assert_array_equal(patches[:, 3 * i + j], want)


@pytest.mark.parametrize("old, new", [(8, 16), (4, 12), ((4, 6), (8, 9)), (3, 3)])
def test_pi_resize_preserves_inner_products_when_upsampling(old, new):
    old_hw = (old, old) if isinstance(old, int) else old
    new_hw = (new, new) if isinstance(new, int) else new
    C, D = 3, 5
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, *old_hw, C)).astype(np.float32)  # 7 patches
    w = rng.normal(size=(*old_hw, C, D)).astype(np.float32)  # HWIO kernel
    resize = jax.jit(  # one compiled program, not op-by-op dispatch
        jax.vmap(lambda p: jax.image.resize(p, (*new_hw, C), "bilinear", antialias=False))
    )
    x_new = resize(x)
    w_new = pi_resize(w, new)
    assert w_new.shape == (*new_hw, C, D)
    lhs = np.einsum("nhwc,hwcd->nd", x, w)
    rhs = np.einsum("nhwc,hwcd->nd", np.asarray(x_new), np.asarray(w_new))
    np.testing.assert_allclose(rhs, lhs, rtol=1e-4, atol=1e-4)
    # B's columns are the resized one-hot patches.
    B = bilinear_resize_matrix(old_hw, new_hw)
    e = np.zeros(old_hw, np.float32)
    e[1, 2] = 1.0
    col = resize(jnp.broadcast_to(e[None, ..., None], (1, *old_hw, C)))[0, ..., 0].reshape(-1)
    np.testing.assert_allclose(B[:, 1 * old_hw[1] + 2], col, atol=1e-6)


def test_pi_resize_downsampling_and_pos_embed():
    w = jnp.asarray(np.random.default_rng(0).normal(size=(16, 16, 1, 4)), jnp.float32)
    w8 = pi_resize(w, 8)
    assert w8.shape == (8, 8, 1, 4)
    # Downsampling is the least-squares solution: w' = argmin |B^T w' - w|.
    B = bilinear_resize_matrix(16, 8)
    ref = np.linalg.lstsq(B.T, np.asarray(w).reshape(256, -1), rcond=None)[0]
    np.testing.assert_allclose(w8.reshape(64, -1), ref, atol=1e-4)
    # Gradients reach the stored kernel (training at several patch sizes updates it).
    g = jax.grad(lambda k: pi_resize(k, 8).sum())(w)
    assert float(jnp.abs(g).sum()) > 0
    pos = jnp.asarray(np.random.default_rng(1).normal(size=(2, 2, 6)), jnp.float32)
    assert resize_pos_embed(pos, (4, 4)).shape == (4, 4, 6)
    assert resize_pos_embed(pos, 2) is pos or jnp.array_equal(resize_pos_embed(pos, 2), pos)
    up = resize_pos_embed(jnp.ones((2, 2, 3)), 4)
    np.testing.assert_allclose(up, 1.0, atol=1e-6)  # constant stays constant


def test_with_patch_size_same_params(vit):
    model, params, images = vit
    assert model.with_patch_size(4) == model.with_patch_size(None).with_patch_size(4)
    base, _ = mj.run(model, params, images)
    same, _ = mj.run(model.with_patch_size(4), params, images)
    np.testing.assert_allclose(same, base, atol=0)
    out, cache = mj.run(model.with_patch_size(8), params, images, cache="hook_embed")
    assert out.shape == (2, 5) and cache["hook_embed"].shape == (2, 1 + 4, 32)
    assert float(jnp.abs(out - base).max()) > 0  # a different (resized) computation
    # The embedding at patch 8 is PI-resized W_patch on 8x8 patches, plus resized positions.
    p = params["params"]
    W8 = pi_resize(p["W_patch"].reshape(4, 4, 3, 32), 8).reshape(8 * 8 * 3, 32)
    np.testing.assert_allclose(
        cache["hook_embed"][:, 1:], patchify(images, 8) @ W8 + p["b_patch"], atol=1e-4
    )


def _shapes_dataset(rng, n, size=32):
    """Grey 32x32 images, 4 classes: horizontal / vertical / diagonal stripes of random
    period and phase, or a bright square of random size and place; plus noise."""
    y = rng.integers(0, 4, n)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    period = rng.uniform(4, 9, n)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    horiz = np.sin(2 * np.pi * yy / period + phase)
    vert = np.sin(2 * np.pi * xx / period + phase)
    diag = np.sin(2 * np.pi * (xx + yy) / (period * np.sqrt(2)) + phase)
    s = rng.integers(8, 17, n)[:, None, None]
    r0 = rng.integers(0, size - s + 1)
    c0 = rng.integers(0, size - s + 1)
    inside = (yy >= r0) & (yy < r0 + s) & (xx >= c0) & (xx < c0 + s)
    square = inside.astype(np.float32) * 2 - 1
    images = np.select([y[:, None, None] == k for k in range(4)], [horiz, vert, diag, square])
    images = images + 0.3 * rng.standard_normal(images.shape)
    return images[..., None].astype(np.float32), y.astype(np.int32)


def test_flexivit_training_gives_consistent_predictions_across_patch_sizes():
    """One set of weights trained with the patch size drawn from {8, 16} per step agrees
    with itself at both sizes on held-out images (FlexiViT's claim, in miniature)."""
    cfg = mj.ViTConfig(
        image_size=32,
        patch_size=16,
        n_channels=1,
        d_model=32,
        n_layers=2,
        n_heads=4,
        d_mlp=64,
        n_classes=4,
    )
    model = mj.ViT(cfg)
    params = mj.init(model, jax.random.key(0))["params"]
    opt = optax.adam(3e-3)

    def make_step(patch):
        m = model.with_patch_size(patch)

        def loss(p, x, y):
            logits = m.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        @jax.jit
        def step(p, state, x, y):
            grads = jax.grad(loss)(p, x, y)
            updates, state = opt.update(grads, state, p)
            return optax.apply_updates(p, updates), state

        return step

    steps = {patch: make_step(patch) for patch in (8, 16)}
    rng = np.random.default_rng(0)
    x_train, y_train = _shapes_dataset(rng, 2048)
    state = opt.init(params)
    for _ in range(200):
        idx = rng.integers(0, len(x_train), 64)
        params, state = steps[int(rng.choice([8, 16]))](params, state, x_train[idx], y_train[idx])
    x_test, y_test = _shapes_dataset(np.random.default_rng(1), 512)
    preds = {
        patch: np.asarray(
            mj.run(model.with_patch_size(patch), {"params": params}, x_test)[0]
        ).argmax(-1)
        for patch in (8, 16)
    }
    acc = {patch: float((preds[patch] == y_test).mean()) for patch in preds}
    agreement = float((preds[8] == preds[16]).mean())
    assert acc[8] > 0.6 and acc[16] > 0.6, acc  # chance is 0.25
    assert agreement >= 0.9, (agreement, acc)
