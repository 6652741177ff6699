"""Reports of the induction-head runs: headline numbers (summary.json) and PNG plots."""

from __future__ import annotations

import os

import numpy as np

from experiments.induction_heads.measures import FORMED, LN2, formation_step
from mechjax.data import EVALUATORS


def _by_model(records, split="eval"):
    out = {}
    for r in records:
        if r.get("split") == split:
            out.setdefault(r["model"], []).append(r)
    for rs in out.values():
        rs.sort(key=lambda r: r["step"])
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_losses(evals, path, title="", max_step=None):
    """Eval loss (top) and accuracy (bottom) of every evaluator vs step; one line per model."""
    plt = _plt()
    fig, axes = plt.subplots(2, 4, figsize=(16, 5.6), sharey="row", sharex=True)
    for col, name in enumerate(EVALUATORS):
        for model, rs in evals.items():
            rs = [r for r in rs if max_step is None or r["step"] <= max_step]
            steps = [r["step"] for r in rs]
            axes[0, col].plot(steps, [r[f"{name}/loss"] for r in rs], label=model, lw=1.2)
            axes[1, col].plot(steps, [r[f"{name}/acc"] for r in rs], label=model, lw=1.2)
        axes[0, col].axhline(LN2, color="gray", ls="--", lw=0.8)
        axes[0, col].axhline(FORMED, color="gray", ls=":", lw=0.8)
        axes[1, col].axhline(0.5, color="gray", ls="--", lw=0.8)
        axes[0, col].set_title(name)
        axes[1, col].set_xlabel("step")
    axes[0, 0].set_ylabel("query loss (-- ln 2, : 0.4 ln 2)")
    axes[1, 0].set_ylabel("query accuracy (-- 1/2)")
    if len(evals) <= 12:
        axes[0, -1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def plot_heads(rs, path, key="ih_strength", layer=-1, title=""):
    """Per-head `key[layer]` of one model over training."""
    plt = _plt()
    steps = [r["step"] for r in rs]
    vals = np.array([r[key] for r in rs])[:, layer]  # [eval, head]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for h in range(vals.shape[1]):
        ax.plot(steps, vals[:, h], label=f"head {h}")
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def fewshot_summary(records) -> dict:
    """Per model: formation step, final accuracies, final per-head induction strength."""
    evals = _by_model(records)
    out = {"formation_step": {}, "final": {}, "ih_strength": {}, "pt_score": {}}
    for model, rs in evals.items():
        steps = [r["step"] for r in rs]
        out["formation_step"][model] = formation_step(steps, [r["train/loss"] for r in rs])
        last = rs[-1]
        out["final"][model] = {
            "step": last["step"],
            **{f"{e}/acc": round(float(last[f"{e}/acc"]), 4) for e in EVALUATORS},
            **{f"{e}/loss": round(float(last[f"{e}/loss"]), 4) for e in EVALUATORS},
        }
        out["ih_strength"][model] = [round(float(v), 3) for v in last["ih_strength"][-1]]
        out["pt_score"][model] = [round(float(v), 3) for v in last["pt_score"][0]]
    return out


def fewshot_report(records, workdir) -> dict:
    s = fewshot_summary(records)
    evals = _by_model(records)
    if evals:
        plot_losses(evals, os.path.join(workdir, "loss.png"))
        first = next(iter(evals))
        plot_heads(evals[first], os.path.join(workdir, "ih_strength.png"), title=first)
        plot_heads(evals[first], os.path.join(workdir, "pt_score.png"), "pt_score", 0, first)
    lines = [
        "| model | formation step | train acc | held-out pairs | new exemplars | new classes "
        "| max IH strength (layer 2) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, f in s["final"].items():
        lines.append(
            f"| {m} | {s['formation_step'][m]} | {f['train/acc']:.3f} | "
            f"{f['heldout_pairs/acc']:.3f} | {f['new_exemplars/acc']:.3f} | "
            f"{f['new_classes/acc']:.3f} | {max(s['ih_strength'][m]):.3f} |"
        )
    s["_markdown"] = "\n".join(lines)
    return s


def tokens_report(records, workdir, uniform_loss: float) -> dict:
    evals = _by_model(records)
    out = {"final": {}}
    for model, rs in evals.items():
        last = rs[-1]
        ind = np.array(last["induction_score"])
        pt = np.array(last["pt_score"])
        out["final"][model] = {
            "step": last["step"],
            "loss_first": round(float(last["loss_first"]), 4),
            "loss_second": round(float(last["loss_second"]), 4),
            "max_induction_score_layer2": round(float(ind[-1].max()), 3),
            "best_induction_head": int(ind[-1].argmax()),
            "max_pt_score_layer1": round(float(pt[0].max()), 3),
            "best_pt_head": int(pt[0].argmax()),
            "induction_score": ind.round(3).tolist(),
            "pt_score": pt.round(3).tolist(),
        }
    if evals:
        first = next(iter(evals))
        plot_heads(evals[first], os.path.join(workdir, "induction_score.png"), "induction_score")
        plot_heads(evals[first], os.path.join(workdir, "pt_score.png"), "pt_score", 0)
        plt = _plt()
        fig, ax = plt.subplots(figsize=(6, 3.4))
        rs = evals[first]
        steps = [r["step"] for r in rs]
        ax.plot(steps, [r["loss_first"] for r in rs], label="first copy")
        ax.plot(steps, [r["loss_second"] for r in rs], label="second copy")
        ax.axhline(uniform_loss, color="gray", ls="--", lw=0.8, label="ln d_vocab")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(workdir, "loss.png"), dpi=80)
        plt.close(fig)
    lines = ["| model | loss 1st copy | loss 2nd copy | max induction score (L2) | max PT (L1) |"]
    lines.append("|---|---|---|---|---|")
    for m, f in out["final"].items():
        lines.append(
            f"| {m} | {f['loss_first']:.3f} | {f['loss_second']:.3f} | "
            f"{f['max_induction_score_layer2']:.3f} | {f['max_pt_score_layer1']:.3f} |"
        )
    for m, rs in evals.items():  # second / first copy loss by repeat distance
        last = rs[-1]
        ds = sorted(
            int(k.rsplit("/", 1)[1]) for k in last if k.startswith("by_distance/loss_first/")
        )
        if not ds:
            continue
        rows = {}
        for d in ds:
            f = float(last[f"by_distance/loss_first/{d}"])
            sec = float(last[f"by_distance/loss_second/{d}"])
            ind = np.array(last[f"by_distance/induction_score/{d}"])
            rows[d] = dict(first=f, second=sec, ratio=sec / f, induction=float(ind[-1].max()),
                           head=int(ind[-1].argmax()))  # fmt: skip
        out["final"][m]["by_distance"] = rows
        lines += [
            "",
            f"{m}, by repeat distance d (d random tokens shown twice):",
            "",
            "| d | loss 1st copy | loss 2nd copy | 2nd / 1st | best layer-2 induction score (head) |",
            "|---|---|---|---|---|",
        ]
        for d, r in rows.items():
            lines.append(
                f"| {d} | {r['first']:.3f} | {r['second']:.3f} | {r['ratio']:.3f} | "
                f"{r['induction']:.3f} (1:{r['head']}) |"
            )
    out["_markdown"] = "\n".join(lines)
    return out
