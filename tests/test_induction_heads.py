"""The induction-head experiment: clamps do what they say, measures, and a runlocal smoke run."""

import importlib.util
import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # experiments/ lives at the repo root, next to mechjax/

from experiments.induction_heads import clamps as C  # noqa: E402
from experiments.induction_heads import measures as M  # noqa: E402
from experiments.induction_heads import task as T  # noqa: E402
from mechjax.data import FewShot  # noqa: E402

N_HEADS = 4


@pytest.fixture(scope="module")
def setup():
    data = FewShot(
        dim=16, n_classes=30, n_exemplars=3, class_split=(10, 10, 10), exemplar_split=(1, 2)
    )
    cfg = mj.TransformerConfig(
        d_model=16,
        n_layers=2,
        n_heads=N_HEADS,
        d_vocab=5,
        d_input=16,
        n_ctx=5,
        attn_only=True,
        positional_embedding_type="rotary",
        attn_bias=False,
    )
    model = mj.Transformer(cfg)
    batch = data.sample(jax.random.key(0), 8)
    params = T.paper_init(model, jax.random.key(1), batch["inputs"])
    return model, params, batch


def run(setup, spec, cache=None, interventions=None):
    model, params, batch = setup
    cond = C.parse(spec, 2, N_HEADS)
    ivs = C.make_interventions([cond], 2, 5) if interventions is None else interventions
    cond = jax.tree.map(jnp.asarray, cond)
    return C.forward(model, params, batch, ivs(cond, jnp.int32(0)), cache=cache)


PAT = "blocks.{}.attn.hook_pattern"


def test_parse_and_errors():
    c = C.parse("only 1:3, match 1:3, prev_token 0:2, window 10 20", 2, 8)
    assert c["ablate"][1].tolist() == [True, True, True, False, True, True, True, True]
    assert not c["ablate"][0].any()
    assert c["match"][1, 3] and c["prev_token"][0, 2] and (c["start"], c["end"]) == (10, 20)
    for bad, msg in [
        ("ablate 2:0", "out of range"),
        ("frobnicate", "unknown clamp"),
        ("copy 0:1", "last layer"),
        ("ablate 1-3", "LAYER:HEAD"),
        ("l1, preserve_values", "cannot be combined"),
    ]:
        with pytest.raises(ValueError, match=msg):
            C.parse(bad, 2, 8)


def test_no_clamp_is_plain_model(setup):
    model, params, batch = setup
    ref, _ = mj.run(model, params, batch["inputs"])
    out, _ = run(setup, "none")
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_ablate_zeroes_values(setup):
    _, cache = run(setup, "ablate 1:0 1:2", cache="blocks.1.attn.hook_v")
    v = np.asarray(cache["blocks.1.attn.hook_v"])
    assert (v[:, :, [0, 2]] == 0).all() and (np.abs(v[:, :, [1, 3]]) > 0).all()


def test_prev_token_clamp(setup):
    _, clean = run(setup, "none", cache=PAT.format(0))
    _, cache = run(setup, "prev_token 0:1", cache=PAT.format(0))
    p = np.asarray(cache[PAT.format(0)])
    np.testing.assert_array_equal(p[:, 1], np.broadcast_to(C.prev_token_pattern(5), (8, 5, 5)))
    np.testing.assert_allclose(p[:, [0, 2, 3]], np.asarray(clean[PAT.format(0)])[:, [0, 2, 3]])


def test_perfect_match(setup):
    _, _, batch = setup
    _, cache = run(setup, "match 1:2", cache=PAT.format(1))
    row = np.asarray(cache[PAT.format(1)])[:, 2, 4]  # [batch, k_pos]
    np.testing.assert_array_equal(row, jax.nn.one_hot(batch["label_pos"], 5))
    s = M.induction_strength(cache[PAT.format(1)], batch["label_pos"], batch["distractor_pos"])
    assert float(s[2]) == 1.0


def test_perfect_copy(setup):
    _, _, batch = setup
    _, clean = run(setup, "none", cache="blocks.1.attn.hook_attn_scores")
    logits, _ = run(setup, "copy 1:3")
    q = np.asarray(logits[:, 4])
    scores = np.asarray(clean["blocks.1.attn.hook_attn_scores"])[:, 3, 4]  # [batch, k_pos]
    toks = np.asarray(batch["inputs"]["tokens"])
    rows = np.arange(8)
    for p in (1, 3):
        np.testing.assert_allclose(q[rows, toks[:, p]], scores[:, p], rtol=1e-5)
    others = np.ones_like(q, bool)
    others[rows, toks[:, 1]] = others[rows, toks[:, 3]] = False
    assert (q[others] <= -1e8).all()


def test_layer1_clamp(setup):
    model, params, batch = setup
    logits, cache = run(
        setup, "l1", cache=("hook_embed", "blocks.0.hook_resid_post", PAT.format(1))
    )
    emb = cache["hook_embed"]
    np.testing.assert_allclose(cache["blocks.0.hook_resid_post"], emb, atol=1e-6)
    # layer-2 patterns come from a pass whose layer-1 output is the previous token's embedding
    fake = emb.at[:, 1:-1].set(emb[:, :-2])
    _, ref = mj.run(
        model,
        params,
        batch["inputs"],
        cache=PAT.format(1),
        interventions=[mj.patch("blocks.0.hook_resid_post", fake)],
    )
    np.testing.assert_allclose(cache[PAT.format(1)], ref[PAT.format(1)], atol=1e-6)
    assert not np.allclose(
        cache[PAT.format(1)], run(setup, "none", cache=PAT.format(1))[1][PAT.format(1)]
    )


@pytest.mark.parametrize(
    "which, site",
    [("preserve_patterns", PAT.format(1)), ("preserve_values", "blocks.1.attn.hook_v")],
)
def test_preserving_ablation(setup, which, site):
    _, clean = run(setup, "none", cache=site)
    _, plain = run(setup, "ablate 0:0 0:1", cache=site)
    _, kept = run(setup, f"ablate 0:0 0:1, {which}", cache=site)
    assert not np.allclose(plain[site], clean[site], atol=1e-4)  # the ablation matters ...
    np.testing.assert_allclose(kept[site], clean[site], atol=1e-6)  # ... unless preserved


def test_graft(setup):
    model, params, batch = setup
    other = T.paper_init(model, jax.random.key(7), batch["inputs"])
    site = "blocks.0.hook_resid_post"
    ivs = C.make_interventions([C.parse("graft", 2, N_HEADS)], 2, 5, graft=(model, other, 0))
    _, cache = run(setup, "graft", cache=site, interventions=ivs)
    _, want = mj.run(model, other, batch["inputs"], cache=site)
    np.testing.assert_allclose(cache[site], want[site], atol=1e-6)


def test_window_gates_the_clamp(setup):
    model, params, batch = setup
    cond = jax.tree.map(jnp.asarray, C.parse("match 1:0, window 5 10", 2, N_HEADS))
    ivs = C.make_interventions([cond], 2, 5)
    for step, on in [(4, False), (5, True), (10, False)]:
        _, cache = C.forward(model, params, batch, ivs(cond, jnp.int32(step)), cache=PAT.format(1))
        row = np.asarray(cache[PAT.format(1)])[:, 0, 4]
        assert np.array_equal(row, jax.nn.one_hot(batch["label_pos"], 5)) == on


def test_conditions_vmap_as_one_program(setup):
    """Different clamps per model in one vmapped call equal separate runs, with gradients."""
    model, params, batch = setup
    # one plain, one data-dependent (Deferred) and one two-pass condition
    specs = ["only 1:1, prev_token 0:2", "only 1:1, match 1:1", "l1, copy 1:1"]
    conds = [C.parse(s, 2, N_HEADS) for s in specs]
    ivs = C.make_interventions(conds, 2, 5)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *conds)

    def loss(p, cond):
        logits, _ = C.forward(model, p, batch, ivs(cond, jnp.int32(0)))
        return M.query_ce(logits, batch["target"])[0]

    losses, grads = jax.jit(jax.vmap(jax.value_and_grad(loss), (None, 0)))(params, stacked)
    for i in range(len(specs)):
        single = C.make_interventions([conds[i]], 2, 5)
        logits, _ = C.forward(model, params, batch, single(jax.tree.map(jnp.asarray, conds[i]), 0))
        np.testing.assert_allclose(losses[i], M.query_ce(logits, batch["target"])[0], rtol=1e-5)
    g = np.asarray(grads["params"]["blocks_1"]["attn"]["W_Q"])  # [model, head, d_model, d_head]
    assert np.isfinite(g).all()
    # with only head 1 active, other heads' queries get no gradient
    assert np.abs(g[0, [0, 2, 3]]).max() == 0 and np.abs(g[0, 1]).max() > 0
    # perfect match fixes head 1's query row: its W_Q no longer gets gradient
    assert np.abs(g[1, 1]).max() < 1e-9
    # perfect copy trains head 1's query (its scores are the output), no other head's
    assert np.abs(g[2, 1]).max() > 0 and np.abs(g[2, [0, 2, 3]]).max() == 0


def test_measures():
    p = np.zeros((2, 3, 5, 5), np.float32)
    p[:, 0, 4, 1] = 1.0  # head 0 attends the label at 1
    p[:, 1, 4, 3] = 1.0  # head 1 attends the label at 3
    p[:, 2, 4, :] = 0.2
    s = M.induction_strength(jnp.asarray(p), jnp.array([1, 1]), jnp.array([3, 3]))
    np.testing.assert_allclose(s, [1.0, -1.0, 0.0], atol=1e-6)
    assert M.formation_step([0, 5, 10], [0.7, 0.2, 0.1]) == 5
    assert M.formation_step([0, 5], [0.7, 0.6]) is None
    rep = np.zeros((1, 1, 8, 8), np.float32)
    rep[0, 0, np.arange(4, 8), np.arange(1, 5)] = 1.0
    assert float(M.induction_score(jnp.asarray(rep), 4)[0]) == 1.0
    assert math.isclose(M.FORMED, 0.4 * math.log(2))


def _config(arg):
    path = os.path.join(ROOT, "configs", "induction_heads", "fewshot.py")
    spec = importlib.util.spec_from_file_location("ih_cfg", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


def test_runlocal_end_to_end(tmp_path):
    from mechjax.train import train_and_evaluate

    config = _config("runlocal")
    config.task.conditions = ("none", "only 1:1, match 1:1")
    config.task.condition_names = ("none", "match")
    config.total_steps, config.eval_every, config.steps_per_call = 4, 2, 2
    summary = train_and_evaluate(config, str(tmp_path), T.build(config), root=ROOT)
    assert set(summary["final"]) == {"none", "match"}
    for name, f in summary["final"].items():
        assert f["step"] == 4 and all(math.isfinite(v) for v in f.values()), name
    assert summary["ih_strength"]["match"][1] == 1.0  # the clamped head's pattern is perfect
    assert abs(summary["ih_strength"]["none"][1]) < 0.5
    assert (tmp_path / "loss.png").exists() and (tmp_path / "summary.json").exists()


def test_fig6_configs_and_dense_evals(tmp_path):
    """The paper's Fig. 6 runs: the clamp conditions isolate B / C; dense evals land in records."""
    from experiments.induction_heads import analysis as A
    from mechjax.train import ConfigError, read_records, train_and_evaluate

    c = _config("paper,fig6=clamps,classes=100,labels=10,steps=9375,eval_every=31")
    assert c.task.condition_names == ("B", "C", "B+C")
    # B: the match is learned (layer 1 given, copy perfect); C: the copy (match perfect)
    assert c.task.conditions == ("l1, copy 1:3", "only 1:3, match 1:3", "only 1:3, l1")
    assert (c.lr, c.task.class_split[0], c.task.n_labels, c.eval_every) == (1e-5, 100, 10, 31)
    none = _config("paper,fig6=none,ih=5,steps=62500")
    assert none.task.conditions == ("only 1:5",) and none.total_steps == 62_500
    with pytest.raises(ConfigError, match="fig6"):
        _config("fig6=both")
    with pytest.raises(ConfigError, match="dense"):
        _config("dense=(0,100)")

    config = _config("runlocal,fig6=clamps,dense=(0,40,4)")
    config.task.n_labels = 10
    assert config.eval_steps == tuple(range(4, 40, 4))
    train_and_evaluate(config, str(tmp_path), T.build(config), root=ROOT)
    steps = sorted({r["step"] for r in read_records(str(tmp_path)) if r["split"] == "eval"})
    assert steps == list(range(0, 41, 4))  # every 4 steps, not only eval_every=20
    rows = A.fig6([str(tmp_path)])
    assert [(r[1], r[2], r[4]) for r in rows] == [(10, "B", 40), (10, "C", 40), (10, "B+C", 40)]
    assert "| 10 | 10 | B (learns match) |" in A.fig6_markdown(rows)


def test_tokens_task_measures():
    path = os.path.join(ROOT, "configs", "induction_heads", "tokens.py")
    spec = importlib.util.spec_from_file_location("ih_tok_cfg", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    config = mod.get_config("runlocal")
    task = T.build(config)
    params = task.init(jax.random.key(0))
    batch = task.batch(jax.random.key(1), 0)
    loss, _ = task.loss(params, batch, ())
    assert abs(float(loss) - math.log(64)) < 0.5  # untrained: about uniform
    ev = task.evaluate(params, None, jax.random.key(2), ())
    assert ev["induction_score"].shape == (2, 8) and ev["pt_score"].shape == (2, 8)
    assert np.isfinite(float(ev["loss_first"])) and np.isfinite(float(ev["loss_second"]))


def test_spread_groups_seeds_by_condition(tmp_path):
    """`analysis spread`: per condition of a seeds run, the formation steps of its seeds (the
    first eval with train loss < 0.4 ln 2), how many formed, median / range / IQR over those,
    and the coarsest eval spacing at formation -- on records written by hand."""
    from experiments.induction_heads import analysis as A

    ev = {f"{e}/{k}": 0.5 for e in ("train", "heldout_pairs", "new_exemplars", "new_classes")
          for k in ("acc", "loss")}  # fmt: skip
    steps = [0, 16, 32, 48, 64, 80, 160]
    formed_at = {"none_s0": 64, "none_s1": 32, "none_s2": None, "copy_s0": 16, "copy_s1": 16}
    with open(tmp_path / "metrics.jsonl", "w") as f:
        for m, at in formed_at.items():
            for s in steps:
                loss = 0.1 if at is not None and s >= at else 0.69
                rec = dict(ev, step=s, model=m, split="eval", ih_strength=[[0.0], [0.0]],
                           pt_score=[[0.0], [0.0]])  # fmt: skip
                rec["train/loss"] = loss
                f.write(json.dumps(rec) + "\n")
    (tmp_path / "config.json").write_text(json.dumps({"lr": 1e-4, "task": {}}))
    rows = {r["condition"]: r for r in A.spread([str(tmp_path)])}
    assert list(rows) == ["none", "copy"]
    none = rows["none"]
    assert none["steps"] == [64, 32, None] and none["seeds"] == [0, 1, 2]
    assert (none["formed"], none["median"], none["lo"], none["hi"]) == (2, 48.0, 32.0, 64.0)
    assert none["resolution"] == 16 and none["steps_run"] == 160
    assert rows["copy"]["median"] == 16.0 and rows["copy"]["formed"] == 2
    md = A.spread_markdown(list(rows.values()))
    assert "| 0.0001 | none | 2/3 | 48 | 32-64 | 40-56 | 64, 32, - | 16 |" in md


def test_lr_ratio_table_compares_medians_across_learning_rates():
    """`lr_ratio_markdown`: per condition, the medians at each lr and their ratio; a condition
    with an unformed seed at some lr gets "-" there and no ratio."""
    from experiments.induction_heads import analysis as A

    def row(lr, cond, steps):
        f = [s for s in steps if s is not None]
        return dict(lr=lr, condition=cond, steps=steps, seeds=list(range(len(steps))),
                    formed=len(f), median=float(np.median(f)) if f else None)  # fmt: skip

    rows = [row(1e-4, "none", [100, 120, 140]), row(1e-4, "copy", [20, 30, 25]),
            row(1e-5, "none", [900, 1200, None]), row(1e-5, "copy", [190, 330, 240])]  # fmt: skip
    md = A.lr_ratio_markdown(rows)
    assert (
        "| condition | median at lr 0.0001 | median at lr 1e-05 | ratio (lr 1e-05 / lr 0.0001)"
        in md
    )
    # copy: medians 25 and 240; seed ratios 9.5, 11.0, 9.6; the seeds keep their order
    assert "| copy | 25 | 240 | 9.6 | 9.5-11.0 | 1.00 |" in md
    assert "| none | 120 | - | - | - | - |" in md
    assert A.lr_ratio_markdown(rows[:2]) == ""
