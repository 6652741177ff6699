"""Every analysis on every model family, through the protocol only: a tiny random ViT
classifier and a tiny encoder-decoder. Each sweep equals its definition written as a loop
of single `mj.run` calls (or jax.grad by hand), and compiles once."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax.analysis import (
    attribution,
    circuits,
    detectors,
    metrics,
    patching,
    path_patching,
    weights,
)
from mechjax.analysis import logit_attribution as la

B = 2
N_ENC, N_DEC, V = 4, 3, 11
# The slow variants repeat a check on the other family (about 10 s each on 2 CPU cores).
SLOW = pytest.mark.slow


def _perturb(params, seed=0):
    """Larger matrices than the init and random norm / bias values: patches move outputs."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [
        (x * 3.0 if x.ndim >= 2 else x) + 0.1 * jax.random.normal(k, x.shape)
        for x, k in zip(leaves, keys)
    ]
    return jax.tree.unflatten(treedef, leaves)


def _vit(pool="cls"):
    cfg = mj.ViTConfig(
        image_size=8, patch_size=4, d_model=16, n_layers=2, n_heads=2, n_classes=3, d_mlp=32,
        pool=pool,
    )  # fmt: skip
    model = mj.ViT(cfg)
    return model, _perturb(mj.init(model, jax.random.key(0)))


@pytest.fixture(scope="module")
def vit():
    model, params = _vit()
    clean = jax.random.normal(jax.random.key(1), (B, 8, 8, 3))
    corr = jax.random.normal(jax.random.key(2), (B, 8, 8, 3))
    _, cache = mj.run(model, params, clean, cache=True)
    metric = metrics.class_logit_diff(jnp.array([0, 1]), 2)
    return dict(model=model, params=params, clean=clean, corr=corr, cache=cache, metric=metric)


def _ed_metric(lg):
    return jnp.mean(lg[:, -1, 1] - lg[:, -1, 2]) + 0.1 * jnp.mean(lg[:, 0, 3])


@pytest.fixture(scope="module")
def encdec():
    cfg = mj.EncoderDecoderConfig(
        d_model=16, n_encoder_layers=2, n_decoder_layers=2, n_heads=2, d_mlp=32, d_vocab=V,
        n_ctx=8,
    )  # fmt: skip
    model = mj.EncoderDecoder(cfg)
    params = _perturb(mj.init(model, jax.random.key(0)))
    rng = np.random.default_rng(0)

    def inputs():
        return {
            "encoder": rng.integers(0, V, (B, N_ENC)).astype(np.int32),
            "decoder": rng.integers(0, V, (B, N_DEC)).astype(np.int32),
        }

    clean, corr = inputs(), inputs()
    _, cache = mj.run(model, params, clean, cache=True)
    return dict(model=model, params=params, clean=clean, corr=corr, cache=cache, metric=_ed_metric)


def _oh(n, i):
    """Bool one-hot mask: a leaf, so a loop over i compiles once."""
    m = np.zeros(n, bool)
    m[i] = True
    return m


def _compiles(fn):
    """Number of programs jitted function `fn` has compiled so far."""
    return fn._cache_size()


# -- activation patching --------------------------------------------------------------------


@pytest.mark.parametrize("family", ["vit", pytest.param("encdec", marks=SLOW)])
def test_head_by_pos_sweep_equals_loop_of_runs(family, request):
    s = request.getfixturevalue(family)
    model, params, corr, cache, metric = (
        s[k] for k in ("model", "params", "corr", "cache", "metric")
    )
    site, stack = ("z", None) if family == "vit" else ("cross_z", "decoder.blocks")
    template = "blocks.{}.attn.hook_z" if family == "vit" else "decoder.blocks.{}.cross_attn.hook_z"
    before = _compiles(patching._sweep)
    got = np.asarray(
        patching.activation_patch(
            model, params, corr, cache, metric, site, ("pos", "head"), stack=stack
        )
    )
    assert _compiles(patching._sweep) == before + 1  # one program for the whole sweep
    n_pos = cache[template.format(0)].shape[1]
    want = np.zeros((2, n_pos, 2))
    for layer in range(2):
        name = template.format(layer)
        for p in range(n_pos):
            for h in range(2):
                iv = mj.patch(name, cache[name], positions=_oh(n_pos, p), heads=_oh(2, h))
                want[layer, p, h] = float(
                    metric(mj.run(model, params, corr, interventions=[iv])[0])
                )
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
    assert np.ptp(want) > 1e-3


def test_position_metric_on_a_pooled_readout_is_refused(vit):
    with pytest.raises(ValueError, match="pooled"):
        patching.attn_head_out_all_pos(
            vit["model"], vit["params"], vit["corr"], vit["cache"], metrics.logit_diff(1, 2)
        )


# -- path patching --------------------------------------------------------------------------


def _naive_path(model, params, clean, corr, metric, sender_stack, sender_attn, rec, heads, pos):
    """Step 1 with every head of the model frozen to clean except the sender (corrupted)."""
    _, cc = mj.run(model, params, clean, cache=True)
    _, kc = mj.run(model, params, corr, cache=True)
    zs = [n for n in cc if n.endswith(".hook_z")]
    st = model.stack(sender_stack)
    shape, axes = cc[rec].shape, mj.site_axes(model, rec)
    mask = np.zeros((1,) + shape[1:], bool)
    sl = [slice(None)] * len(shape)
    if heads is not None:
        sl[[i for i, a in enumerate(axes) if a in ("head", "kv_head")][0]] = heads
    if pos is not None:
        sl[1] = pos
    mask[tuple(sl)] = True
    out = np.zeros((st.n_layers, st.n_heads))
    for L in range(st.n_layers):
        s = st.site(L, f"{sender_attn}.hook_z")
        for h in range(st.n_heads):
            sender = jnp.asarray(_oh(st.n_heads, h))[None, None, :, None]
            ivs = [mj.patch(z, jnp.where(sender, kc[z], cc[z]) if z == s else cc[z]) for z in zs]
            _, r = mj.run(model, params, clean, cache=rec, interventions=ivs)
            lg, _ = mj.run(model, params, clean, interventions=[mj.clamp(rec, r[rec], mask=mask)])
            out[L, h] = float(metric(lg))
    return out


PATHS = {
    "vit": ("vit", "blocks", "attn", "blocks.1.attn.hook_v", [1], None),
    "encoder_to_cross_v": (
        "encdec", "encoder.blocks", "attn", "decoder.blocks.1.cross_attn.hook_v", [0], None,
    ),
    "self_to_cross_q": (
        "encdec", "decoder.blocks", "attn", "decoder.blocks.1.cross_attn.hook_q", [1], [2],
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    "case", ["vit", "encoder_to_cross_v", pytest.param("self_to_cross_q", marks=SLOW)]
)
def test_path_patch_equals_naive_two_pass(case, request):
    fam, sstack, sattn, rec, heads, pos = PATHS[case]
    s = request.getfixturevalue(fam)
    args = (s["model"], s["params"], s["clean"], s["corr"], s["metric"])
    before = _compiles(path_patching._path_sweep)
    got = path_patching.path_patch(
        *args, [(rec, heads, pos)], sender_stack=sstack, sender_attn=sattn, sender_layers=range(2)
    )
    assert _compiles(path_patching._path_sweep) == before + 1
    want = _naive_path(*args, sstack, sattn, rec, heads, pos)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
    assert np.ptp(want) > 1e-4
    if case == "self_to_cross_q":  # the default senders include the receiver's own layer
        default = path_patching.path_patch(*args, [(rec, heads, pos)])
        np.testing.assert_allclose(default, got, atol=1e-6)


# -- attribution patching -------------------------------------------------------------------


@pytest.mark.parametrize("family", [pytest.param("vit", marks=SLOW), "encdec"])
def test_attribution_equals_gradient_times_difference(family, request):
    s = request.getfixturevalue(family)
    model, params, corr, cache, metric = (
        s[k] for k in ("model", "params", "corr", "cache", "metric")
    )
    site, stack, name = {
        "vit": ("z", None, "blocks.0.attn.hook_z"),
        "encdec": ("cross_z", "decoder.blocks", "decoder.blocks.0.cross_attn.hook_z"),
    }[family]
    before = _compiles(attribution._attribute)
    got = attribution.attribute(
        model, params, corr, cache, metric, site, ("pos", "head"), stack=stack
    )
    assert _compiles(attribution._attribute) == before + 1
    _, kc = mj.run(model, params, corr, cache=name)

    def f(delta):
        return metric(mj.run(model, params, corr, interventions=[mj.steer(name, delta)])[0])

    value, grad = jax.value_and_grad(f)(jnp.zeros(kc[name].shape))
    want = value + jnp.sum((cache[name] - kc[name]) * grad, axis=(0, 3))  # [pos, head]
    np.testing.assert_allclose(got[0], want, atol=1e-5, rtol=1e-4)
    assert np.ptp(np.asarray(want)) > 1e-3


def _ln(x, w, b, eps=1e-5):
    c = x - x.mean(-1, keepdims=True)
    return c / jnp.sqrt((c**2).mean(-1, keepdims=True) + eps) * w + b


@pytest.mark.slow
def test_edge_attribution_into_cross_attention_query(encdec):
    """EAP score(decoder.L0H1 -> decoder.L1X0.q) = d/de metric(the cross-attention query of
    head 0, layer 1 reads resid_mid + e * (clean - corrupted write of head L0H1))."""
    model, params, corr, cache, metric = (
        encdec[k] for k in ("model", "params", "corr", "cache", "metric")
    )
    res = attribution.edge_attribution(model, params, corr, cache, metric)
    S, R, snd = res["scores"], res["receivers"], res["senders"]
    assert snd[0] == "decoder.embed" and R[-1] == "logits" and "decoder.L1X1.q" in R
    assert np.isnan(S[R.index("decoder.L0H0.q"), snd.index("decoder.L0X0")])
    assert not np.isnan(S[R.index("decoder.L0X0.q"), snd.index("decoder.L0H1")])  # same layer
    p = params["params"]["decoder"]
    _, kc = mj.run(model, params, corr, cache=True)
    z = "decoder.blocks.0.attn.hook_z"
    diff = jnp.einsum("bpe,ed->bpd", (cache[z] - kc[z])[:, :, 1], p["blocks_0"]["attn"]["W_O"][1])
    b1 = p["blocks_1"]

    def q_input(x, eps):
        mid = kc["decoder.blocks.1.hook_resid_mid"] + eps * diff
        xin = _ln(mid, b1["ln_cross"]["w"], b1["ln_cross"]["b"])
        return x.at[:, :, 0].set(xin @ b1["cross_attn"]["W_Q"][0] + b1["cross_attn"]["b_Q"][0])

    site = "decoder.blocks.1.cross_attn.hook_q"
    d = jax.grad(
        lambda e: metric(
            mj.run(model, params, corr, interventions=[mj.hook(site, q_input, value=e)])[0]
        )
    )(0.0)
    assert abs(float(d)) > 1e-6
    np.testing.assert_allclose(
        S[R.index("decoder.L1X0.q"), snd.index("decoder.L0H1")], d, rtol=2e-3
    )


# -- direct logit attribution ---------------------------------------------------------------


def _dla_total(dla):
    return sum(
        v if k in ("embed", "constant") else v.sum(tuple(range(v.ndim - 1))) for k, v in dla.items()
    )


@pytest.mark.parametrize("family", ["vit_cls", "vit_mean", "encdec"])
def test_dla_sums_to_the_logit_difference(family, request):
    if family == "encdec":
        s = request.getfixturevalue("encdec")
        model, params, inputs = s["model"], s["params"], s["clean"]
    else:
        model, params = _vit(family.split("_")[1])
        inputs = jax.random.normal(jax.random.key(1), (B, 8, 8, 3))
    logits, cache = mj.run(model, params, inputs, cache=True)
    good, bad = jnp.array([0, 1]), jnp.array([2, 0])
    dla = la.direct_logit_attribution(model, params, cache, good, bad)
    last = logits if logits.ndim == 2 else logits[:, -1]
    want = last[jnp.arange(B), good] - last[jnp.arange(B), bad]
    np.testing.assert_allclose(_dla_total(dla), want, atol=1e-4, rtol=1e-4)
    if family == "encdec":
        assert dla["cross_attn_heads"].shape == (2, 2, B) and "cross_attn_bias" in dla
    assert np.ptp(np.asarray(dla["heads"])) > 1e-3
    lens, labels = la.logit_lens(model, params, cache)
    assert labels[-1] == "final_post"
    np.testing.assert_allclose(lens[-1], logits, atol=1e-4, rtol=1e-4)
    parts, labels = la.decompose_resid(model, cache)
    last_resid = model.stack(model.readout().stack).site(1, "hook_resid_post")
    np.testing.assert_allclose(parts.sum(0), cache[last_resid], atol=1e-4)


# -- circuits -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", [pytest.param("vit", marks=SLOW), "encdec"])
def test_circuit_mean_ablation_equals_manual_runs(family, request):
    s = request.getfixturevalue(family)
    model, params, x, metric = s["model"], s["params"], s["clean"], s["metric"]
    nodes = {
        "vit": ["L0H1", "MLP1", "L1H0"],
        "encdec": ["encoder.L0H1", "encoder.MLP1", "decoder.L1X0", "decoder.L0H0", "decoder.MLP0"],
    }[family]
    circ = circuits.circuit_from_nodes(model, nodes)
    got = circuits.evaluate(model, params, x, metric, circ, method="mean")
    _, ref = mj.run(model, params, x, cache=True)
    names = circuits.node_names(model)
    ivs = []
    for key, mask in circ.items():
        for layer in range(len(names[key])):
            out = ~np.asarray(mask[layer], bool)
            if not out.any():
                continue
            prefix = {"vit": "blocks", "encdec": key.split(".")[0] + ".blocks"}[family]
            if key.endswith("mlps"):
                site, heads = f"{prefix}.{layer}.hook_mlp_out", None
            else:
                attn = "cross_attn" if "cross" in key else "attn"
                site, heads = f"{prefix}.{layer}.{attn}.hook_z", list(np.flatnonzero(out))
            mean = ref[site].mean(0, keepdims=True)
            ivs.append(mj.ablate(site, heads=heads, method="mean", mean=mean))
    want = metric(mj.run(model, params, x, interventions=ivs)[0])
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    f = circuits.faithfulness(model, params, x, metric, circ, method="mean")
    np.testing.assert_allclose(f["full"], metric(mj.run(model, params, x)[0]), atol=1e-5)
    with pytest.raises(ValueError, match="bad node"):
        circuits.circuit_from_nodes(model, ["L9H9"])


# -- detectors and weights ------------------------------------------------------------------


def test_detectors_where_they_apply(vit, encdec):
    model, params, imgs = vit["model"], vit["params"], vit["clean"]
    pats = np.stack([np.asarray(vit["cache"][f"blocks.{i}.attn.hook_pattern"]) for i in range(2)])
    # [layer, batch, head, q, k]; position 0 is the class token, then a 2x2 patch grid.
    cls = detectors.class_token_score(model, params, imgs)
    np.testing.assert_allclose(cls, pats[:, :, :, 1:, 0].mean((1, 3)), atol=1e-6)
    fine = model.with_patch_size(2)  # FlexiViT: the same params on a 4x4 grid
    near = detectors.neighbour_score(fine, params, imgs)
    _, c = mj.run(fine, params, imgs, cache="blocks.*.attn.hook_pattern")
    want = np.zeros((2, 2))
    for layer in range(2):
        pat = np.asarray(c[f"blocks.{layer}.attn.hook_pattern"])  # [batch, head, 17, 17]
        for q in range(16):
            rq, cq = divmod(q, 4)
            nb = [
                1 + k for k in range(16) if k != q and max(abs(k // 4 - rq), abs(k % 4 - cq)) <= 1
            ]
            want[layer] += pat[:, :, 1 + q, nb].sum(-1).mean(0) / 16
    np.testing.assert_allclose(near, want, atol=1e-6)
    with pytest.raises(ValueError, match="class_token_score"):
        detectors.induction_score(model, params, imgs)
    model, params, x = encdec["model"], encdec["params"], encdec["clean"]
    _, cache = mj.run(model, params, x, cache="decoder.blocks.*.attn.hook_pattern")
    prev = detectors.previous_token_score(model, params, x)  # the decoder's token stream
    want = [
        detectors.pattern_score(
            cache[f"decoder.blocks.{i}.attn.hook_pattern"], np.eye(N_DEC, k=-1, dtype=bool)
        )
        for i in range(2)
    ]
    np.testing.assert_allclose(prev, np.stack(want), atol=1e-6)
    assert detectors.induction_score(model, params, x, stack="encoder.blocks").shape == (2, 2)
    with pytest.raises(ValueError, match="cross-attention"):
        detectors.duplicate_token_score(model, params, x, attn="cross_attn")


def test_weight_circuits_across_stacks(encdec):
    model, params = encdec["model"], encdec["params"]
    p = params["params"]
    got = weights.composition_scores(
        model, params, "v", attn="cross_attn", sender_stack="encoder.blocks"
    )
    assert got.shape == (2, 2, 2, 2) and not np.isnan(got).any()  # encoder runs first
    a1, a2 = p["encoder"]["blocks_0"]["attn"], p["decoder"]["blocks_1"]["cross_attn"]
    ov1 = np.asarray(a1["W_V"][1] @ a1["W_O"][1], np.float64)
    ov2 = np.asarray(a2["W_V"][0] @ a2["W_O"][0], np.float64)
    want = np.linalg.norm(ov1 @ ov2) / (np.linalg.norm(ov1) * np.linalg.norm(ov2))
    assert got[0, 1, 1, 0] == pytest.approx(want, rel=1e-4)
    q = weights.composition_scores(model, params, "q", attn="cross_attn")  # decoder -> decoder
    assert not np.isnan(q[0, :, 0]).any() and np.isnan(q[1, :, 0]).all()
    f = weights.head_factors(model, params, stack="decoder.blocks", attn="cross_attn")
    chex.assert_shape(f["W_O"], (2, 2, 8, 16))
