"""Runner benchmarks: loop overhead, clamped-step cost, 8 vmapped seeds vs sequential runs.

    python benchmarks/bench_train.py [--steps 300] [--repeats 3]

Model: attention-only, 2 layers, 8 heads, d_model 64, d_vocab 64, 32 positions (16 random
tokens repeated), batch 32 -- the induction-head model of configs/demo/repeat.py.
Throughputs are steady state (compilation excluded: the runner's summary times training
calls after the first one; the bare loop is warmed up first). Prints ratios:

  loop overhead      bare hand-written jitted optax step / runner   (target: runner <= 10% slower)
  clamped step       runner with a clamp active every step / none   (target: <= 10% slower)
  8 seeds vmapped    8-model run model-steps/s / 1-model run steps/s (target >= 3x)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import mechjax as mj
from mechjax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def demo(steps: int, **overrides):
    config = train.load_config_file(os.path.join(ROOT, "configs/demo/repeat.py"))
    settings = {
        "total_steps": steps,
        "batch_size": 32,
        "schedule": "constant",
        "warmup_steps": 0,
        "eval_every": steps,
        "steps_per_call": 50,
        "checkpoint_every": 0,
        "progress": False,
        "task.eval_batch": 32,
    }
    settings.update(overrides)
    config = train.fill_defaults(train.apply_overrides(config, settings))
    return config, train.load_task_module(ROOT, "demo").build(config)


def runner_sps(config, task) -> tuple[float, float]:
    """(steady-state steps/s, wall time incl. compilation) of one train_and_evaluate."""
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        s = train.train_and_evaluate(config, d, task)
        return s["steps_per_sec"], time.perf_counter() - t


def bare_sps(config, task, steps: int, sync: bool = True) -> float:
    """A hand-written jitted optax step of the same model and data, one Python call per step."""
    tx = optax.adam(config.lr)
    key = jax.random.fold_in(jax.random.key(0), 0)
    params = task.init(jax.random.fold_in(key, 0))
    opt = tx.init(params)
    data_key = jax.random.fold_in(key, 1)

    @jax.jit
    def step(params, opt, s):
        batch = task.batch(jax.random.fold_in(data_key, s), s)
        (loss, _), grads = jax.value_and_grad(task.loss, has_aux=True)(params, batch, ())
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    params, opt, loss = step(params, opt, jnp.int32(0))  # compile
    loss.block_until_ready()
    t = time.perf_counter()
    for s in range(steps):
        params, opt, loss = step(params, opt, jnp.int32(s))
        if sync:
            _ = float(loss)  # a real loop looks at the loss (NaN check / logging) every step
    loss.block_until_ready()
    return steps / (time.perf_counter() - t)


def no_interventions(task):
    return dataclasses.replace(task, interventions=lambda cond, step: ())


def pattern_clamp(task, n_ctx: int):
    """Clamps head 0's layer-0 attention pattern to uniform-causal on every step."""
    uniform = np.tril(np.ones((n_ctx, n_ctx), np.float32))
    uniform /= uniform.sum(-1, keepdims=True)

    def interventions(cond, step):
        on = (step >= cond["start"]) & (step < cond["end"])
        return (mj.clamp("blocks.0.attn.hook_pattern", uniform, heads=[0]).when(on),)

    return dataclasses.replace(task, interventions=interventions)


def best(fn, repeats):
    vals = [fn() for _ in range(repeats)]
    return max(v if not isinstance(v, tuple) else v[0] for v in vals), vals


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3, help="best of N (noisy shared CPU)")
    args = ap.parse_args()
    steps, reps = args.steps, args.repeats
    print(f"jax {jax.__version__}, devices {jax.devices()}, steps {steps}, best of {reps}")

    config, task = demo(steps)
    plain = no_interventions(task)
    bare, _ = best(lambda: bare_sps(config, plain, steps), reps)
    bare_async, _ = best(lambda: bare_sps(config, plain, steps, sync=False), reps)
    loop, _ = best(lambda: runner_sps(config, plain), reps)
    print(f"[overhead] bare jitted optax step : {bare:8.1f} steps/s (reads the loss each step)")
    print(f"[overhead] same, loss never read  : {bare_async:8.1f} steps/s")
    print(f"[overhead] runner (scan x50)      : {loop:8.1f} steps/s")
    print(f"[overhead] runner time / bare time: {bare / loop:.3f}  (<= 1.10 is the target)")
    print(f"[overhead] runner / never-read bare: {bare_async / loop:.3f}")

    always = ((0, steps),)
    c_on, t_on = demo(steps, **{"task.ablate_windows": always})
    abl, _ = best(lambda: runner_sps(c_on, t_on), reps)
    pat, _ = best(lambda: runner_sps(c_on, pattern_clamp(t_on, 32)), reps)
    print(f"[clamp] no interventions          : {loop:8.1f} steps/s")
    print(f"[clamp] ablate L0H0 hook_z, on    : {abl:8.1f} steps/s  slowdown {loop / abl:.3f}")
    print(f"[clamp] clamp L0H0 pattern, on    : {pat:8.1f} steps/s  slowdown {loop / pat:.3f}")

    c1, t1 = demo(steps, **{"task.seeds": 1})
    c8, t8 = demo(steps, **{"task.seeds": 8})
    one, walls1 = best(lambda: runner_sps(c1, t1), reps)
    eight, walls8 = best(lambda: runner_sps(c8, t8), reps)
    w1 = min(w for _, w in walls1)
    w8 = min(w for _, w in walls8)
    print(f"[seeds] 1 model                   : {one:8.1f} model-steps/s  (run wall {w1:.1f} s)")
    print(
        f"[seeds] 8 models, one vmapped run : {8 * eight:8.1f} model-steps/s  (run wall {w8:.1f} s)"
    )
    print(f"[seeds] throughput ratio (steady) : {8 * eight / one:.2f}x  (>= 3x is the target)")
    print(
        f"[seeds] wall ratio, 8 x 1-model run / one 8-model run (incl. compile): {8 * w1 / w8:.2f}x"
    )


if __name__ == "__main__":
    main()
