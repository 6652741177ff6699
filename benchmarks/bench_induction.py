"""Training throughput on the induction-head main configuration (Singh et al. 2024).

The paper's official JAX/Equinox code trains the main configuration -- 1e6 sequences
(31,250 Adam steps of batch 32) with evals of 4 evaluators x 1,000 sequences every 5,000
sequences -- in about 4.5 minutes on this 2-core CPU (~3,700 sequences/s; figure from the
issue, not re-measured here). This script times the same work through `mechjax run`'s loop
(`train_and_evaluate`: jit + lax.scan, metrics, final checkpoint):

    python benchmarks/bench_induction.py                 # the full 31,250 steps
    python benchmarks/bench_induction.py --steps 3120    # shorter; extrapolates honestly
    python benchmarks/bench_induction.py --seeds 8       # 8 models as one vmapped program

Printed: wall time (with compilation), steady-state sequences/s (after the first chunk,
evals included), and the extrapolated time for 1e6 sequences per model.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

OFFICIAL_SEQ_PER_S = 3700.0  # the number for the official code on this CPU
FULL_STEPS = 31_250
EVAL_EVERY = 156  # ~5,000 sequences at batch 32


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=FULL_STEPS, help="train steps to time")
    p.add_argument("--seeds", type=int, default=1, help="models trained as one vmapped program")
    a = p.parse_args(argv)

    from experiments.induction_heads.task import build
    from mechjax.train import train_and_evaluate

    spec = importlib.util.spec_from_file_location(
        "ih_cfg", os.path.join(ROOT, "configs", "induction_heads", "fewshot.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    config = mod.get_config(f"paper,seeds={a.seeds}")
    config.total_steps = a.steps
    config.eval_every = EVAL_EVERY
    config.steps_per_call = EVAL_EVERY
    config.checkpoint_every = 0
    config.progress = False
    with tempfile.TemporaryDirectory() as workdir:
        t0 = time.time()
        train_and_evaluate(config, workdir, build(config), root=ROOT)
        wall = time.time() - t0
        with open(os.path.join(workdir, "run.json")) as f:
            run = json.load(f)
    n = a.seeds
    sps = run["steps_per_sec"]  # steady state: after the first (compiling) chunk, evals included
    seq_s = sps * config.batch_size * n
    overhead = wall - a.steps / sps  # compilation, init, first eval, checkpoint
    full = overhead + FULL_STEPS / sps
    print(
        f"models: {n} (one vmapped program); steps: {a.steps}; evals every {EVAL_EVERY} steps "
        f"of 4 evaluators x {config.task.eval_size} sequences"
    )
    print(f"wall time: {wall:.1f} s (of which ~{overhead:.1f} s compile/init/checkpoint)")
    print(f"steady state: {sps:.1f} steps/s = {seq_s:,.0f} sequences/s (all models)")
    tag = "measured" if a.steps == FULL_STEPS else "extrapolated"
    print(f"1e6 sequences per model ({FULL_STEPS} steps): {full / 60:.2f} min ({tag})")
    print(
        f"official implementation (issue's number): {OFFICIAL_SEQ_PER_S:,.0f} sequences/s, "
        f"~4.5 min for one model; ours / official = {seq_s / OFFICIAL_SEQ_PER_S:.2f}x"
    )


if __name__ == "__main__":
    main()
