"""The benchmarks' plumbing (benchmarks/): no timings are checked here, and nothing slow runs.

The floor formula of the patching benchmark against XLA's own FLOP count, the report and its
ratios on made-up times, the same evaluation schedule on both sides of the induction
benchmark, and `run_all.py --dry-run`. The `slow` tests run the quick patching benchmark with
whichever TransformerLens virtualenvs exist (skipped without them).
"""

import importlib.util
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def _load(name):
    sys.path.insert(0, BENCH)
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_floor_by_hand_and_tight_is_lower():
    bp = _load("bench_patching_vs_tl")
    s = dict(L=2, d=8, H=2, K=2, e=4, m=32, g=2, V=11, B=3, P=5)
    layer = 2 * 15 * 8 * 6 * 4 + 4 * 3 * 2 * 25 * 4 + 2 * 15 * 2 * 4 * 8 + 2 * 15 * 8 * 32 * 2
    assert bp.layer_flops(s) == layer
    after_z = 2 * 15 * 2 * 4 * 8 + 2 * 15 * 8 * 32 * 2  # W_O + MLP of the patched layer
    for n in (1, 5):
        unembed = 2 * 3 * n * 8 * 11
        want = 2 * (after_z + layer + unembed) + 2 * (after_z + unembed)  # layer 0, layer 1
        assert bp.floor_flops(s, n) == want
    assert bp.floor_flops(s, 1, tight=True) < bp.floor_flops(s, 1)
    # GPT-2 small, batch 8 x 64: about 6.7 TFLOP (last position) and twice that with full logits
    g = bp.dims(bp.GPT2_SMALL, 8, 64)
    assert 6.0e12 < bp.floor_flops(g, 1) < 7.5e12
    assert 1.7 < bp.floor_flops(g, 64) / bp.floor_flops(g, 1) < 2.1


def test_mechjax_sweep_does_the_floor_work():
    """XLA's FLOP count of the compiled sweep is the floor plus at most one corrupted forward."""
    import mechjax as mj
    from mechjax.analysis import metrics

    bp = _load("bench_patching_vs_tl")
    cfg = mj.TransformerConfig(d_model=32, n_layers=2, n_heads=4, d_vocab=97, n_ctx=8, d_mlp=128)
    model = mj.Transformer(cfg)
    params = mj.init(model, jax.random.key(0))
    B, P = 2, 8
    clean = jax.random.randint(jax.random.key(1), (B, P), 0, 97)
    corr = jax.random.randint(jax.random.key(2), (B, P), 0, 97)
    _, cache = mj.run(model, params, clean, cache="blocks.*.attn.hook_z")
    hf_like = dict(n_layer=2, n_embd=32, n_head=4, n_inner=128, vocab_size=97)
    s = bp.dims(hf_like, B, P)
    for metric, n_read in ((metrics.logit_diff(3, 5), 1), (lambda lg: lg[:, -1, 3].mean(), P)):
        f = jax.jit(
            lambda p, c, metric=metric: mj.patching.attn_head_out_all_pos(
                model, p, c, cache, metric
            )
        )
        ca = f.lower(params, corr).compile().cost_analysis()
        ca = ca[0] if isinstance(ca, list | tuple) else ca
        floor = bp.floor_flops(s, n_read)
        # XLA also counts elementwise ops (norms, softmax, GELU): a few percent here
        assert floor <= ca["flops"] <= 1.15 * (floor + bp.forward_flops(s)), (n_read, ca["flops"])


def _fake_results():
    def t(cold, warm):
        return {"cold_s": cold, "warm_s": warm, "warm_all_s": [warm]}

    mj = {
        "impl": "mechjax",
        "metrics": {"last": {**t(40.0, 30.0), "xla_flops": 7e12}, "full": t(60.0, 50.0)},
    }
    tl = {
        "impl": "TransformerLens 3.9.0",
        "loader": "HookedTransformer",
        "metrics": {"last": t(120.0, 110.0), "full": t(120.0, 110.0)},
        "max_abs_logit_diff_vs_hf": 1e-6,
        "threads": 2,
    }
    out = {"mechjax": {"last": np.zeros((12, 12)), "full": np.zeros((12, 12))}}
    out["tl3"] = {"last": np.full((12, 12), 1e-6), "full": np.full((12, 12), 2e-6)}
    return {"mechjax": mj, "tl3": tl, "tl4": {"error": "no venv"}}, out


def test_patching_report_ratios_name_versions_and_warm_cold():
    bp = _load("bench_patching_vs_tl")
    util = _load("_util")
    report = util.new_report("t", ["bench_patching_vs_tl.py"])
    report["peers"] = {"mechjax": {"jax": "0.10.2"}, "tl3": {"transformer-lens": "3.9.0"}}
    results, outputs = _fake_results()
    s = bp.dims(bp.GPT2_SMALL, 8, 64)
    bp.summarize(report, results, outputs, s, peak_gflops=200.0, quick=False)
    heads = report["headline"]
    assert len(heads) == 2  # one per metric for the one TL version that ran
    assert "TransformerLens 3.9.0 / mechjax (JAX 0.10.2)" in heads[0] and "last metric" in heads[0]
    assert "warm/warm 3.67x" in heads[0] and "cold/cold 3.00x" in heads[0]
    assert "warm/warm 2.20x" in heads[1] and "full metric" in heads[1]
    (target,) = report["targets"]
    # 110 s of TL vs a floor of 6.7 TFLOP at 200 GFLOP/s (33 s): even 100% of it gives 3.3x
    assert target["status"].startswith("unattainable") and "3.67x" in target["detail"]
    rows = report["tables"][0]["rows"]
    assert [r[0] for r in rows][-1] == "tl4" and "no venv" in rows[-1][-1]
    floor_s = bp.floor_flops(s, 1) / 200e9
    assert rows[0][4] == pytest.approx(100 * floor_s / 30.0)
    assert rows[2][6] == pytest.approx(1e-6)  # max abs diff vs mechjax
    text = util.render(report, markdown=True)
    assert "| implementation |" in text and "no venv" in text


def test_induction_both_sides_evaluate_equally_often():
    bi = _load("bench_induction")
    for p in (bi.FULL, bi.QUICK):
        for steps in (p["steps"], p["short"]):
            seqs = steps * bi.BATCH
            period = p["eval_steps"] * bi.BATCH
            official = len(np.arange(0, seqs, period)) + 1  # its schedule + the final eval
            ours = 1 + steps // p["eval_steps"] + (1 if steps % p["eval_steps"] else 0)
            assert official == ours, (p, steps)
    args = bi.official_args("f.h5", "/tmp/x", 300_000, bi.FULL)
    assert args[args.index("--eval_every") + 1] == "4992"
    assert "--ckpt_every" not in args and args[args.index("--train_iters") + 1] == "300000"


def test_official_source_missing_says_what_to_do(monkeypatch, tmp_path):
    bi = _load("bench_induction")
    monkeypatch.delenv("ICL_DYNAMICS", raising=False)
    with pytest.raises(bi._util.PeerUnavailable, match="--icl-dynamics PATH"):
        bi.official_source(None, clone=False)
    with pytest.raises(bi._util.PeerUnavailable, match="neither main.py nor a git"):
        bi.official_source(str(tmp_path), clone=False)


def test_run_all_dry_run_lists_every_benchmark():
    r = subprocess.run(
        [sys.executable, os.path.join(BENCH, "run_all.py"), "--quick", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    for name in ("hooks_overhead", "train", "vmap_scaling", "induction", "patching"):
        assert f"{name}: " in r.stdout
    assert "peer tl3:" in r.stdout and "RESULTS.quick.md" in r.stdout


def test_floor_metric_matches_the_plain_metric():
    """The two metrics of the patching benchmark are the same number (so outputs compare)."""
    from mechjax.analysis import metrics

    lg = jax.random.normal(jax.random.key(0), (2, 5, 50))
    A, B = 17, 42
    assert float(metrics.logit_diff(A, B)(lg)) == pytest.approx(
        float(jnp.mean(lg[:, -1, A] - lg[:, -1, B])), abs=1e-6
    )


@pytest.mark.slow
def test_quick_patching_bench_runs_with_available_peers(tmp_path):
    util = _load("_util")
    peers = ["mechjax"]
    for p in ("tl3", "tl4"):
        try:
            util.peer_python(p, install=False)
            peers.append(p)
        except util.PeerUnavailable:
            pass
    if len(peers) == 1:
        pytest.skip("no TransformerLens virtualenv here")
    out = tmp_path / "r.json"
    subprocess.run(
        [
            sys.executable,
            os.path.join(BENCH, "bench_patching_vs_tl.py"),
            "--quick",
            "--no-install",
            "--peers",
            ",".join(peers),
            "--json",
            str(out),
        ],
        check=True,
        timeout=900,
    )
    import json

    report = json.loads(out.read_text())
    diffs = [r[6] for r in report["tables"][0]["rows"] if r[6] is not None]
    assert len(diffs) == 2 * len(peers) and max(diffs) < 1e-4
