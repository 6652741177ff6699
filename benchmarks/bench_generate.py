"""Generation speed: `mj.generate` vs Hugging Face `transformers` `generate`, and the cost of
steering during generation (issue 16, item 5).

    python benchmarks/bench_generate.py [--layers 12 --d-model 768] [--batch 1 8] [--json OUT]
    python benchmarks/bench_generate.py --quick      # tiny shapes (plumbing only)

Builds one randomly initialised GPT-2 (`transformers.GPT2LMHeadModel`, a fixed torch seed;
GPT-2-small shape by default), saves it to a temporary folder and loads the same weights
into mechjax with `mj.from_pretrained`. For each batch size, the prompt is random tokens
(`--prompt` long) and both generate `--new` tokens greedily with a KV cache:

* HF: `model.generate(input_ids, max_new_tokens, do_sample=False, use_cache=True,
  min_new_tokens=max_new_tokens)` under `torch.inference_mode()` (its fastest CPU path
  here; torch's own thread count), fp32;
* mechjax: `mj.generate(model, params, prompt, max_new_tokens)` (one jitted program: a
  prefill and a `lax.while_loop` over the new tokens), fp32;
* mechjax steered: the same with `mj.steer("blocks.{L/2}.hook_resid_post", v)` active at
  every step.

Each is timed cold (first call: compilation for mechjax, the first-call warm-up for torch)
and warm (median of `--reps` further calls; mechjax's plain and steered calls alternate).
The tokens must agree (greedy on the same
weights: equal up to float rounding near ties, reported as the fraction of equal tokens).
Ratios are new tokens/s of mechjax over HF's, warm vs warm and cold vs cold, and the
steering overhead is steered / plain warm time - 1 (target <= 10%).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _util  # noqa: E402


def _hf_model(layers: int, d_model: int, heads: int, vocab: int, n_ctx: int, seed: int = 0):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        n_layer=layers, n_embd=d_model, n_head=heads, vocab_size=vocab, n_positions=n_ctx
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(cfg).eval()


def _time(fn, reps: int):
    out, cold = _util.timed(fn)
    warm = []
    for _ in range(reps):
        out, t = _util.timed(fn)
        warm.append(t)
    return out, cold, statistics.median(warm)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--d-model", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--prompt", type=int, default=32)
    p.add_argument("--new", type=int, default=64)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="tiny shapes (checks the plumbing)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.quick:
        a.layers, a.d_model, a.heads, a.vocab = 2, 64, 4, 503
        a.prompt, a.new, a.batch, a.reps = 8, 8, [1, 2], 2

    import jax
    import jax.numpy as jnp
    import torch
    import transformers

    import mechjax as mj

    n_ctx = max(1024, a.prompt + a.new)
    hf = _hf_model(a.layers, a.d_model, a.heads, a.vocab, n_ctx)
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d, safe_serialization=True)
        model, params = mj.from_pretrained(d)

    report = _util.new_report(
        "Generation: mj.generate vs transformers generate (greedy, KV cache, CPU, fp32)",
        [sys.argv[0]] + list(argv if argv is not None else sys.argv[1:]),
        layers=a.layers,
        d_model=a.d_model,
        heads=a.heads,
        vocab=a.vocab,
        prompt=a.prompt,
        new_tokens=a.new,
        reps=a.reps,
        quick=a.quick,
        torch_threads=torch.get_num_threads(),
    )
    report["peers"]["transformers"] = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    report["peers"]["mechjax"] = {"jax": jax.__version__}
    L = a.layers // 2
    rng = np.random.default_rng(0)
    steer_vec = jnp.asarray(rng.normal(size=a.d_model).astype(np.float32))
    steer = (mj.steer(f"blocks.{L}.hook_resid_post", steer_vec, scale=0.1),)
    rows, headline = [], []
    for B in a.batch:
        prompt = rng.integers(0, a.vocab, size=(B, a.prompt)).astype(np.int32)
        ids = torch.as_tensor(prompt, dtype=torch.long)

        def run_hf(ids=ids):
            with torch.inference_mode():
                return hf.generate(
                    ids,
                    max_new_tokens=a.new,
                    min_new_tokens=a.new,
                    do_sample=False,
                    use_cache=True,
                    pad_token_id=0,
                    attention_mask=torch.ones_like(ids),
                ).numpy()

        def run_mj(ivs=(), prompt=prompt):
            return np.asarray(
                mj.generate(model, params, prompt, a.new, interventions=ivs).block_until_ready()
            )

        out_hf, cold_hf, warm_hf = _time(run_hf, a.reps)
        # plain and steered alternate, so drifting machine load hits both alike
        out_mj, cold_mj = _util.timed(run_mj)
        _, cold_st = _util.timed(lambda: run_mj(steer))
        plain, steered = [], []
        for _ in range(a.reps):
            plain.append(_util.timed(run_mj)[1])
            steered.append(_util.timed(lambda: run_mj(steer))[1])
        warm_mj, warm_st = statistics.median(plain), statistics.median(steered)
        agree = float((out_hf[:, a.prompt :] == out_mj[:, a.prompt :]).mean())
        n = B * a.new
        rows.append(
            [B, n / warm_hf, n / warm_mj, warm_hf / warm_mj, cold_hf, cold_mj,
             warm_st / warm_mj - 1.0, agree]
        )  # fmt: skip
        headline.append(
            f"batch {B}: mj.generate (JAX {jax.__version__}) {warm_hf / warm_mj:.2f}x the new "
            f"tokens/s of transformers {transformers.__version__} generate (torch "
            f"{torch.__version__}), both warm; cold (first call, incl. mechjax's compilation): "
            f"HF {cold_hf:.1f} s, mechjax {cold_mj:.1f} s; steering overhead "
            f"{100 * (warm_st / warm_mj - 1):+.1f}% (warm)"
        )
    report["tables"].append(
        {
            "title": f"greedy generation, prompt {a.prompt} + {a.new} new tokens",
            "columns": [
                "batch",
                "HF tokens/s (warm)",
                "mechjax tokens/s (warm)",
                "ratio mechjax/HF (warm)",
                "HF cold s",
                "mechjax cold s",
                "steering overhead (warm)",
                "tokens equal",
            ],
            "rows": rows,
        }
    )
    report["headline"] = headline
    worst = max(r[6] for r in rows)
    report["targets"].append(
        {
            "target": "steering overhead during generation <= 10%",
            "status": "met" if worst <= 0.10 else "not met",
            "detail": f"worst over batch sizes {100 * worst:+.1f}%",
        }
    )
    report["notes"].append(
        "tokens equal: fraction of generated tokens that agree between HF and mechjax on the "
        "same weights (greedy on random weights has near-ties, so < 1 can be float rounding)"
    )
    return _util.emit(report, a.json)


if __name__ == "__main__":
    main()
