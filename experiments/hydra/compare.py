r"""Autoregressive vs Medusa vs Hydra vs Hydra++ decoding on the same frozen base and prompts.

    mechjax run configs/hydra/medusa.py   --workdir runs/hydra/medusa
    mechjax run configs/hydra/hydra.py    --workdir runs/hydra/hydra
    mechjax run configs/hydra/hydra_pp.py --workdir runs/hydra/hydra_pp
    python -m experiments.hydra.compare --runs runs/hydra

For each method, on held-out code prompts of the base model (`attn2l_code`):
  * per-head top-1 accuracy against the true token (held-out windows, teacher-forced), beside
    the heads at initialisation and the count shortcuts of `task.ngram_baselines`;
  * mean acceptance length = tokens emitted per base forward during speculative decoding
    (1 for autoregressive decoding), with a chain of K top-1 drafts and with the config's
    candidate tree; the fraction of steps that accept at least d drafted tokens, per depth d;
  * the cheap shortcut beside them: a bigram drafter (each node = the k-th most frequent
    successor of its parent's token in the training stream, no hidden state);
  * tokens/s of greedy decoding on this CPU, batch 1, warm (one untimed call first; the
    median of `--repeats` passes over the timing prompts), beside `mj.generate`.
Every speculative output is checked equal to `mj.generate`'s greedy output (the run stops
if not). Writes `--out`/results.json and the two plots; prints the markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import mechjax as mj
from experiments.hydra.task import code_streams, ngram_baselines, successor_counts
from mechjax.models import heads as H
from mechjax.train import load_config_file
from mechjax.train.checkpoint import Checkpointer

METHODS = (("medusa", "Medusa"), ("hydra", "Hydra"), ("hydra_pp", "Hydra++"))
BIGRAM = "bigram drafter (baseline)"
HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "configs", "hydra")


def load_heads(run_dir: str, base, base_vars):
    """(DraftModel, params, params at init, step) of a finished `mechjax run
    configs/hydra/<v>.py` run."""
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    t = config["task"]
    draft = H.DraftConfig(
        kind=t["kind"], n_heads=t["n_heads"], n_layers=t["n_layers"], prefix_layer=t["prefix_layer"]
    )
    model = H.DraftModel(base, draft)
    saved, meta = Checkpointer(run_dir, read_only=True).restore_params()
    params = jax.tree.map(lambda x: jnp.asarray(x[0]), saved)  # [n_models=1, ...] -> one model
    like = H.init_from_base(model, jax.random.key(0), base_vars)
    if jax.tree.structure(like) != jax.tree.structure(params):
        raise ValueError(f"{run_dir}: checkpoint params do not match {draft}")
    return model, params, like, meta.get("step")


def bigram_table(train: np.ndarray, vocab: int, k: int) -> np.ndarray:
    """`[vocab, k]`: each token's k most frequent successors in the training stream."""
    counts = successor_counts(train, vocab, 1)
    return np.argsort(-counts, axis=1, kind="stable")[:, :k].astype(np.int32)


def bigram_drafter(table, hidden, next_token, tree):
    """The cheap shortcut as a drafter: node (i_1, ..., i_d) = the rank-i_d bigram successor
    of its parent's token (the root's for depth 1); reads no hidden state."""
    out = []
    for i, path in enumerate(tree.paths):
        prev = next_token if tree.parent[i] < 0 else out[tree.parent[i]]
        out.append(table[prev, path[-1]])
    return jnp.stack(out, axis=1)


def timed(fn, repeats: int) -> float:
    """Median wall seconds of `fn()` (its result blocked on) after one untimed call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="runs/hydra", help="folder with medusa/ hydra/ hydra_pp/")
    ap.add_argument("--prompts", type=int, default=32, help="held-out prompts for acceptance")
    ap.add_argument("--timing-prompts", type=int, default=8, help="of those, decoded one by one")
    ap.add_argument("--prompt-len", type=int, default=48)
    ap.add_argument("--max-new", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "figures"))
    a = ap.parse_args(argv)
    missing = [m for m, _ in METHODS if not os.path.isdir(os.path.join(a.runs, m, "checkpoints"))]
    if missing:
        raise SystemExit(
            f"no finished runs for {missing} under {a.runs}; train them first:\n"
            + "\n".join(
                f"  mechjax run configs/hydra/{m}.py --workdir {a.runs}/{m}" for m in missing
            )
        )
    cfg0 = load_config_file(os.path.join(CONFIGS, "medusa.py"))
    base_name = cfg0.task.base
    base, base_vars, tokenizer = mj.zoo.load(base_name)
    P, N = a.prompt_len, a.max_new
    if P + N + 16 > base.cfg.n_ctx:
        raise SystemExit(f"--prompt-len + --max-new must leave room in n_ctx={base.cfg.n_ctx}")
    train, held = code_streams(base_name, tokenizer)
    L = base.cfg.n_ctx
    starts = np.linspace(0, len(held) - L - 1, cfg0.task.eval_windows).astype(np.int64)
    windows = np.stack([held[s : s + L] for s in starts]).astype(np.int32)
    starts = np.linspace(13, len(held) - P - 1, a.prompts).astype(np.int64)
    prompts = np.stack([held[s : s + P] for s in starts]).astype(np.int32)
    K = cfg0.task.n_heads
    shortcuts = ngram_baselines(train, windows, K, base.cfg.d_vocab)
    trees = {
        "chain": H.Tree([(0,) * d for d in range(1, K + 1)]),
        "tree": H.Tree([tuple(p) for p in cfg0.task.tree], max_depth=K),
    }

    greedy = np.asarray(mj.generate(base, base_vars, prompts, N))
    one = [prompts[i : i + 1] for i in range(a.timing_prompts)]
    results = {
        "base": base_name,
        "prompts": a.prompts,
        "prompt_len": P,
        "max_new": N,
        "jax": jax.__version__,
        "methods": {},
    }
    t_ar = timed(lambda: [mj.generate(base, base_vars, p, N) for p in one], a.repeats)
    results["methods"]["autoregressive"] = {
        "tokens_per_s": a.timing_prompts * N / t_ar,
        "accept": {"chain": 1.0, "tree": 1.0},
    }
    print(f"autoregressive: {a.timing_prompts * N / t_ar:.1f} tokens/s", flush=True)
    k_max = 1 + max(max(p) for t in trees.values() for p in t.paths)
    table = jnp.asarray(bigram_table(train, base.cfg.d_vocab, k_max))
    for key, label in (("bigram", BIGRAM),) + METHODS:
        if key == "bigram":
            drafter, params = bigram_drafter, table
            r = {"accept": {}, "at_least": {}, "tokens_per_s": {}}
        else:
            model, params, init, step = load_heads(os.path.join(a.runs, key), base, base_vars)
            _, drafts = H.head_logits(model, params, windows)
            _, drafts0 = H.head_logits(model, init, windows)
            r = {
                "step": step,
                "acc": [float(x) for x in H.head_accuracy(drafts, windows)],
                "acc_init": [float(x) for x in H.head_accuracy(drafts0, windows)],
                "accept": {},
                "at_least": {},
                "tokens_per_s": {},
            }
            drafter = H.Drafter(model)
        for tname, tree in trees.items():
            out, stats = mj.speculative_generate(
                base, base_vars, prompts, N, drafter=drafter, drafter_params=params, tree=tree,
                return_stats=True,
            )  # fmt: skip
            if not np.array_equal(np.asarray(out), greedy):
                raise SystemExit(f"{label} / {tname}: speculative output != greedy output")
            hist = np.asarray(stats["accept_lengths"])
            steps = hist[hist > 0] - 1  # accepted drafts per verification step
            r["accept"][tname] = float(np.mean(steps + 1))
            r["at_least"][tname] = [float(np.mean(steps >= d)) for d in range(1, K + 1)]

            def run_one(tree=tree, drafter=drafter, params=params):
                return [
                    mj.speculative_generate(
                        base, base_vars, p, N, drafter=drafter, drafter_params=params, tree=tree
                    )
                    for p in one
                ]

            r["tokens_per_s"][tname] = a.timing_prompts * N / timed(run_one, a.repeats)
        results["methods"][label] = r
        print(
            f"{label}: accept chain {r['accept']['chain']:.3f} tree {r['accept']['tree']:.3f}; "
            f"tokens/s chain {r['tokens_per_s']['chain']:.1f} tree {r['tokens_per_s']['tree']:.1f}",
            flush=True,
        )
    results["shortcuts"] = shortcuts
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot(results, trees, a.out)
    print(markdown(results, K, trees))


def markdown(res: dict, K: int, trees: dict) -> str:
    m = res["methods"]
    ar = m["autoregressive"]["tokens_per_s"]
    lines = [
        f"Per-head top-1 accuracy on {res['base']}'s held-out code (head k at t vs the true "
        "x_{t+k+2}; Hydra heads teacher-forced):",
        "",
        "| head | " + " | ".join(label for _, label in METHODS) + " | heads at init "
        "| skip-bigram x_t | bigram x_{t+k+1} |",
        "|---|" + "---|" * (len(METHODS) + 3),
    ]
    sc = res["shortcuts"]
    for k in range(K):
        cells = [f"{m[label]['acc'][k]:.3f}" for _, label in METHODS]
        cells += [f"{m['Medusa']['acc_init'][k]:.3f}"]
        cells += [f"{sc['skip_bigram'][k]:.3f}", f"{sc['bigram'][k]:.3f}"]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Greedy decoding of {res['prompts']} held-out prompts ({res['prompt_len']} tokens, "
        f"{res['max_new']} new); output identical to autoregressive greedy for every method. "
        "Acceptance length = tokens per base forward; tokens/s at batch 1 on this CPU.",
        "",
        "| method | accept. length, chain | accept. length, tree "
        f"({trees['tree'].n_nodes} nodes) | tokens/s chain | tokens/s tree | ms per step "
        "chain / tree | vs autoregressive (best) |",
        "|---|---|---|---|---|---|---|",
        f"| autoregressive | 1.000 | 1.000 | {ar:.1f} | {ar:.1f} | {1e3 / ar:.3f} | 1.00x |",
    ]
    for label in [BIGRAM] + [label for _, label in METHODS]:
        r = m[label]
        best = max(r["tokens_per_s"].values())
        lines.append(
            f"| {label} | {r['accept']['chain']:.3f} | {r['accept']['tree']:.3f} | "
            f"{r['tokens_per_s']['chain']:.1f} | {r['tokens_per_s']['tree']:.1f} | "
            f"{1e3 * r['accept']['chain'] / r['tokens_per_s']['chain']:.3f} / "
            f"{1e3 * r['accept']['tree'] / r['tokens_per_s']['tree']:.3f} | {best / ar:.2f}x |"
        )
    hp, md = m["Hydra++"], m["Medusa"]
    lines += [
        "",
        "ms per step: wall time per base forward (one verification step, drafting included; "
        "for autoregressive decoding one token).",
        "",
        "Hydra++ / Medusa: acceptance length "
        f"{hp['accept']['tree'] / md['accept']['tree']:.2f}x (tree), throughput "
        f"{max(hp['tokens_per_s'].values()) / max(md['tokens_per_s'].values()):.2f}x; Hydra++ / "
        f"autoregressive throughput {max(hp['tokens_per_s'].values()) / ar:.2f}x.",
    ]
    return "\n".join(lines)


def plot(res: dict, trees: dict, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = res["methods"]
    labels = ["autoregressive", BIGRAM] + [label for _, label in METHODS]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(labels))
    for i, tname in enumerate(trees):
        vals = [m[lab]["accept"][tname] for lab in labels]
        ax.bar(x + (i - 0.5) * 0.38, vals, 0.38, label=f"{tname} ({trees[tname].n_nodes} nodes)")
    ax.set_xticks(x, [lab.replace(" drafter (baseline)", "\n(baseline)") for lab in labels])
    ax.set_ylabel("tokens per base forward")
    ax.set_title(f"Mean acceptance length, {res['base']}, held-out prompts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "acceptance_length.png"), dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, label in enumerate([BIGRAM] + [label for _, label in METHODS]):
        for tname, style in (("chain", "--"), ("tree", "-")):
            y = m[label]["at_least"][tname]
            ax.plot(range(1, len(y) + 1), y, style, color=f"C{i}", marker="o",
                    label=f"{label}, {tname}")  # fmt: skip
    ax.set_xlabel("draft depth d (head d - 1)")
    ax.set_ylabel("fraction of steps accepting >= d drafts")
    ax.set_xticks(range(1, len(y) + 1))
    ax.set_title("Acceptance by head depth")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "acceptance_by_depth.png"), dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
