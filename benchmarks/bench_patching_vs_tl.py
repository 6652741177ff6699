"""Head-output activation patching: mechjax vs TransformerLens on identical weights.

    python benchmarks/bench_patching_vs_tl.py [--small]

Needs torch, transformers and transformer-lens<4 next to mechjax (e.g. a separate venv:
/work/venv-tl). Builds a randomly initialised Hugging Face GPT-2 (GPT-2-small shape, or a
tiny one with --small) with a fixed seed, saves it to a temp folder and loads the same
weights into TransformerLens (converted in memory, no downloads, no folding) and into
mechjax (mj.from_pretrained on the saved folder). Then, on batch 8 x 64 random tokens
(corrupted = clean with two positions changed), runs the all-heads head-output patching
sweep (TL `get_act_patch_attn_head_out_all_pos`, mechjax `mj.patching.attn_head_out_all_pos`)
with metric = mean logit difference of two fixed tokens at the last position. Prints both
times, the ratio, the max abs difference, and the time of attribution patching for the
same sweep relative to one forward pass.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def build_hf(small: bool, seed: int = 0):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if small:
        cfg = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=503, n_positions=128)
    else:
        cfg = GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024)
    torch.manual_seed(seed)
    return GPT2LMHeadModel(cfg).eval()


def tl_model(hf):
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights

    c = hf.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer,
        d_model=c.n_embd,
        n_ctx=c.n_positions,
        d_head=c.n_embd // c.n_head,
        n_heads=c.n_head,
        d_mlp=4 * c.n_embd,
        d_vocab=c.vocab_size,
        act_fn="gelu_new",
        normalization_type="LN",
        eps=c.layer_norm_epsilon,
        original_architecture="GPT2LMHeadModel",
    )
    model = HookedTransformer(cfg)
    # No folding / centering / value-bias folding: hook_z must equal the HF model's.
    model.load_and_process_state_dict(
        convert_gpt2_weights(hf, cfg),
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
    )
    return model.eval()


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="tiny model, for development")
    ap.add_argument("--skip-tl", action="store_true", help="time mechjax only")
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import torch

    import mechjax as mj
    from mechjax.analysis import attribution, metrics

    torch.set_grad_enabled(False)  # as in TL's patching demos; faster for TL
    hf = build_hf(args.small)
    V = hf.config.vocab_size
    rng = np.random.default_rng(0)
    clean = rng.integers(0, V, size=(8, 64))
    corrupted = clean.copy()
    corrupted[:, [10, 40]] = rng.integers(0, V, size=(8, 2))
    A, B = 17, 42

    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp, safe_serialization=True)
        model, params = mj.from_pretrained(tmp)

    print(
        f"model: {model.cfg.n_layers} layers, d_model {model.cfg.d_model}, "
        f"{model.cfg.n_heads} heads, vocab {V}; batch {clean.shape[0]} x {clean.shape[1]}; "
        f"jax {jax.__version__} on {jax.devices()[0].platform}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {os.cpu_count()} CPUs"
    )

    # mechjax -----------------------------------------------------------------------------
    clean_j, corr_j = jnp.asarray(clean, jnp.int32), jnp.asarray(corrupted, jnp.int32)
    _, cache = mj.run(
        model, params, clean_j, cache=("blocks.*.attn.hook_z", "blocks.0.hook_resid_pre")
    )
    ld = metrics.logit_diff(A, B)  # reads only the last position -> unembeds only there
    full_ld = lambda logits: jnp.mean(logits[:, -1, A] - logits[:, -1, B])  # noqa: E731

    def sweep(metric):
        return np.asarray(mj.patching.attn_head_out_all_pos(model, params, corr_j, cache, metric))

    mj_res, t_mj_first = timed(sweep, ld)
    mj_res, t_mj = timed(sweep, ld)
    # Run once only (it is slow); its time includes compiling.
    mj_full, t_full = timed(sweep, full_ld)
    print(
        f"mechjax sweep, logit_diff metric (last-position unembed): {t_mj:8.2f} s  "
        f"(first call incl. compile {t_mj_first:.2f} s)"
    )
    print(
        f"mechjax sweep, plain lambda metric (full unembed):        {t_full:8.2f} s  "
        f"(one call, incl. compile)"
    )
    print(f"max |logit_diff metric - plain metric| = {np.max(np.abs(mj_res - mj_full)):.2e}")

    fwd = jax.jit(lambda p, t: model.apply(p, t))
    fwd(params, corr_j).block_until_ready()
    _, t_fwd = timed(lambda: fwd(params, corr_j).block_until_ready())
    _, t_fwd2 = timed(lambda: fwd(params, corr_j).block_until_ready())
    t_fwd = min(t_fwd, t_fwd2)

    def attr():
        return np.asarray(attribution.attn_head_out_all_pos(model, params, corr_j, cache, ld))

    attr_res, t_attr_first = timed(attr)
    attr_res, t_attr = timed(attr)
    cmp = attribution.compare(mj_res, attr_res)
    print(f"one plain forward (jit, full logits): {t_fwd:.3f} s")
    print(
        f"attribution patching of the same sweep: {t_attr:.3f} s = {t_attr / t_fwd:.2f} forwards "
        f"(first call {t_attr_first:.2f} s); vs exact: pearson {cmp['pearson']:.3f}, "
        f"spearman {cmp['spearman']:.3f}"
    )

    if args.skip_tl:
        return
    # TransformerLens ------------------------------------------------------------------------
    from transformer_lens import patching

    tl = tl_model(hf)
    clean_t, corr_t = torch.tensor(clean), torch.tensor(corrupted)
    _, tl_cache = tl.run_with_cache(clean_t)

    def tl_metric(logits):
        return (logits[:, -1, A] - logits[:, -1, B]).mean()

    tl_res, t_tl = timed(
        lambda: patching.get_act_patch_attn_head_out_all_pos(tl, corr_t, tl_cache, tl_metric)
    )
    tl_res = tl_res.numpy()
    diff = float(np.max(np.abs(tl_res - mj_res)))
    print(f"TransformerLens get_act_patch_attn_head_out_all_pos: {t_tl:8.2f} s")
    print(
        f"ratio TL / mechjax: {t_tl / t_mj:.1f}x (logit_diff metric), "
        f"{t_tl / t_full:.1f}x (plain metric); incl. mechjax compile: {t_tl / t_mj_first:.1f}x"
    )
    print(
        f"max abs difference TL vs mechjax: {diff:.2e} (metric range "
        f"{tl_res.min():.3f}..{tl_res.max():.3f}); plain metric: "
        f"{float(np.max(np.abs(tl_res - mj_full))):.2e}"
    )


if __name__ == "__main__":
    main()
