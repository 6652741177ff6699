"""Cost of the hook machinery: mj.run vs a hand-written forward of the same model.

    python benchmarks/bench_hooks_overhead.py [--variant bench-4l-256] [--batch 8] [--seq 128]
    python benchmarks/bench_hooks_overhead.py --family vit [--image 64] [--patch 8]
    python benchmarks/bench_hooks_overhead.py --quick [--json OUT]   # tiny shapes (plumbing)

Prints the median time of (a) a plain jitted GPT-2-style forward written here without
any hooks, (b) `mj.run` with no interventions and no cache, (c) `mj.run` caching every
site, and the ratios b/a and c/a. Both forwards use the same parameters, and their
logits are compared first so the timing compares equal work. `--family vit` does the
same for `mj.ViT` against a hand-written ViT forward (`--family both`, the default, runs
the LM then the ViT).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import mechjax as mj

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _util  # noqa: E402


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


def plain_vit_forward(cfg, p, images):
    """ViT forward (class token, pre-LN, exact gelu, cls pooling) from the same params."""

    def ln(x, q):
        x = x - x.mean(-1, keepdims=True)
        return x / jnp.sqrt((x**2).mean(-1, keepdims=True) + cfg.eps) * q["w"] + q["b"]

    B, H, W, C = images.shape
    P = cfg.patch_size
    x = images.reshape(B, H // P, P, W // P, P, C).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(B, -1, P * P * C) @ p["W_patch"] + p["b_patch"]  # [batch, patches, d]
    cls = jnp.broadcast_to(p["cls_token"], (B, 1, cfg.d_model))
    x = jnp.concatenate([cls, x], axis=1) + p["W_pos"]
    for layer in range(cfg.n_layers):
        b = p[f"blocks_{layer}"]
        a = b["attn"]
        h = ln(x, b["ln1"])
        q = jnp.einsum("bpd,hde->bphe", h, a["W_Q"]) + a["b_Q"]
        k = jnp.einsum("bpd,hde->bphe", h, a["W_K"]) + a["b_K"]
        v = jnp.einsum("bpd,hde->bphe", h, a["W_V"]) + a["b_V"]
        s = jnp.einsum("bqhe,bkhe->bhqk", q, k) / jnp.sqrt(cfg.head_dim)
        z = jnp.einsum("bhqk,bkhe->bqhe", jax.nn.softmax(s, -1), v)
        x = x + jnp.einsum("bqhe,hed->bqd", z, a["W_O"]) + a["b_O"]
        m = b["mlp"]
        h = jax.nn.gelu(ln(x, b["ln2"]) @ m["W_in"] + m["b_in"], approximate=False)
        x = x + h @ m["W_out"] + m["b_out"]
    return ln(x, p["ln_final"])[:, 0] @ p["W_U"] + p["b_U"]


def median_time(fn, *args, reps=30):
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default="bench-4l-256")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--family", choices=("lm", "vit", "both"), default="both")
    ap.add_argument("--image", type=int, default=64, help="ViT image side")
    ap.add_argument("--patch", type=int, default=8, help="ViT patch side")
    ap.add_argument("--quick", action="store_true", help="tiny shapes, few reps (plumbing)")
    ap.add_argument("--json", help="write the report here")
    args = ap.parse_args(argv)
    if args.quick:
        args.variant, args.batch, args.seq, args.reps, args.image = "gpt2-tiny", 2, 16, 3, 16
    report = _util.new_report(
        "Hook machinery overhead: mj.run vs a hand-written forward"
        + (" [QUICK]" if args.quick else ""),
        sys.argv if argv is None else ["benchmarks/bench_hooks_overhead.py", *argv],
        **{k: v for k, v in vars(args).items() if k != "json"},
    )
    rows = []
    if args.family in ("lm", "both"):
        rows.append(bench_lm(args))
    if args.family in ("vit", "both"):
        rows.append(bench_vit(args))
    report["tables"].append(
        {
            "title": f"median of {args.reps} calls, best of 3 interleaved rounds (warm: compiled)",
            "columns": [
                "model",
                "plain ms",
                "mj.run ms",
                "ratio",
                "caching every site ms",
                "ratio (cached)",
                "sites",
            ],
            "rows": [
                [r[k] for k in ("name", "plain", "hooked", "ratio", "cached", "ratio_c", "n")]
                for r in rows
            ],
        }
    )
    for r in rows:
        ok = r["ratio"] <= 1.05
        report["targets"].append(
            {
                "target": f"{r['family']}: mj.run without hooks in use <= 5% slower than plain",
                "status": "not measured (--quick)" if args.quick else ("met" if ok else "not met"),
                "detail": f"{r['ratio']:.3f}",
            }
        )
    return _util.emit(report, args.json)


def compare(name, cfg, model, params, inputs, plain_fn, reps):
    """Times plain_fn vs mj.run (no hooks used) vs mj.run caching every site; prints ratios."""
    plain = jax.jit(lambda p, x: plain_fn(cfg, p["params"], x))
    hooked = jax.jit(lambda p, x: mj.run(model, p, x)[0])
    cached = jax.jit(lambda p, x: mj.run(model, p, x, cache=True))
    diff = float(jnp.abs(plain(params, inputs) - hooked(params, inputs)).max())
    assert diff < 1e-4, f"baseline and mj.run disagree (max |diff| {diff}); timing would be unfair"

    # Interleave the measurements so that machine noise hits all three alike.
    t_plain, t_hooked, t_cached = [], [], []
    for _ in range(3):
        t_plain.append(median_time(plain, params, inputs, reps=reps))
        t_hooked.append(median_time(hooked, params, inputs, reps=reps))
        t_cached.append(median_time(cached, params, inputs, reps=reps))
    a, b, c = (min(t) for t in (t_plain, t_hooked, t_cached))
    n_sites = len(mj.site_names(model, inputs))
    print(f"{name}, {jax.devices()[0].platform}")
    print(f"plain forward (no hooks)          {a * 1e3:8.2f} ms")
    print(f"mj.run, no interventions/cache    {b * 1e3:8.2f} ms   ratio {b / a:.3f}")
    print(f"mj.run, caching all {n_sites:3d} sites     {c * 1e3:8.2f} ms   ratio {c / a:.3f}")
    print(f"overhead without hooks in use: {100 * (b / a - 1):+.1f}% (target <= 5%)")
    return dict(
        name=name,
        plain=a * 1e3,
        hooked=b * 1e3,
        ratio=b / a,
        cached=c * 1e3,
        ratio_c=c / a,
        n=n_sites,
    )


def bench_vit(args):
    cfg = mj.ViTConfig(
        image_size=args.image,
        patch_size=args.patch,
        d_model=256,
        n_layers=4,
        n_heads=8,
        n_classes=10,
    )
    model = mj.ViT(cfg)
    params = mj.init(model, jax.random.key(0))
    images = jax.random.normal(jax.random.key(1), (args.batch, args.image, args.image, 3))
    name = (
        f"ViT: {cfg.n_layers} layers, d_model {cfg.d_model}, batch {args.batch} x "
        f"{args.image}x{args.image} images, patch {args.patch} ({cfg.n_pos()} positions)"
    )
    return dict(
        compare(name, cfg, model, params, images, plain_vit_forward, args.reps), family="ViT"
    )


def bench_lm(args):
    cfg = mj.TransformerConfig.from_variant(args.variant)
    model = mj.Transformer(cfg)
    params = mj.init(model, jax.random.key(0))
    tokens = jax.random.randint(jax.random.key(1), (args.batch, args.seq), 0, cfg.d_vocab)
    name = (
        f"model {args.variant}: {cfg.n_layers} layers, d_model {cfg.d_model}, "
        f"batch {args.batch} x {args.seq} tokens"
    )
    return dict(compare(name, cfg, model, params, tokens, plain_forward, args.reps), family="LM")


if __name__ == "__main__":
    main()
