"""Post-hoc analyses and README figures of the induction-head runs.

    python -m experiments.induction_heads.analysis keep_remove DIR      # Fig. 4a
    python -m experiments.induction_heads.analysis wiring DIR          # PT -> IH wiring
    python -m experiments.induction_heads.analysis curves DIR NAME     # loss + head strength
    python -m experiments.induction_heads.analysis conditions DIR NAME # formation per condition
    python -m experiments.induction_heads.analysis scaling NAME DIR... # classes x labels grid
    python -m experiments.induction_heads.analysis fig6 DIR...          # Fig. 6 with clamps
    python -m experiments.induction_heads.analysis spread NAME DIR...  # seeds: median, range

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
from experiments.induction_heads.task import EVAL_SEED_OFFSET, fewshot_data, parse_model_name
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


def _clamp_to_probe(cache, batch, value):
    """`mj.two_pass` make: hold every cached site at its probe-pass (unablated) value."""
    return tuple(mj.clamp(site, x) for site, x in sorted(cache.items()))


WIRING_MODES = {
    # name: the layer-2 site held at its unablated value (None: plain ablation)
    "ablate": None,
    "value-preserving": "hook_v",  # p can act on h only through h's pattern (q/k)
    "pattern-preserving": "hook_pattern",  # p can act on h only through h's values
}


def wiring(workdir, which=None, pt_layer=0, ih_layer=1, evaluator="train"):
    """Which previous-token heads each induction head depends on (paper Sec. 4: many-to-many).

    For every layer-1 head p and layer-2 head h: the model with only h active in layer 2
    (the other layer-2 heads' values zeroed) and p's values zeroed in layer 1, under three
    modes (`WIRING_MODES`): plain; value-preserving (layer-2 values held at those of the
    unablated pass, `mj.two_pass`, so p reaches h only through h's pattern); pattern-
    preserving (layer-2 patterns held, so p reaches h only through its values). Measured:
    h's induction strength and the query accuracy. All (mode, p, h) cells plus the
    no-ablation cells run as one vmapped program per mode.

    Returns dict: `strength` / `acc` per mode `[p, h]`, `keep_acc` / `keep_strength` `[h]`
    (only h active, nothing ablated), `pt_score` `[p]` (the layer-1 heads' previous-token
    score in the unablated model).
    """
    config = _config(workdir)
    data = fewshot_data(config.task)
    model, params = mj.load_run(workdir, which)
    n = model.cfg.n_heads
    b = _eval_batch(config, data, evaluator, config.task.eval_size)
    pt_site, ih_v = f"blocks.{pt_layer}.attn.hook_v", f"blocks.{ih_layer}.attn.hook_v"
    ih_pat = f"blocks.{ih_layer}.attn.hook_pattern"
    pt_pat = f"blocks.{pt_layer}.attn.hook_pattern"

    def cell(p_mask, h_mask, preserve):
        ivs = []
        if preserve is not None:  # expands in place: the clamp comes before the ablations
            site = f"blocks.{ih_layer}.attn.{preserve}"
            ivs.append(mj.two_pass((site,), _clamp_to_probe))
        ivs += [mj.ablate(pt_site, heads=p_mask), mj.ablate(ih_v, heads=~h_mask)]
        logits, cache = mj.run(model, params, b["inputs"], interventions=ivs, cache=ih_pat)
        strength = M.induction_strength(cache[ih_pat], b["label_pos"], b["distractor_pos"])
        acc = M.query_ce(logits, b["target"])[1]
        return jnp.sum(jnp.where(h_mask, strength, 0.0)), acc

    eye = np.eye(n, dtype=bool)
    p_masks = np.repeat(eye, n, axis=0)  # cell (p, h) at row p * n + h
    h_masks = np.tile(eye, (n, 1))
    out = {"strength": {}, "acc": {}}
    for mode, preserve in WIRING_MODES.items():
        f = jax.jit(jax.vmap(lambda pm, hm, preserve=preserve: cell(pm, hm, preserve)))
        s, a = f(jnp.asarray(p_masks), jnp.asarray(h_masks))
        out["strength"][mode] = np.asarray(s).reshape(n, n)
        out["acc"][mode] = np.asarray(a).reshape(n, n)
    none = jnp.zeros((n, n), bool)
    s, a = jax.jit(jax.vmap(lambda pm, hm: cell(pm, hm, None)))(none, jnp.asarray(eye))
    out["keep_strength"], out["keep_acc"] = np.asarray(s), np.asarray(a)
    _, cache = mj.run(model, params, b["inputs"], cache=pt_pat)
    out["pt_score"] = np.asarray(M.fewshot_prev_token_score(cache[pt_pat]))
    return out


def plot_wiring(res, path):
    plt = R._plt()
    modes = list(WIRING_MODES)
    fig, axes = plt.subplots(1, len(modes) + 1, figsize=(3.6 * (len(modes) + 1), 3.4))
    drop = {f"{m}: accuracy drop": res["keep_acc"][None, :] - res["acc"][m] for m in modes}
    drop["induction strength drop"] = res["keep_strength"][None, :] - res["strength"]["ablate"]
    vmax = max(0.05, max(float(np.max(d)) for d in drop.values()))
    for ax, (title, d) in zip(axes, drop.items()):
        im = ax.imshow(d, cmap="Reds", vmin=0, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("layer-2 head h (only h active)")
        ax.set_ylabel("layer-1 head p ablated")
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def wiring_markdown(res, threshold=0.05) -> str:
    """The accuracy-drop matrices as markdown, and the dependence counts per head."""
    n = len(res["keep_acc"])
    lines = []
    for mode in WIRING_MODES:
        drop = res["keep_acc"][None, :] - res["acc"][mode]
        lines += [
            f"**{mode}**: accuracy with only layer-2 head h active, minus the same with "
            "layer-1 head p also ablated (rows p, columns h)",
            "",
            "| p \\ h | " + " | ".join(f"1:{h}" for h in range(n)) + " | PT score of p |",
            "|---|" + "---|" * (n + 1),
        ]
        for p in range(n):
            cells = " | ".join(f"{drop[p, h]:+.3f}" for h in range(n))
            lines.append(f"| 0:{p} | {cells} | {res['pt_score'][p]:.2f} |")
        big = drop >= threshold
        per_h = big.sum(0)
        per_p = big.sum(1)
        lines += [
            "",
            f"drops >= {threshold}: {int(big.sum())} of {n * n} cells; PT heads each induction "
            f"head depends on: {', '.join(f'1:{h}: {int(c)}' for h, c in enumerate(per_h))}; "
            f"induction heads each PT head feeds: "
            f"{', '.join(f'0:{p}: {int(c)}' for p, c in enumerate(per_p))}",
            "",
        ]
    sdrop = res["keep_strength"][None, :] - res["strength"]["ablate"]
    held = np.abs(res["keep_strength"][None, :] - res["strength"]["pattern-preserving"]).max()
    lines += [
        "**induction strength** of layer-2 head h (only h active) minus the same with layer-1 "
        "head p ablated (plain and value-preserving give the same layer-2 patterns)",
        "",
        "| p \\ h | " + " | ".join(f"1:{h}" for h in range(n)) + " |",
        "|---|" + "---|" * n,
    ]
    for p in range(n):
        lines.append(f"| 0:{p} | " + " | ".join(f"{sdrop[p, h]:+.3f}" for h in range(n)) + " |")
    lines += [
        "",
        f"check: pattern-preserving changes no strength (max |change| {held:.1e}).",
        "",
    ]
    lines.append(
        "keep-one accuracy (no layer-1 ablation): "
        + ", ".join(f"1:{h} {a:.3f}" for h, a in enumerate(res["keep_acc"]))
    )
    return "\n".join(lines)


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


FIG6_CONDITIONS = ("none", "B", "C", "B+C")
FIG6_LEARNS = {"none": "all", "B": "match", "C": "copy", "B+C": "match and copy"}


def _formation_rows(dirs):
    """Per model of each few-shot run in `dirs`: (classes, labels, model, formation step or
    None, steps run, final train acc, batch size)."""
    rows = []
    for d in dirs:
        c = _config(d)
        s = R.fewshot_summary(read_records(d))
        for m, step in s["formation_step"].items():
            f = s["final"][m]
            rows.append(
                (c.task.class_split[0], c.task.n_labels, m, step, f["step"], f["train/acc"],
                 c.batch_size)
            )  # fmt: skip
    return rows


def fig6(dirs):
    """Formation step per (classes, labels, condition) over the runs in `dirs` (paper Fig. 6).

    Each dir is one `fewshot.py:fig6=none|clamps,classes=C,labels=L` run; its models are the
    conditions. Returns the rows of `_formation_rows`, sorted.
    """
    rows = _formation_rows(dirs)
    for r in rows:
        if r[2] not in FIG6_CONDITIONS:
            raise ValueError(
                f"fig6: a run has model {r[2]!r}; expected fewshot.py:fig6=... runs "
                f"(models {FIG6_CONDITIONS})"
            )
    return sorted(rows, key=lambda r: (r[0], r[1], FIG6_CONDITIONS.index(r[2])))


def fig6_markdown(rows) -> str:
    out = [
        "| train classes | labels | condition (what learns) | formation step | sequences "
        "| final train acc | steps run |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, lab, m, step, run, acc, bs in rows:
        seq = "not formed" if step is None else f"{step * bs:,}"
        out.append(
            f"| {c} | {lab} | {m} (learns {FIG6_LEARNS[m]}) | {step if step is not None else '-'} "
            f"| {seq} | {acc:.3f} | {run} |"
        )
    return "\n".join(out)


def plot_fig6(rows, path):
    """Two panels as the paper's Fig. 6: formation vs classes (5 labels), vs labels (50 classes)."""
    plt = R._plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True)
    for ax, (axis, fixed, label) in zip(
        axes,
        ((0, (1, 5), "training classes (5 labels)"), (1, (0, 50), "labels (50 training classes)")),
    ):
        for m in FIG6_CONDITIONS:
            pts = sorted(
                (r[axis], r[3] * r[6])
                for r in rows
                if r[2] == m and r[fixed[0]] == fixed[1] and r[3] is not None
            )
            if pts:
                ax.plot(
                    [x for x, _ in pts],
                    [y for _, y in pts],
                    "o-",
                    label=f"{m}: learns {FIG6_LEARNS[m]}",
                )
        ax.set_xlabel(label)
        ax.set_yscale("log")
    axes[0].set_ylabel("sequences to formation")
    if axes[1].lines or axes[0].lines:
        (axes[1] if axes[1].lines else axes[0]).legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def spread(dirs):
    """Formation steps over seeds, per (lr, condition), of `seeds=N` runs in `dirs`.

    Models are grouped by `task.parse_model_name` (a single-seed run's model counts as seed
    0). Returns rows `dict(lr, condition, steps (one per seed, None if not formed), seeds,
    formed, median, lo, hi, q1, q3, heldout (median final held-out pairs acc), resolution
    (the eval spacing at formation, the coarsest over seeds), steps_run)`, in the runs'
    condition order, lr descending. The statistics are over the seeds that formed (None if
    none did); `formed` says how many did.
    """
    rows = []
    for d in dirs:
        c = _config(d)
        records = read_records(d)
        s = R.fewshot_summary(records)
        evals = R._by_model(records)
        groups = {}
        for m, step in s["formation_step"].items():
            cond, seed = parse_model_name(m)
            groups.setdefault(cond, []).append((seed or 0, m, step))
        for cond, members in groups.items():
            members.sort()
            steps = [st for _, _, st in members]
            f = np.array([st for st in steps if st is not None], float)
            q = np.percentile(f, [0, 25, 50, 75, 100]) if len(f) else [None] * 5
            lo, q1, median, q3, hi = (None if v is None else float(v) for v in q)
            # resolution: formation step minus the eval before it, the coarsest over seeds
            gaps = [
                st - max(r["step"] for r in evals[m] if r["step"] < st)
                for _, m, st in members
                if st  # (formed at step 0: no earlier eval)
            ]
            rows.append(
                dict(
                    lr=float(c.lr),
                    condition=cond,
                    steps=steps,
                    seeds=[seed for seed, _, _ in members],
                    formed=len(f),
                    median=median,
                    lo=lo,
                    hi=hi,
                    q1=q1,
                    q3=q3,
                    heldout=float(
                        np.median([s["final"][m]["heldout_pairs/acc"] for _, m, _ in members])
                    ),
                    resolution=int(max(gaps, default=0)),
                    steps_run=int(max(s["final"][m]["step"] for _, m, _ in members)),
                )
            )
    return sorted(rows, key=lambda r: -r["lr"])  # stable: conditions keep their run order


def spread_markdown(rows) -> str:
    out = [
        "| lr | condition | formed | formation step: median | range | IQR | per seed "
        "| eval spacing at formation | held-out pairs acc (median) | steps run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        n = len(r["steps"])
        per = ", ".join("-" if x is None else str(x) for x in r["steps"])
        if r["formed"]:
            med, rng = f"{r['median']:.0f}", f"{r['lo']:.0f}-{r['hi']:.0f}"
            iqr = f"{r['q1']:.0f}-{r['q3']:.0f}"
        else:
            med = rng = iqr = "-"
        out.append(
            f"| {r['lr']:g} | {r['condition']} | {r['formed']}/{n} | {med} | {rng} | {iqr} "
            f"| {per} | {r['resolution']} | {r['heldout']:.3f} | {r['steps_run']} |"
        )
    return "\n".join(out)


def lr_ratio_markdown(rows) -> str:
    """Per condition run at several lrs: the median formation step at each, the ratio of the
    lowest lr's median to the highest's, the range of the same ratio seed by seed, and the
    Spearman correlation of the seeds' formation steps at the two lrs ("" when no condition
    has two lrs). A ratio equal to the lrs' ratio means the same dynamics, only slower; a
    correlation near 1 means a seed that forms late at one lr forms late at the other. A
    condition with an unformed seed at some lr shows "-" there."""
    from scipy.stats import spearmanr

    lrs = sorted({r["lr"] for r in rows}, reverse=True)
    if len(lrs) < 2:
        return ""
    by = {(r["condition"], r["lr"]): r for r in rows}
    conds = list(dict.fromkeys(r["condition"] for r in rows))
    hi, lo = lrs[0], lrs[-1]
    head = " | ".join(f"median at lr {lr:g}" for lr in lrs)
    out = [
        f"| condition | {head} | ratio (lr {lo:g} / lr {hi:g}) | per-seed ratio | "
        "Spearman (seeds, the two lrs) |",
        "|---|" + "---|" * len(lrs) + "---|---|---|",
    ]
    for c in conds:
        rs = [by.get((c, lr)) for lr in lrs]
        full = [r is not None and r["formed"] == len(r["steps"]) for r in rs]
        cells = " | ".join(f"{r['median']:.0f}" if f else "-" for r, f in zip(rs, full))
        ratio = per = rho = "-"
        if all(full):
            ratio = f"{rs[-1]['median'] / rs[0]['median']:.1f}"
            a, b = (
                dict(zip(rs[0]["seeds"], rs[0]["steps"])),
                dict(zip(rs[-1]["seeds"], rs[-1]["steps"])),
            )
            both = sorted(set(a) & set(b))
            if both:
                q = [b[k] / a[k] for k in both if a[k]]
                per = f"{min(q):.1f}-{max(q):.1f}" if q else "-"
            if len(both) >= 3:
                rho = f"{spearmanr([a[k] for k in both], [b[k] for k in both]).statistic:.2f}"
        out.append(f"| {c} | {cells} | {ratio} | {per} | {rho} |")
    return "\n".join(out)


def plot_spread(rows, path):
    """Formation step per condition: one dot per seed, a bar at the median; one colour per lr."""
    plt = R._plt()
    conds = list(dict.fromkeys(r["condition"] for r in rows))
    lrs = sorted({r["lr"] for r in rows}, reverse=True)
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(conds) + 2), 3.6))
    for j, lr in enumerate(lrs):
        off = (j - (len(lrs) - 1) / 2) * 0.3
        for r in (r for r in rows if r["lr"] == lr):
            x = conds.index(r["condition"]) + off
            ys = [y for y in r["steps"] if y is not None]
            ax.plot([x] * len(ys), ys, "o", color=f"C{j}", ms=4, alpha=0.7,
                    label=f"lr {lr:g}" if r is next(q for q in rows if q["lr"] == lr) else None)  # fmt: skip
            if ys:
                ax.plot([x - 0.12, x + 0.12], [r["median"]] * 2, color=f"C{j}", lw=2)
    ax.set_xticks(range(len(conds)))
    ax.set_xticklabels(conds, rotation=30, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("formation step (dots: seeds, bar: median)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


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
    p.add_argument(
        "what",
        choices=(
            "keep_remove",
            "wiring",
            "curves",
            "conditions",
            "scaling",
            "seeds",
            "fig6",
            "spread",
        ),
    )
    p.add_argument("args", nargs="+")
    p.add_argument("--max_step", type=int, default=None, help="plot steps up to this one")
    p.add_argument("--evaluator", default="train", choices=EVALUATORS, help="wiring: which one")
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
    elif a.what == "wiring":
        res = wiring(a.args[0], evaluator=a.evaluator)
        suffix = "" if a.evaluator == "train" else f"_{a.evaluator}"
        plot_wiring(res, os.path.join(FIGURES, f"wiring{suffix}.png"))
        print(wiring_markdown(res))
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
    elif a.what == "fig6":
        rows = fig6(a.args)
        plot_fig6(rows, os.path.join(FIGURES, "fig6.png"))
        print(fig6_markdown(rows))
    elif a.what == "spread":
        rows = spread(a.args[1:])
        plot_spread(rows, os.path.join(FIGURES, f"{a.args[0]}.png"))
        print(spread_markdown(rows))
        ratios = lr_ratio_markdown(rows)
        if ratios:
            print("\n" + ratios)
    elif a.what == "scaling":
        name, dirs = a.args[0], a.args[1:]
        full = _formation_rows(dirs)
        if len(full) != len(dirs):
            raise ValueError("scaling: each run must hold one model (a classes=,labels= run)")
        rows = [(c, lab, step, acc, run) for c, lab, _, step, run, acc, _ in full]
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
