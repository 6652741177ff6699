"""experiments/induction_heads/analysis.py wiring: the PT -> IH ablations mean what they say."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from experiments.induction_heads import analysis as A
from experiments.induction_heads import measures as M
from experiments.induction_heads import task as T
from experiments.induction_heads.task import fewshot_data
from mechjax.train import load_config_file, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ih_wiring"))
    cfg = load_config_file(os.path.join(ROOT, "configs/induction_heads/fewshot.py:runlocal"))
    cfg.total_steps, cfg.eval_every, cfg.steps_per_call = 40, 20, 20
    train_and_evaluate(cfg, d, T.build(cfg), root=ROOT)
    return d


def test_wiring_modes_match_explicit_two_forward_computations(run_dir):
    res = A.wiring(run_dir)
    n = len(res["keep_acc"])
    # holding layer-2 patterns means no layer-1 ablation can move a layer-2 pattern
    held = res["strength"]["pattern-preserving"] - res["keep_strength"][None, :]
    assert np.abs(held).max() < 1e-5
    # value-preserving == a clean forward's layer-2 values clamped by hand, for one cell
    config = A._config(run_dir)
    model, params = mj.load_run(run_dir)
    b = A._eval_batch(config, fewshot_data(config.task), "train", config.task.eval_size)
    _, clean = mj.run(model, params, b["inputs"], cache="blocks.1.attn.hook_v")
    p, h = 1, n - 1
    pm, hm = np.eye(n, dtype=bool)[p], np.eye(n, dtype=bool)[h]
    logits, _ = mj.run(
        model,
        params,
        b["inputs"],
        interventions=[
            mj.clamp("blocks.1.attn.hook_v", clean["blocks.1.attn.hook_v"]),
            mj.ablate("blocks.0.attn.hook_v", heads=jnp.asarray(pm)),
            mj.ablate("blocks.1.attn.hook_v", heads=jnp.asarray(~hm)),
        ],
    )
    acc = float(M.query_ce(logits, b["target"])[1])
    assert res["acc"]["value-preserving"][p, h] == pytest.approx(acc, abs=1e-6)
    # keep-one without a layer-1 ablation is keep_remove's keep-one accuracy
    kr = A.keep_remove(run_dir)
    np.testing.assert_allclose(res["keep_acc"], kr["train/keep_acc"], atol=1e-6)
    assert "value-preserving" in A.wiring_markdown(res)
