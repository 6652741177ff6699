"""Draft heads (Medusa, Hydra, Hydra++), the candidate Tree, and training with a frozen base."""

import functools
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax import train
from mechjax.cli import main
from mechjax.models import heads as H
from mechjax.train import ConfigError, Task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V, K = 11, 3

VARIANTS = ["medusa", "hydra", "hydra++"]


def _base(**kw):
    cfg = dict(d_model=16, n_layers=2, n_heads=2, d_vocab=V, n_ctx=16, attn_only=True)
    cfg.update(positional_embedding_type="rotary", **kw)
    model = mj.Transformer(mj.TransformerConfig(**cfg))
    return model, mj.init(model, jax.random.key(0))


BASE, BASE_PARAMS = _base()


def _model(variant, base=BASE, base_params=BASE_PARAMS, perturb=False):
    n_layers = 2 if variant == "hydra++" else 1
    model = H.DraftModel(base, H.DraftConfig.from_variant(variant, n_heads=K, n_layers=n_layers))
    params = H.init_from_base(model, jax.random.key(1), base_params)
    if perturb:  # random head weights, so that every input matters
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.key(2), len(leaves))
        paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
        leaves = [
            x if p[1].key == "base" else x + 0.3 * jax.random.normal(k, x.shape)
            for p, x, k in zip(paths, leaves, keys)
        ]
        params = jax.tree.unflatten(treedef, leaves)
    return model, params


def _tokens(b=2, n=9, seed=3):
    return jax.random.randint(jax.random.key(seed), (b, n), 0, V)


# -- model, sites, protocol --------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_sites_shapes_and_base_output(variant):
    model, params = _model(variant)
    toks = _tokens()
    names = mj.site_names(model)
    base_names = mj.site_names(BASE)
    assert names[: len(base_names)] == base_names  # the base's sites, then the heads'
    for k in range(K):
        for s in ("hook_in", "res.0.hook_pre", "res.0.hook_post", "hook_out", "hook_logits"):
            assert f"draft_heads.{k}.{s}" in names
        embeds = [n for n in names if n.startswith(f"draft_heads.{k}.hook_embed_")]
        assert len(embeds) == (0 if variant == "medusa" else k + 1)
    assert any(n.startswith("draft_heads.prefix.") for n in names) == (variant == "hydra++")
    assert mj.site_axes(model, "draft_heads.1.hook_out") == ("batch", "pos", "d_model")
    assert mj.site_axes(model, "draft_heads.1.hook_logits") == ("batch", "pos", "d_vocab")
    logits, cache = mj.run(model, params, toks, cache="draft_heads.*.hook_logits")
    np.testing.assert_array_equal(logits, mj.run(BASE, BASE_PARAMS, toks)[0])
    assert cache["draft_heads.2.hook_logits"].shape == (2, 9, V)
    base_logits, drafts = H.head_logits(model, params, toks)
    assert drafts.shape == (2, 9, K, V)
    np.testing.assert_array_equal(drafts[:, :, 2], cache["draft_heads.2.hook_logits"])
    # interventions on head sites work like anywhere else
    _, ablated = H.head_logits(
        model, params, toks, interventions=[mj.ablate("draft_heads.1.hook_out")]
    )
    b_U = params["params"]["draft_heads_1"]["b_U"]  # all that is left of head 1
    np.testing.assert_allclose(ablated[:, :, 1], jnp.broadcast_to(b_U, (2, 9, V)), atol=1e-6)
    np.testing.assert_array_equal(ablated[:, :, 0], drafts[:, :, 0])
    # the protocol is the base's
    assert model.layer_stacks() == BASE.layer_stacks() and model.readout() == BASE.readout()
    W, b = model.readout_weights(params)
    np.testing.assert_array_equal(W, BASE_PARAMS["params"]["W_U"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        mj.run(model, params, jnp.full((1, 3), V))


@pytest.mark.parametrize(
    "variant, base_kw",
    [("medusa", {}), ("hydra", {}), ("hydra++", {}), ("medusa", {"normalization_type": None})],
    ids=["medusa", "hydra", "hydra++", "medusa_no_final_norm"],
)
def test_zero_init_heads_are_the_base_unembedding(variant, base_kw):
    """At init every head's logits are the base's unembedding of the hidden state (so each
    starts as "the next token again"): zero residual layers, W_U copied, prefix = identity."""
    base, base_params = _base(**base_kw) if base_kw else (BASE, BASE_PARAMS)
    model, params = _model(variant, base, base_params)
    toks = _tokens()
    logits, drafts = H.head_logits(model, params, toks)
    for k in range(K):
        np.testing.assert_allclose(drafts[:, :, k], logits, rtol=1e-6, atol=1e-6)
    # and the hidden state is the vector the base's unembedding reads
    _, hidden = H.base_hidden(model, params, toks)
    p = base_params["params"]
    np.testing.assert_allclose(hidden @ p["W_U"] + p["b_U"], logits, rtol=1e-5, atol=1e-5)


def test_hydra_depends_on_the_drafted_tokens_medusa_does_not():
    toks = _tokens(b=1, n=12)
    s = 8  # change one token; head k at t reads tokens t+1 .. t+k+1 (and the base, <= t)
    other = toks.at[0, s].set((toks[0, s] + 1) % V)
    for variant in ("medusa", "hydra"):
        model, params = _model(variant, perturb=True)
        a = H.head_logits(model, params, toks)[1][0]  # [pos, K, V]
        b = H.head_logits(model, params, other)[1][0]
        for k in range(K):
            changed = [t for t in range(s) if not np.allclose(a[t, k], b[t, k])]
            want = list(range(s - k - 1, s)) if variant == "hydra" else []
            assert changed == want, (variant, k, changed)


# -- losses and metrics ------------------------------------------------------------------------


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_draft_loss_ce_and_distillation_match_naive_loops():
    rng = np.random.default_rng(0)
    B, P = 2, 7
    drafts = rng.normal(size=(B, P, K, V)).astype(np.float32)
    teacher = rng.normal(size=(B, P, V)).astype(np.float32)
    toks = rng.integers(0, V, size=(B, P))
    mask = np.ones((B, P), np.float32)
    mask[1, -2:] = 0  # a right-padded row
    total, per = H.draft_loss(jnp.asarray(drafts), jnp.asarray(toks))
    _, per_kd = H.draft_loss(jnp.asarray(drafts), jnp.asarray(toks), teacher_logits=teacher)
    _, per_m = H.draft_loss(jnp.asarray(drafts), jnp.asarray(toks), mask=mask)
    for k in range(K):
        ce, kd, ce_m, w = [], [], [], []
        for b in range(B):
            for t in range(P - k - 2):
                logq = _log_softmax(drafts[b, t, k].astype(np.float64))
                ce.append(-logq[toks[b, t + k + 2]])
                p = np.exp(_log_softmax(teacher[b, t + k + 1].astype(np.float64)))
                kd.append(-(p * logq).sum())  # CE to the teacher's softmax
                w.append(mask[b, t] * mask[b, t + k + 2])
                ce_m.append(ce[-1] * w[-1])
        np.testing.assert_allclose(per[k], np.mean(ce), rtol=1e-5)
        np.testing.assert_allclose(per_kd[k], np.mean(kd), rtol=1e-5)
        np.testing.assert_allclose(per_m[k], np.sum(ce_m) / np.sum(w), rtol=1e-5)
    np.testing.assert_allclose(total, per.sum(), rtol=1e-6)
    acc = H.head_accuracy(jnp.asarray(drafts), jnp.asarray(toks))
    want = [(drafts[:, : P - k - 2, k].argmax(-1) == toks[:, k + 2 :]).mean() for k in range(K)]
    np.testing.assert_allclose(acc, want, rtol=1e-6)


def test_distillation_loss_gives_no_gradient_to_the_teacher():
    rng = np.random.default_rng(1)
    drafts = jnp.asarray(rng.normal(size=(1, 6, K, V)), jnp.float32)
    teacher = jnp.asarray(rng.normal(size=(1, 6, V)), jnp.float32)
    g = jax.grad(lambda t: H.draft_loss(drafts, jnp.zeros((1, 6), int), teacher_logits=t)[0])
    np.testing.assert_array_equal(g(teacher), 0.0)


# -- the tree and drafting ---------------------------------------------------------------------

PATHS = ((1,), (0, 0), (0,), (0, 1), (1, 0), (0, 0, 0))  # given out of order on purpose


def test_tree_arrays():
    tree = H.Tree(PATHS)
    assert tree.paths == ((0,), (1,), (0, 0), (0, 1), (1, 0), (0, 0, 0))
    assert tree.n_nodes == 6
    np.testing.assert_array_equal(tree.depth, [1, 1, 2, 2, 2, 3])
    np.testing.assert_array_equal(tree.parent, [-1, -1, 0, 0, 1, 2])
    want = np.zeros((6, 6), bool)
    for n, m in [(0, 0), (1, 1), (2, 0), (2, 2), (3, 0), (3, 3), (4, 1), (4, 4)]:
        want[n, m] = True
    want[5, [0, 2, 5]] = True
    np.testing.assert_array_equal(tree.ancestors, want)
    assert H.Tree([[0], [0, 0]]) == H.Tree(((0, 0), (0,))) and hash(H.Tree([[0]])) == hash(
        H.Tree(((0,),))
    )
    assert H.Tree(()).n_nodes == 0


@pytest.mark.parametrize(
    "paths, kw, message",
    [
        (((0,), (0, 1, 2)), {}, r"tree path \(0, 1, 2\) needs its prefix \(0, 1\)"),
        (((0,), (0, 0)), {"max_depth": 1}, r"\(0, 0\) has depth 2 but there are only 1 draft"),
        (((0,), (3,)), {"top_k": 3}, r"\(3,\) asks for candidate rank 3 but top_k=3: ranks must "
         r"be in 0..2"),
        (((0,), (0,)), {}, r"tree path \(0,\) appears twice"),
        (((),), {}, r"tree path \(\) is empty"),
        ((0, 1), {}, r"tree path 0 is not a sequence of ints"),
        (((0.5,),), {}, r"tree path \(0.5,\) must hold ints"),
        (((-1,),), {}, r"tree path \(-1,\): candidate ranks must be >= 0"),
    ],
    ids=["missing_prefix", "too_deep", "rank_too_large", "duplicate", "empty", "not_a_path",
         "not_ints", "negative"],
)  # fmt: skip
def test_tree_validation_errors_name_the_path(paths, kw, message):
    with pytest.raises(ValueError, match=message):
        H.Tree(paths, **kw)


def _naive_node_tokens(model, params, prompt, paths):
    """Per node, the rank-i_d token of head d read from the teacher-forced forward on
    prompt + [root, ancestors' tokens] (an independent path through `__call__`)."""
    P = prompt.shape[1]
    root = np.asarray(mj.run(model, params, prompt)[0][:, -1].argmax(-1))
    tokens = {}
    for path in sorted(paths, key=len):
        d = len(path) - 1
        chain = [root] + [tokens[path[: j + 1]] for j in range(d)]
        seq = jnp.concatenate([prompt, jnp.stack(chain, axis=1)], axis=1)
        drafts = H.head_logits(model, params, seq)[1]  # [b, pos, K, V]
        order = np.argsort(-np.asarray(drafts[:, P - 1, d]), axis=-1, kind="stable")
        tokens[path] = order[:, path[-1]]
    return root, tokens


@pytest.mark.parametrize("variant", VARIANTS)
def test_draft_tree_equals_a_naive_per_node_computation(variant):
    model, params = _model(variant, perturb=True)
    prompt = _tokens(b=3, n=6)
    tree = H.Tree(PATHS)
    root, naive = _naive_node_tokens(model, params, prompt, tree.paths)
    _, hidden = H.base_hidden(model, params, prompt)  # [b, pos, d_model]
    got = H.draft_tree(model, params, hidden[:, -1], root, PATHS, hidden_seq=hidden, seq_len=6)
    assert got.shape == (3, tree.n_nodes) and got.dtype == jnp.int32
    np.testing.assert_array_equal(got, np.stack([naive[p] for p in tree.paths], axis=1))
    if variant == "hydra":  # siblings are distinct candidates of the same head
        assert (got[:, 0] != got[:, 1]).all()
    if variant == "hydra++":  # a buffer longer than the sequence: later slots are ignored
        buf = jnp.concatenate([hidden, jnp.ones((3, 4, hidden.shape[-1]))], axis=1)
        again = H.draft_tree(
            model, params, hidden[:, -1], root, tree, hidden_seq=buf, seq_len=jnp.full(3, 6)
        )
        np.testing.assert_array_equal(again, got)


def test_draft_tree_is_jittable_and_compiles_once():
    model, params = _model("hydra", perturb=True)
    prompt = _tokens(b=2, n=5)
    _, hidden = H.base_hidden(model, params, prompt)
    tree = H.Tree(PATHS)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(params, h, root):
        return H.draft_tree(model, params, h, root, tree)

    a = step(params, hidden[:, -1], jnp.array([1, 2]))
    b = step(params, hidden[:, 0], jnp.array([3, 4]))
    assert a.shape == b.shape == (2, 6)


def test_draft_tree_errors():
    model, params = _model("hydra++")
    h = jnp.zeros((2, 16))
    with pytest.raises(ValueError, match="prefix layer: pass hidden_seq"):
        H.draft_tree(model, params, h, jnp.zeros(2, int), PATHS)
    with pytest.raises(ValueError, match="only 3 draft heads"):
        H.draft_tree(model, params, h, jnp.zeros(2, int), ((0,), (0, 0), (0, 0, 0), (0,) * 4))
    with pytest.raises(ValueError, match=r"hidden must be \[batch, d_model=16\]"):
        H.draft_tree(model, params, jnp.zeros((2, 3, 16)), jnp.zeros(2, int), PATHS)
    with pytest.raises(ValueError, match="next_token must be int"):
        H.draft_tree(model, params, h, jnp.zeros(2), PATHS)
    with pytest.raises(ValueError, match="kind='x'; valid kinds: medusa, hydra"):
        H.DraftConfig(kind="x")


def test_accept_length():
    tree = H.Tree(PATHS)  # nodes (0,) (1,) (0,0) (0,1) (1,0) (0,0,0)
    target = jnp.array([[5, 6, 7], [5, 6, 7], [9, 9, 9]])
    drafted = jnp.array([[4, 5, 6, 1, 6, 0], [5, 4, 6, 1, 1, 7], [1, 2, 3, 4, 5, 6]])
    # row 0: (1,) = 5 then (1,0) = 6: length 2; row 1: (0,) (0,0) (0,0,0): 3; row 2: none
    np.testing.assert_array_equal(H.accept_length(tree, drafted, target), [2, 3, 0])


# -- training with a frozen base -----------------------------------------------------------------


def _draft_task(trainable="heads"):
    # grad_to_base=True: the gradient reaches the base, so only the optimizer mask keeps it
    model = H.DraftModel(BASE, H.DraftConfig(n_heads=2, grad_to_base=True))

    def batch(key, step):
        return {"tokens": jax.random.randint(key, (4, 8), 0, V)}

    def loss(params, b, ivs):
        logits, drafts = H.head_logits(model, params, b["tokens"])
        return H.draft_loss(drafts, b["tokens"], teacher_logits=logits)[0], {}

    pick = {"heads": lambda path: path[1] != "base", "all": lambda path: True, "none": None}
    return Task(
        model=model,
        init=lambda key: H.init_from_base(model, key, BASE_PARAMS),
        batch=batch,
        loss=loss,
        trainable=pick[trainable],
    )


def _config(**kw):
    c = train.base_config()
    c.update(dict(total_steps=6, batch_size=4, optimizer="adamw", weight_decay=0.1, lr=0.01,
                  grad_clip=0.5, eval_every=3, steps_per_call=3, checkpoint_every=0,
                  progress=False))  # fmt: skip
    c.update(kw)
    return c


def _bits(tree):
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


def _first(tree):  # model 0 of the loop's [n_models, ...] params
    return jax.tree.map(lambda x: np.asarray(x)[0], tree)


@functools.lru_cache  # (two tests use the unmasked run)
def _train_steps(trainable, n=6):
    """Params after `n` steps of the loop's jitted train step (`Trainer.train_chunk`)."""
    task = _draft_task(trainable)
    trainer = train.Trainer(_config(total_steps=n, steps_per_call=n), task)
    params, opt_state = trainer.init()
    return _first(trainer.train_chunk(params, opt_state, 0, n)[0])


def test_frozen_base_stays_bit_identical_through_the_loop(tmp_path):
    task = _draft_task("heads")
    _, params = train.train_and_evaluate(_config(), str(tmp_path), task, return_params=True)
    p, init = _first(params)["params"], task.init(jax.random.key(0))["params"]
    assert _bits(p["base"]) == _bits(BASE_PARAMS["params"])
    assert not np.allclose(p["draft_heads_1"]["W_0"], init["draft_heads_1"]["W_0"])
    # without the mask, AdamW (weight decay, gradients) does move the base
    moved = _train_steps("none")["params"]["base"]
    assert _bits(moved) != _bits(BASE_PARAMS["params"])


def test_without_trainable_the_loop_is_unchanged():
    """`trainable=None` is the loop as before; a mask that keeps everything gives the very
    same parameters (the mask path adds nothing), and one that keeps nothing is an error."""
    assert _bits(_train_steps("none")) == _bits(_train_steps("all"))
    task = _draft_task("none")
    nothing = Task(**{**task.__dict__, "trainable": lambda path: False})
    with pytest.raises(ConfigError, match="Task.trainable selects no parameter"):
        train.Trainer(_config(), nothing)
    with pytest.raises(TypeError, match="Task.trainable must be None or a function"):
        Task(**{**task.__dict__, "trainable": "heads"})


# -- the experiment's configs --------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        "hydra_pp.py",
        pytest.param("medusa.py", marks=pytest.mark.slow),
        pytest.param("hydra.py", marks=pytest.mark.slow),
    ],
)
def test_runlocal_config_runs_through_mechjax_run(config, tmp_path):
    import json

    work = str(tmp_path / "run")
    assert main(["run", os.path.join(ROOT, "configs/hydra", config) + ":runlocal",
                 "--workdir", work]) == 0  # fmt: skip
    with open(os.path.join(work, "summary.json")) as f:
        summary = json.load(f)
    assert summary["step"] == 4
    assert {"acc/head0", "agree/head3", "accept/chain", "skip_bigram/head1"} <= set(summary)
    # the base stayed frozen: the run's base params are the shipped zoo model's
    model, params = mj.load_run(work)
    _, zoo_params, _ = mj.zoo.load("attn2l_code")
    chex.assert_trees_all_equal(params["params"]["base"], zoo_params["params"])
