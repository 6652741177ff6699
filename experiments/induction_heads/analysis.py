"""Post-hoc analyses and README figures of the induction-head runs.

    python -m experiments.induction_heads.analysis keep_remove DIR      # Fig. 4a
    python -m experiments.induction_heads.analysis curves DIR NAME     # loss + head strength
    python -m experiments.induction_heads.analysis conditions DIR NAME # formation per condition
    python -m experiments.induction_heads.analysis scaling NAME DIR... # classes x labels grid

Figures go to experiments/induction_heads/figures/; tables are printed as markdown.
"""

from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import mechjax as mj
from experiments.induction_heads import measures as M
from experiments.induction_heads import report as R
from experiments.induction_heads.task import EVAL_SEED_OFFSET, fewshot_data
from mechjax.data import EVALUATORS
from mechjax.train import read_records

FIGURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")


def _config(workdir):
    with open(os.path.join(workdir, "config.json")) as f:
        return ml_collections.ConfigDict(json.load(f))


def _eval_batch(config, data, name, size):
    i = EVALUATORS.index(name)
    key = jax.random.fold_in(jax.random.key(config.seed + EVAL_SEED_OFFSET), i)
    return data.sample(key, size, name)


def keep_remove(workdir, which=None, layer=1):
    """Accuracy with only head h of `layer` active / with head h removed, vs its strength.

    All 2 x n_heads ablation masks run as one vmapped program over the masks.
    Returns dict of arrays `[head]`: strength, keep_acc, remove_acc per evaluator.
    """
    config = _config(workdir)
    data = fewshot_data(config.task)
    model, params = mj.load_run(workdir, which)
    n = model.cfg.n_heads
    eye = np.eye(n, dtype=bool)
    masks = jnp.asarray(np.concatenate([~eye, eye]))  # keep-one, then remove-one
    site = f"blocks.{layer}.attn.hook_v"
    out = {}
    for name in ("train", "heldout_pairs"):
        b = _eval_batch(config, data, name, config.task.eval_size)

        def acc(mask, b=b):
            logits, _ = mj.run(
                model, params, b["inputs"], interventions=[mj.ablate(site, heads=mask)]
            )
            return M.query_ce(logits, b["target"])[1]

        accs = np.asarray(jax.jit(jax.vmap(acc))(masks))
        out[f"{name}/keep_acc"], out[f"{name}/remove_acc"] = accs[:n], accs[n:]
        if name == "train":
            pat = f"blocks.{layer}.attn.hook_pattern"
            _, cache = mj.run(model, params, b["inputs"], cache=pat)
            out["strength"] = np.asarray(
                M.induction_strength(cache[pat], b["label_pos"], b["distractor_pos"])
            )
            logits, _ = mj.run(model, params, b["inputs"])
            out["full_acc"] = float(M.query_ce(logits, b["target"])[1])
    return out


def plot_keep_remove(res, path):
    plt = R._plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    s = res["strength"]
    ax.scatter(s, res["train/keep_acc"], label="keep only this head")
    ax.scatter(s, res["train/remove_acc"], marker="x", label="remove this head")
    for h, x in enumerate(s):
        ax.annotate(str(h), (x, res["train/keep_acc"][h]), fontsize=7)
    ax.axhline(0.5, color="gray", ls="--", lw=0.8)
    ax.set_xlabel("induction strength (layer 2 head)")
    ax.set_ylabel("train-evaluator accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def curves(workdir, name, model=None, max_step=None):
    """Loss of the four evaluators and per-head strength over training (one model)."""
    evals = R._by_model(read_records(workdir))
    model = model or next(iter(evals))
    path = os.path.join(FIGURES, f"{name}_loss.png")
    R.plot_losses({model: evals[model]}, path, max_step=max_step)
    R.plot_heads(evals[model], os.path.join(FIGURES, f"{name}_ih_strength.png"), title=model)
    R.plot_heads(evals[model], os.path.join(FIGURES, f"{name}_pt_score.png"), "pt_score", 0, model)
    return R.fewshot_summary(read_records(workdir))


def conditions(workdir, name, max_step=None):
    """Formation step and final accuracies per model of a vmapped run; plots all losses."""
    records = read_records(workdir)
    evals = R._by_model(records)
    R.plot_losses(evals, os.path.join(FIGURES, f"{name}_loss.png"), max_step=max_step)
    return R.fewshot_summary(records)


def _table(summary, extra=None):
    rows = [
        "| model | formation step | train acc | held-out pairs acc | new exemplars acc "
        "| new classes acc | max layer-2 IH strength |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, f in summary["final"].items():
        rows.append(
            f"| {m} | {summary['formation_step'][m]} | {f['train/acc']:.3f} | "
            f"{f['heldout_pairs/acc']:.3f} | {f['new_exemplars/acc']:.3f} | "
            f"{f['new_classes/acc']:.3f} | {max(summary['ih_strength'][m]):.2f} |"
        )
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", choices=("keep_remove", "curves", "conditions", "scaling", "seeds"))
    p.add_argument("args", nargs="+")
    p.add_argument("--max_step", type=int, default=None, help="plot steps up to this one")
    a = p.parse_args(argv)
    os.makedirs(FIGURES, exist_ok=True)
    if a.what == "keep_remove":
        res = keep_remove(a.args[0])
        plot_keep_remove(res, os.path.join(FIGURES, "keep_remove.png"))
        print(f"full model train acc {res['full_acc']:.3f}\n")
        print(
            "| head | IH strength | keep-only acc (train) | remove acc (train) "
            "| keep-only acc (held-out pairs) | remove acc (held-out pairs) |"
        )
        print("|---|---|---|---|---|---|")
        for h, s in enumerate(res["strength"]):
            print(
                f"| 1:{h} | {s:.2f} | {res['train/keep_acc'][h]:.3f} | "
                f"{res['train/remove_acc'][h]:.3f} | {res['heldout_pairs/keep_acc'][h]:.3f} | "
                f"{res['heldout_pairs/remove_acc'][h]:.3f} |"
            )
        from scipy.stats import spearmanr

        for ev in ("train", "heldout_pairs"):
            keep = res[f"{ev}/keep_acc"]
            rho = spearmanr(res["strength"], keep)
            print(
                f"\n{ev}: keep-only acc {keep.min():.3f}-{keep.max():.3f} (full model "
                f"{res['full_acc']:.3f} on train); Spearman rho(IH strength, keep-only acc) "
                f"{rho.statistic:.2f} (p = {rho.pvalue:.2f}, {len(keep)} heads)"
            )
    elif a.what == "curves":
        s = curves(a.args[0], a.args[1], max_step=a.max_step)
        print(_table(s))
        for m in s["ih_strength"]:
            print(f"\n{m}: final layer-2 IH strength per head {s['ih_strength'][m]}")
            print(f"{m}: final layer-1 PT score per head {s['pt_score'][m]}")
    elif a.what in ("conditions", "seeds"):
        s = conditions(a.args[0], a.args[1], max_step=a.max_step)
        print(_table(s))
        if a.what == "seeds":
            f = [v for v in s["formation_step"].values() if v is not None]
            n = len(s["formation_step"])
            print(
                f"\nformed: {len(f)}/{n} seeds; formation step median {np.median(f):.0f}, "
                f"min {min(f)}, max {max(f)}, std {np.std(f):.0f}"
                if f
                else "none formed"
            )
    elif a.what == "scaling":
        name, dirs = a.args[0], a.args[1:]
        rows = []
        for d in dirs:
            c = _config(d)
            s = R.fewshot_summary(read_records(d))
            (m,) = s["formation_step"]
            rows.append(
                (
                    c.task.class_split[0],
                    c.task.n_labels,
                    s["formation_step"][m],
                    s["final"][m]["train/acc"],
                    s["final"][m]["step"],
                )
            )
        print("| train classes | labels | formation step | final train acc | steps run |")
        print("|---|---|---|---|---|")
        for r in sorted(rows):
            print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.3f} | {r[4]} |")
        plt = R._plt()
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for labels in sorted({r[1] for r in rows}):
            pts = sorted((r[0], r[2]) for r in rows if r[1] == labels and r[2] is not None)
            ax.plot([x for x, _ in pts], [y for _, y in pts], "o-", label=f"{labels} labels")
        ax.set_xlabel("training classes")
        ax.set_ylabel("formation step")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(FIGURES, f"{name}.png"), dpi=80)
        plt.close(fig)


if __name__ == "__main__":
    main()
