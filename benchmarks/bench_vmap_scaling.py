"""How a training step scales with the number of vmapped models, outside the runner.

    python benchmarks/bench_vmap_scaling.py [--models 8] [--steps 100] [--quick] [--json OUT]

The few-shot induction-head model (2 layers, 8 heads, d_model 64, 512-d exemplar inputs,
batch 32 x 5 positions), a plain jitted Adam step in a `fori_loop`: one model, then
`--models` models as one `vmap`. Prints ms per step and the throughput ratio. If the ratio
is ~1, the step is compute-bound on this machine and vmapping models saves compilation and
dispatch, not arithmetic; the runner (`bench_train.py`) can do no better than this.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import optax

import mechjax as mj

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _util  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="10 steps (plumbing)")
    ap.add_argument("--json", help="write the report here")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps = 10
    report = _util.new_report(
        "Vmapped models outside the runner: the few-shot model's Adam step, 1 vs "
        f"{args.models} models" + (" [QUICK]" if args.quick else ""),
        sys.argv if argv is None else ["benchmarks/bench_vmap_scaling.py", *argv],
        models=args.models,
        steps=args.steps,
        batch=args.batch,
        devices=[str(d) for d in jax.devices()],
    )

    cfg = mj.TransformerConfig(
        d_model=64,
        n_layers=2,
        n_heads=8,
        d_head=8,
        attn_only=True,
        d_vocab=5,
        d_input=512,
        positional_embedding_type="rotary",
        attn_bias=False,
        n_ctx=8,
    )
    model = mj.Transformer(cfg)
    B = args.batch
    inputs = {
        "tokens": jnp.zeros((B, 5), jnp.int32),
        "vectors": jax.random.normal(jax.random.key(0), (B, 5, 512)),
        "is_vector": jnp.tile(jnp.array([True, False, True, False, True]), (B, 1)),
    }
    targets = jax.random.randint(jax.random.key(1), (B,), 0, 5)
    opt = optax.adam(1e-4)

    def loss(p):
        logits, _ = mj.run(model, p, inputs)
        return optax.softmax_cross_entropy_with_integer_labels(logits[:, -1], targets).mean()

    def steps(p, s):
        def one(_, carry):
            p, s = carry
            u, s = opt.update(jax.grad(loss)(p), s, p)
            return optax.apply_updates(p, u), s

        return jax.lax.fori_loop(0, args.steps, one, (p, s))

    init = lambda k: mj.init(model, k, inputs)
    p1 = init(jax.random.key(2))
    pm = jax.vmap(init)(jax.random.split(jax.random.key(3), args.models))
    runs = {
        "1 model": (jax.jit(steps), (p1, opt.init(p1)), 1),
        f"{args.models} models, vmapped": (
            jax.jit(jax.vmap(steps)),
            (pm, jax.vmap(opt.init)(pm)),
            args.models,
        ),
    }
    per_model, rows = {}, []
    for name, (fn, fargs, n) in runs.items():
        jax.block_until_ready(fn(*fargs))  # compile
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            jax.block_until_ready(fn(*fargs))
            best = min(best, time.perf_counter() - t)
        ms = best / args.steps * 1e3
        per_model[name] = ms / n
        print(f"{name:24s} {ms:8.2f} ms/step   {ms / n:6.2f} ms per model-step")
        rows.append([name, ms, ms / n])
    one, many = per_model.values()
    print(f"throughput ratio (model-steps/s, {args.models} vmapped / 1): {one / many:.2f}x")
    report["tables"].append(
        {
            "title": f"best of 3 calls of {args.steps} steps (a fori_loop; warm: compiled)",
            "columns": ["case", "ms/step", "ms per model-step"],
            "rows": rows,
        }
    )
    report["headline"].append(
        f"{args.models} models vmapped: {one / many:.2f}x the model-steps/s of one model "
        f"(~1 = compute-bound here: vmapping saves dispatch and compilation, not arithmetic)"
    )
    report["settings"]["ratio"] = one / many
    return _util.emit(report, args.json)


if __name__ == "__main__":
    main()
