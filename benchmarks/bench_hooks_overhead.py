"""Cost of the hook machinery: mj.run vs a hand-written forward of the same model.

    python benchmarks/bench_hooks_overhead.py [--variant bench-4l-256] [--batch 8] [--seq 128]

Prints the median time of (a) a plain jitted GPT-2-style forward written here without
any hooks, (b) `mj.run` with no interventions and no cache, (c) `mj.run` caching every
site, and the ratios b/a and c/a. Both forwards use the same parameters, and their
logits are compared first so the timing compares equal work.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import mechjax as mj


def plain_forward(cfg, p, tokens):
    """GPT-2 forward from the same params, no hooks (the baseline)."""

    def ln(x, q):
        x = x - x.mean(-1, keepdims=True)
        return x / jnp.sqrt((x**2).mean(-1, keepdims=True) + cfg.eps) * q["w"] + q["b"]

    P = tokens.shape[1]
    x = p["W_E"][tokens] + p["W_pos"][:P]
    causal = jnp.tril(jnp.ones((P, P), bool))
    for layer in range(cfg.n_layers):
        b = p[f"blocks_{layer}"]
        a = b["attn"]
        h = ln(x, b["ln1"])
        q = jnp.einsum("bpd,hde->bphe", h, a["W_Q"]) + a["b_Q"]
        k = jnp.einsum("bpd,hde->bphe", h, a["W_K"]) + a["b_K"]
        v = jnp.einsum("bpd,hde->bphe", h, a["W_V"]) + a["b_V"]
        s = jnp.einsum("bqhe,bkhe->bhqk", q, k) / jnp.sqrt(cfg.head_dim)
        pat = jax.nn.softmax(jnp.where(causal, s, -jnp.inf), -1)
        z = jnp.einsum("bhqk,bkhe->bqhe", pat, v)
        x = x + jnp.einsum("bqhe,hed->bqd", z, a["W_O"]) + a["b_O"]
        m = b["mlp"]
        h = jax.nn.gelu(ln(x, b["ln2"]) @ m["W_in"] + m["b_in"], approximate=True)
        x = x + h @ m["W_out"] + m["b_out"]
    return ln(x, p["ln_final"]) @ p["W_U"]


def median_time(fn, *args, reps=30):
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="bench-4l-256")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()

    cfg = mj.TransformerConfig.from_variant(args.variant)
    model = mj.Transformer(cfg)
    params = mj.init(model, jax.random.key(0))
    tokens = jax.random.randint(jax.random.key(1), (args.batch, args.seq), 0, cfg.d_vocab)

    plain = jax.jit(lambda p, t: plain_forward(cfg, p["params"], t))
    hooked = jax.jit(lambda p, t: mj.run(model, p, t)[0])
    cached = jax.jit(lambda p, t: mj.run(model, p, t, cache=True))
    diff = float(jnp.abs(plain(params, tokens) - hooked(params, tokens)).max())
    assert diff < 1e-4, f"baseline and mj.run disagree (max |diff| {diff}); timing would be unfair"

    # Interleave the measurements so that machine noise hits all three alike.
    t_plain, t_hooked, t_cached = [], [], []
    for _ in range(3):
        t_plain.append(median_time(plain, params, tokens, reps=args.reps))
        t_hooked.append(median_time(hooked, params, tokens, reps=args.reps))
        t_cached.append(median_time(cached, params, tokens, reps=args.reps))
    a, b, c = (min(t) for t in (t_plain, t_hooked, t_cached))
    n_sites = len(mj.site_names(model, tokens))
    print(
        f"model {args.variant}: {cfg.n_layers} layers, d_model {cfg.d_model}, "
        f"batch {args.batch} x {args.seq} tokens, {jax.devices()[0].platform}"
    )
    print(f"plain forward (no hooks)          {a * 1e3:8.2f} ms")
    print(f"mj.run, no interventions/cache    {b * 1e3:8.2f} ms   ratio {b / a:.3f}")
    print(f"mj.run, caching all {n_sites:3d} sites     {c * 1e3:8.2f} ms   ratio {c / a:.3f}")
    print(f"overhead without hooks in use: {100 * (b / a - 1):+.1f}% (target <= 5%)")


if __name__ == "__main__":
    main()
