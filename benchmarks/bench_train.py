"""Runner benchmarks: loop overhead, clamped-step cost, 8 vmapped seeds vs sequential runs.

    python benchmarks/bench_train.py [--steps 300] [--repeats 3] [--quick] [--json OUT]

Model: attention-only, 2 layers, 8 heads, d_model 64, d_vocab 64, 32 positions (16 random
tokens repeated), batch 32 -- the induction-head model of configs/demo/repeat.py.
Throughputs are steady state (the first call, which compiles, is not timed: the runner's
run.json times training calls after the first one). Cases, best of --repeats (interleaved):

  bare (scan)        the baseline: the same step (task.batch, value_and_grad(task.loss),
                     optax adam) hand-written under the same lax.scan of 50 steps per call,
                     losses read on the host after each call as the runner does
  bare (per step)    the same step jitted alone, one Python call per step, reading the loss
                     every step (a NaN check / logging); and without ever reading it
  runner             `train_and_evaluate` (scan x 50, vmapped over models, lax.cond-skipped
                     tail, metrics, one eval and the final checkpoint outside the timing)
  clamp              the runner with a head ablation / a pattern clamp active on every step
  seeds              1 model vs 8 models vmapped in one run (model-steps/s)

Ratios printed: runner / bare (scan) (target: runner <= 10% slower), the per-step variants
beside it, clamped / unclamped (target <= 10% slower), 8-seed throughput (target >= 3x).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import mechjax as mj
from mechjax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _util  # noqa: E402

STEPS_PER_CALL = 50


def demo(steps: int, steps_per_call: int = STEPS_PER_CALL, **overrides):
    config = train.load_config_file(os.path.join(ROOT, "configs/demo/repeat.py"))
    settings = {
        "total_steps": steps,
        "batch_size": 32,
        "schedule": "constant",
        "warmup_steps": 0,
        "eval_every": steps,
        "steps_per_call": steps_per_call,
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


def bare_sps(config, task, steps: int, mode: str = "scan") -> float:
    """Steady-state steps/s of a hand-written jitted optax step of the same model and data.

    mode "scan": config.steps_per_call steps per call under `lax.scan`, the losses fetched to the
    host after each call (the runner's structure without its vmap / cond / metrics);
    "sync": one call per step, reading the loss every step; "async": one call per step,
    never reading the loss until the end.
    """
    tx = optax.adam(config.lr)
    key = jax.random.fold_in(jax.random.key(0), 0)
    params = task.init(jax.random.fold_in(key, 0))
    opt = tx.init(params)
    data_key = jax.random.fold_in(key, 1)

    def one(params, opt, s):
        batch = task.batch(jax.random.fold_in(data_key, s), s)
        (loss, _), grads = jax.value_and_grad(task.loss, has_aux=True)(params, batch, ())
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    if mode == "scan":
        n = config.steps_per_call

        @jax.jit
        def chunk(params, opt, start):
            def body(carry, i):
                p, o, loss = one(*carry, start + i)
                return (p, o), loss

            (params, opt), losses = jax.lax.scan(body, (params, opt), jnp.arange(n))
            return params, opt, losses

        params, opt, losses = chunk(params, opt, jnp.int32(0))  # compile
        np.asarray(losses)
        calls = max(1, steps // n)
        t = time.perf_counter()
        for c in range(calls):
            params, opt, losses = chunk(params, opt, jnp.int32((c + 1) * n))
            if not np.isfinite(np.asarray(losses)).all():  # the runner's check, per call
                raise FloatingPointError("bare scan diverged")
        return calls * n / (time.perf_counter() - t)

    step = jax.jit(one)
    params, opt, loss = step(params, opt, jnp.int32(0))  # compile
    loss.block_until_ready()
    t = time.perf_counter()
    for s in range(steps):
        params, opt, loss = step(params, opt, jnp.int32(s))
        if mode == "sync":
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


GPU_PLAN = (
    "on a GPU host with jax[cuda]: `python benchmarks/run_all.py --only train,vmap_scaling`; "
    "one model's step (batch 32 x 32 tokens, d_model 64) fills a small fraction of a GPU, so "
    "8 vmapped models share each kernel launch and the ratio is expected well above 3x"
)


def seeds_target(ratio: float, quick: bool) -> dict:
    """The 8-seed target row: met, or deferred to a GPU when this machine is a small CPU."""
    target = ">= 3x model-steps/s with 8 vmapped seeds vs 1 model"
    detail = f"{ratio:.2f}x"
    if quick:
        return {"target": target, "status": "not measured (--quick)", "detail": detail}
    if ratio >= 3:
        return {"target": target, "status": "met", "detail": detail}
    if jax.default_backend() == "cpu" and (os.cpu_count() or 1) <= 8:
        return {
            "target": target,
            "status": "deferred: unattainable on this CPU",
            "detail": f"{detail} on {os.cpu_count()} CPU cores: the step is compute-bound "
            f"(bench_vmap_scaling.py shows the same outside the runner), so vmapping 8 models "
            f"saves dispatch and compilation, not arithmetic. GPU plan: {GPU_PLAN}",
        }
    return {"target": target, "status": "not met", "detail": detail}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3, help="best of N (noisy shared CPU)")
    ap.add_argument("--steps-per-call", type=int, default=STEPS_PER_CALL)
    ap.add_argument("--quick", action="store_true", help="40 steps, one repeat (plumbing)")
    ap.add_argument("--json", help="write the report here")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.steps_per_call = 40, 1, 10
    steps, reps, spc = args.steps, args.repeats, args.steps_per_call
    # Repeated runs of one program then skip XLA compilation (each run still traces it).
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="bench_train_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    report = _util.new_report(
        "Training loop: runner vs the same step hand-written, clamps, vmapped seeds"
        + (" [QUICK]" if args.quick else ""),
        sys.argv if argv is None else ["benchmarks/bench_train.py", *argv],
        steps=steps,
        repeats=reps,
        steps_per_call=spc,
        model="attention-only 2 layers x 8 heads, d_model 64, batch 32 x 32 tokens",
        devices=[str(d) for d in jax.devices()],
    )
    print(f"jax {jax.__version__}, devices {jax.devices()}, steps {steps}, best of {reps}")

    config, task = demo(steps, spc)
    plain = no_interventions(task)
    c_on, t_on = demo(steps, spc, **{"task.ablate_windows": ((0, steps),)})
    c1, t1 = demo(steps, spc, **{"task.seeds": 1})
    c8, t8 = demo(steps, spc, **{"task.seeds": 8})
    small1 = demo(steps, spc, batch_size=4, **{"task.seeds": 1})
    small8 = demo(steps, spc, batch_size=4, **{"task.seeds": 8})
    cases = {
        "bare_scan": lambda: (bare_sps(config, plain, steps, "scan"), 0.0),
        "bare_sync": lambda: (bare_sps(config, plain, steps, "sync"), 0.0),
        "bare_async": lambda: (bare_sps(config, plain, steps, "async"), 0.0),
        "runner": lambda: runner_sps(config, plain),
        "ablate": lambda: runner_sps(c_on, t_on),
        "pattern": lambda: runner_sps(c_on, pattern_clamp(t_on, 32)),
        "seeds1": lambda: runner_sps(c1, t1),
        "seeds8": lambda: runner_sps(c8, t8),
    }
    if not args.quick:
        cases["small1"] = lambda: runner_sps(*small1)
        cases["small8"] = lambda: runner_sps(*small8)
    # Interleaved repeats, best of each: the load on a shared machine drifts over minutes.
    sps = {k: 0.0 for k in cases}
    wall = {}
    for r in range(reps):
        for k, fn in cases.items():
            v, w = fn()
            sps[k] = max(sps[k], v)
            if r == 0:  # the first run of each case compiles (later ones hit the cache)
                wall[k] = w
    loop = sps["runner"]
    one, eight = sps["seeds1"], sps["seeds8"]
    s1, s8 = sps.get("small1"), sps.get("small8")
    rows = [
        [f"bare: same step, lax.scan x{spc} (baseline)", sps["bare_scan"], 1.0, ""],
        ["bare: one call per step, loss read each step", sps["bare_sync"], None, "beside"],
        ["bare: one call per step, loss never read", sps["bare_async"], None, "beside"],
        ["runner (train_and_evaluate)", loop, sps["bare_scan"] / loop, "<= 1.10"],
        ["runner, ablate L0H0 hook_z every step", sps["ablate"], loop / sps["ablate"], "<= 1.10"],
        ["runner, clamp L0H0 pattern every step", sps["pattern"], loop / sps["pattern"], "<= 1.10"],
        ["runner, 1 model", one, None, ""],
        ["runner, 8 models vmapped (model-steps/s)", 8 * eight, None, ""],
    ]
    report["tables"].append(
        {
            "title": "steady-state steps/s (time ratio: slower / faster; > 1 = the row is slower "
            "than its reference)",
            "columns": ["case", "steps/s", "time ratio", "target"],
            "rows": rows,
        }
    )
    report["headline"] += [
        f"loop overhead: runner time / bare (scan) time = {sps['bare_scan'] / loop:.3f} "
        f"(warm, steady state; both scan {spc} steps per call)",
        f"beside it: runner vs a per-step-dispatch loop: {sps['bare_sync'] / loop:.3f} (loss "
        f"read each step), {sps['bare_async'] / loop:.3f} (never read)",
        f"clamps: ablation {loop / sps['ablate']:.3f}, pattern clamp {loop / sps['pattern']:.3f} "
        f"x the unclamped runner's step time",
        f"8 seeds vmapped: {8 * eight / one:.2f}x the model-steps/s of one model (steady); "
        + (f"batch 4: {8 * s8 / s1:.2f}x; " if s1 else "")
        + "first run incl. compile: 8 sequential / 1 vmapped = "
        f"{8 * wall['seeds1'] / wall['seeds8']:.2f}x",
    ]
    status = lambda ok: "not measured (--quick)" if args.quick else ("met" if ok else "not met")
    r_loop, r_ab, r_pat = sps["bare_scan"] / loop, loop / sps["ablate"], loop / sps["pattern"]
    report["targets"] += [
        {
            "target": "runner <= 10% slower than the same step under the same lax.scan",
            "status": status(r_loop <= 1.10),
            "detail": f"{r_loop:.3f}",
        },
        {
            "target": "a clamp active every step costs <= 10%",
            "status": status(max(r_ab, r_pat) <= 1.10),
            "detail": f"ablate {r_ab:.3f}, pattern {r_pat:.3f}",
        },
        seeds_target(8 * eight / one, args.quick),
    ]
    return _util.emit(report, args.json)


if __name__ == "__main__":
    main()
