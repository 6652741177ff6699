"""In-process tests of the training loop: outputs, scheduled clamps, vmapped models, failures."""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mechjax as mj
from mechjax import train
from mechjax.train import ModelSpec, Task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ------------------------------------------------------------------------------------------------
# A linear-regression task: compiles in a blink, so loop semantics can be tested cheaply.

W_TRUE = jnp.arange(4.0)


class Linear(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x @ self.param("w", nn.initializers.normal(1.0), (4,))


def linear_task(models=(ModelSpec("model", seed=0),)):
    model = Linear()

    def batch(key, step):
        x = jax.random.normal(key, (8, 4))
        return {"x": x, "y": x @ W_TRUE}

    def loss(params, b, ivs):
        err = model.apply(params, b["x"]) - b["y"]
        return (err**2).mean(), {"abs_err": jnp.abs(err).mean()}

    def evaluate(params, cond, key, ivs):
        w = params["params"]["w"]
        return {"w_dist": jnp.linalg.norm(w - W_TRUE), "w": w}

    return Task(
        model=model,
        init=lambda key: model.init(key, jnp.zeros((1, 4))),
        batch=batch,
        loss=loss,
        evaluate=evaluate,
        models=models,
    )


def linear_config(**kw):
    c = train.base_config()
    c.update(
        dict(
            total_steps=30,
            batch_size=8,
            optimizer="sgd",
            lr=0.05,
            eval_every=10,
            steps_per_call=4,
            checkpoint_every=10,
            progress=False,
        )
    )
    c.update(kw)
    return c


def test_loop_matches_hand_written_optax_loop(tmp_path):
    """Same keys, data and updates as a plain Python loop: documents the key derivation."""
    task = linear_task((ModelSpec("a", seed=3),))
    config = linear_config(optimizer="adam", lr=0.1, schedule="cosine", grad_clip=1.0)
    _, params = train.train_and_evaluate(config, str(tmp_path), task, return_params=True)

    key = jax.random.fold_in(jax.random.key(config.seed), 3)
    p = task.init(jax.random.fold_in(key, 0))
    data_key = jax.random.fold_in(key, 1)
    tx = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(0.1, 30))
    )
    opt = tx.init(p)
    for s in range(30):
        g = jax.grad(
            lambda q, s=s: task.loss(q, task.batch(jax.random.fold_in(data_key, s), s), ())[0]
        )(p)
        u, opt = tx.update(g, opt, p)
        p = optax.apply_updates(p, u)
    np.testing.assert_allclose(params["params"]["w"][0], p["params"]["w"], rtol=1e-5, atol=1e-6)


def test_vmapped_models_equal_separate_runs(tmp_path):
    both = linear_task((ModelSpec("s0", seed=0), ModelSpec("s1", seed=1)))
    _, p_both = train.train_and_evaluate(
        linear_config(), str(tmp_path / "both"), both, return_params=True
    )
    one = linear_task((ModelSpec("s1", seed=1),))
    _, p_one = train.train_and_evaluate(
        linear_config(), str(tmp_path / "one"), one, return_params=True
    )
    np.testing.assert_allclose(p_both["params"]["w"][1], p_one["params"]["w"][0], rtol=1e-6)
    assert not np.allclose(p_both["params"]["w"][0], p_both["params"]["w"][1])
    # Records: one per eval per model, arrays stored as lists.
    recs = train.read_records(str(tmp_path / "both"))
    evals = [(r["step"], r["model"]) for r in recs if r["split"] == "eval"]
    assert evals == [(s, m) for s in (0, 10, 20, 30) for m in ("s0", "s1")]
    last = [r for r in recs if r["split"] == "eval"][-1]
    assert isinstance(last["w"], list) and len(last["w"]) == 4
    assert last["w_dist"] < [r for r in recs if r["split"] == "eval"][0]["w_dist"]


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    # SGD with lr far above 2/curvature: the error grows ~10x per step until it overflows.
    config = linear_config(lr=5.0, total_steps=200, checkpoint_every=8, eval_every=100)
    with pytest.raises(train.TrainingDiverged) as e:
        train.train_and_evaluate(config, str(tmp_path), linear_task())
    msg = str(e.value)
    assert f"at step {e.value.step}" in msg and "config.lr" in msg and "grad_clip" in msg
    assert 10 < e.value.step < 200
    ck = train.Checkpointer(str(tmp_path), read_only=True)
    last = ck.latest_step()
    assert last is not None and last <= e.value.step
    assert f"(step {last}) is kept" in msg
    params, _ = ck.restore_params()
    ck.close()
    assert np.isfinite(np.asarray(params["params"]["w"])).all()
    with open(tmp_path / "run.json") as f:
        assert json.load(f)["status"] == f"diverged at step {e.value.step}"


def test_other_error_marks_run_failed_and_saves_last_step(tmp_path, monkeypatch):
    # An error outside the loss (here: the eval at step 20) must not leave run.json "finished".
    from mechjax.train import loop as L

    real = L._HostLoop.log_eval

    def failing(self, step):
        if step == 20:
            raise RuntimeError("eval broke")
        return real(self, step)

    monkeypatch.setattr(L._HostLoop, "log_eval", failing)
    config = linear_config(checkpoint_every=0)
    with pytest.raises(RuntimeError, match="eval broke"):
        train.train_and_evaluate(config, str(tmp_path), linear_task())
    with open(tmp_path / "run.json") as f:
        status = json.load(f)["status"]
    assert status == "failed at step 20 (checkpoint saved): RuntimeError: eval broke"
    ck = train.Checkpointer(str(tmp_path), read_only=True)
    assert ck.latest_step() == 20
    ck.close()


def test_unwritable_workdir_fails_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(train.WorkdirError, match="cannot write to workdir .*nothing was run"):
        train.train_and_evaluate(linear_config(), str(blocker / "run"), linear_task())


def test_resume_with_other_models_fails_clearly(tmp_path):
    task = linear_task()
    train.train_and_evaluate(linear_config(total_steps=4), str(tmp_path), task)
    other = linear_task((ModelSpec("x", seed=0), ModelSpec("y", seed=1)))
    with pytest.raises(train.ConfigError, match="holds a checkpoint of models"):
        train.train_and_evaluate(linear_config(total_steps=8), str(tmp_path), other)


def test_task_validation():
    with pytest.raises(ValueError, match="duplicate names"):
        linear_task((ModelSpec("a"), ModelSpec("a", seed=1)))
    with pytest.raises(ValueError, match="same pytree structure"):
        linear_task((ModelSpec("a", cond={"x": 1}), ModelSpec("b", cond=None)))


# ------------------------------------------------------------------------------------------------
# The demo transformer: scheduled ablations, outputs, checkpoint retention, load_run.

DEMO = {
    "total_steps": 20,
    "steps_per_call": 5,
    "eval_every": 10,
    "checkpoint_every": 5,
    "checkpoint_steps": (3, 10),
    "keep_checkpoints": 2,
    "progress": False,
    "task.d_model": 16,
    "task.n_heads": 2,
    "task.d_vocab": 11,
    "task.seq_half": 4,
    "task.eval_batch": 16,
    "task.ablate_windows": ((0, 0), (0, 10), (10, 20)),
}
NAMES = ["ablate0-0_seed0", "ablate0-10_seed0", "ablate10-20_seed0"]


def demo_config(**kw):
    c = train.load_config_file(os.path.join(ROOT, "configs/demo/repeat.py:runlocal"))
    return train.apply_overrides(c, dict(DEMO, **kw))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("demo"))
    config = demo_config()
    task = train.load_task_module(ROOT, "demo").build(config)
    summary, params = train.train_and_evaluate(config, workdir, task, root=ROOT, return_params=True)
    return workdir, task, summary, params


def test_demo_outputs(demo_run):
    workdir, task, summary, _ = demo_run
    recs = train.read_records(workdir)
    evals = [(r["step"], r["model"]) for r in recs if r["split"] == "eval"]
    assert evals == [(s, m) for s in (0, 10, 20) for m in NAMES]
    trains = [(r["step"], r["model"]) for r in recs if r["split"] == "train"]
    assert trains == [(s, m) for s in (10, 20) for m in NAMES]
    assert len(recs[-1]["rep_acc_by_pos"]) == 4
    assert summary["step"] == 20 and set(summary["final"]) == set(NAMES)
    assert set(summary["final_rep_acc"]) == set(NAMES)  # from task.report
    with open(os.path.join(workdir, "summary.json")) as f:
        assert json.load(f)["final_rep_acc"] == summary["final_rep_acc"]
    report = open(os.path.join(workdir, "report.md")).read()
    assert "## Final eval metrics" in report and "Demo: repeated-token accuracy" in report
    pngs = [line.split("(")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert "plot_train_loss.png" in pngs
    assert all(os.path.getsize(os.path.join(workdir, p)) > 1000 for p in pngs)
    events = os.listdir(os.path.join(workdir, "tensorboard"))
    assert any(e.startswith("events.out.tfevents") for e in events)
    with open(os.path.join(workdir, "run.json")) as f:
        run = json.load(f)
    # Windows opened and closed during the run, models differ only in window values: the train
    # step was still traced (hence compiled) exactly once.
    assert run["traces"] == {"init": 1, "train": 1, "eval": 1}
    # Periodic 5, 15 pruned by keep_checkpoints=2; explicit 3 and 10 kept.
    assert train.Checkpointer(workdir, read_only=True).all_steps() == [3, 10, 15, 20]


def test_eval_steps_add_evaluations(tmp_path):
    """`eval_steps` evaluates at extra steps (dense around a phase change) and the train log
    keeps its own period."""
    config = demo_config(total_steps=12, eval_steps=(3, 7), checkpoint_steps=(),
                         **{"task.ablate_windows": ((0, 0),)})  # fmt: skip
    task = train.load_task_module(ROOT, "demo").build(config)
    train.train_and_evaluate(config, str(tmp_path), task, root=ROOT)
    recs = train.read_records(str(tmp_path))
    assert [r["step"] for r in recs if r["split"] == "eval"] == [0, 3, 7, 10, 12]
    assert [r["step"] for r in recs if r["split"] == "train"] == [10, 12]


def test_scheduled_ablation_blocks_gradients_only_inside_its_window(demo_run):
    workdir, task, _, _ = demo_run
    key = jax.random.fold_in(jax.random.key(0), 0)  # config.seed=0, ModelSpec.seed=0
    w_init = np.asarray(task.init(jax.random.fold_in(key, 0))["params"]["blocks_0"]["attn"]["W_Q"])

    def w_q(name, step):
        _, p = mj.load_run(workdir, which=name, step=step)
        return p["params"]["blocks_0"]["attn"]["W_Q"]

    # Head 0 of layer 0 is zeroed at hook_z during [0, 10): its W_Q gets exactly zero gradient
    # (so Adam leaves it untouched: checkpoints 3 and 10 agree bit for bit, and equal the init up
    # to the ulp-level difference of jitted vs eager init) while head 1 trains through the
    # clamped graph.
    np.testing.assert_array_equal(w_q(NAMES[1], 10)[0], w_q(NAMES[1], 3)[0])
    np.testing.assert_allclose(w_q(NAMES[1], 10)[0], w_init[0], rtol=1e-6, atol=1e-8)
    assert not np.allclose(w_q(NAMES[1], 10)[1], w_q(NAMES[1], 3)[1])
    assert not np.allclose(w_q(NAMES[1], 20)[0], w_q(NAMES[1], 10)[0])  # window closed: learns
    assert not np.allclose(w_q(NAMES[0], 10)[0], w_q(NAMES[0], 3)[0])  # never ablated
    assert not np.allclose(w_q(NAMES[2], 10)[0], w_q(NAMES[2], 3)[0])  # window not yet open
    # (No "frozen after 10" check for NAMES[2]: Adam's momentum keeps moving W_Q after its
    # gradient becomes zero.)


def test_load_run(demo_run):
    workdir, task, _, params = demo_run
    model, p = mj.load_run(workdir)
    assert model.cfg == task.model.cfg
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b[0]), p, params)
    _, p2 = mj.load_run(workdir, which=NAMES[2])
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b[2]), p2, params)
    _, p2i = mj.load_run(workdir, which=2)
    jax.tree.map(np.testing.assert_array_equal, p2, p2i)
    tokens = jnp.zeros((1, 8), jnp.int32)
    logits, _ = mj.run(model, p, tokens)
    assert logits.shape == (1, 8, 11)
    with pytest.raises(ValueError, match="its models are"):
        mj.load_run(workdir, which="nope")
    with pytest.raises(ValueError, match="saved steps"):
        mj.load_run(workdir, step=7)
    with pytest.raises(FileNotFoundError, match="does not look like a mechjax run"):
        mj.load_run(os.path.dirname(workdir))


def test_changing_window_values_does_not_recompile():
    config = train.fill_defaults(demo_config())
    task = train.load_task_module(ROOT, "demo").build(config)
    trainer = train.Trainer(config, task)
    params, opt = trainer.init()
    ref = jax.tree.map(np.asarray, params)
    outs = []
    for start, end in ((0, 0), (0, 5), (2, 4)):
        cond = {"start": np.full(3, start, np.int32), "end": np.full(3, end, np.int32)}
        conds = jax.tree.map(lambda x: train.sharding.to_global(x, trainer.rep), cond)
        p, o = jax.tree.map(jnp.asarray, ref), trainer.init()[1]
        p, o, losses, _ = trainer.train_chunk(p, o, 0, 5, conds=conds)
        outs.append(np.asarray(p["params"]["blocks_0"]["attn"]["W_Q"][0, 0]))
    assert trainer.traces["train"] == 1
    # The windows really changed the computation (ablating head 0 freezes its W_Q).
    np.testing.assert_array_equal(outs[1], ref["params"]["blocks_0"]["attn"]["W_Q"][0, 0])
    assert not np.allclose(outs[0], outs[1]) and not np.allclose(outs[2], outs[1])
