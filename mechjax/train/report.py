"""DIR/report.md (tables + PNG plots per model) and DIR/summary.json, built from metrics.jsonl."""

from __future__ import annotations

import json
import math
import os
import re

from mechjax.train.metrics import read_records

REPORT_FILE = "report.md"
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"
_META = ("step", "model", "split")


def _is_scalar(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def final_metrics(records: list[dict]) -> dict:
    """model -> split -> metric -> value at that model/split's last recorded step."""
    out: dict = {}
    for r in sorted(records, key=lambda r: r["step"]):
        d = out.setdefault(r["model"], {}).setdefault(r["split"], {})
        d.update({k: v for k, v in r.items() if k not in _META})
        d["step"] = r["step"]
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, list):
        return "[array]"
    return str(v)


def _table(final: dict, split: str) -> str:
    models = [m for m in final if split in final[m]]
    if not models:
        return ""
    keys = []
    for m in models:
        keys += [k for k in final[m][split] if k not in keys and k != "step"]
    lines = [
        "| model | step | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for m in models:
        d = final[m][split]
        lines.append(
            f"| {m} | {d['step']} | " + " | ".join(_fmt(d.get(k, "")) for k in keys) + " |"
        )
    return "\n".join(lines)


def _plots(records: list[dict], workdir: str) -> list[tuple[str, str]]:
    """One PNG per (split, scalar metric), a line per model. Returns [(title, filename)]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict = {}
    for r in sorted(records, key=lambda r: r["step"]):
        for k, v in r.items():
            if k in _META or not _is_scalar(v):
                continue
            series.setdefault((r["split"], k), {}).setdefault(r["model"], []).append((r["step"], v))
    out = []
    for (split, metric), per_model in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        for model, pts in per_model.items():
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=model, marker="." if len(xs) < 30 else None)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.set_title(f"{split}: {metric}")
        vals = [v for pts in per_model.values() for _, v in pts]
        if "loss" in metric and min(vals) > 0 and max(vals) > 10 * min(vals):
            ax.set_yscale("log")  # only when the loss spans a decade or more
        if len(per_model) <= 10:
            ax.legend(fontsize=7)
        fig.tight_layout()
        name = "plot_" + re.sub(r"[^A-Za-z0-9_.-]", "_", f"{split}_{metric}") + ".png"
        fig.savefig(os.path.join(workdir, name), dpi=90)
        plt.close(fig)
        out.append((f"{split}: {metric}", name))
    return out


def write_report(workdir: str, task_report=None, records: list[dict] | None = None) -> dict:
    """Writes DIR/report.md, DIR/plot_*.png and DIR/summary.json from the metric records.

    Args:
      workdir: the run directory (reads metrics.jsonl, run.json, config.json).
      task_report: optional `Task.report` (records, workdir) -> dict of headline numbers; its
        "_markdown" entry is appended to report.md.
      records: records to use instead of reading metrics.jsonl.

    Returns:
      the summary dict written to summary.json.
    """
    records = read_records(workdir) if records is None else records
    run = {}
    if os.path.exists(os.path.join(workdir, RUN_FILE)):
        with open(os.path.join(workdir, RUN_FILE)) as f:
            run = json.load(f)
    final = final_metrics(records)
    summary = {
        "experiment": run.get("experiment", ""),
        "models": run.get("models", list(final)),
        "step": max((r["step"] for r in records), default=0),
        "final": final,
    }
    for k in ("wall_time_s", "steps_per_sec", "model_steps_per_sec", "status"):
        if k in run:
            summary[k] = run[k]
    extra_md = ""
    if task_report is not None:
        extra = dict(task_report(records, workdir) or {})
        extra_md = extra.pop("_markdown", "")
        summary.update(extra)
    plots = _plots(records, workdir) if records else []

    md = [
        f"# Run report: {summary['experiment'] or os.path.basename(os.path.abspath(workdir))}",
        "",
    ]
    md.append(f"Step {summary['step']}; models: {', '.join(summary['models'])}.")
    if summary.get("wall_time_s") is not None:
        sps = summary.get("steps_per_sec")
        speed = f"; {sps:.1f} training steps/s after compilation" if sps else ""
        md.append(f"Wall time {summary['wall_time_s']:.1f} s{speed}.")
    if run.get("status") and run["status"] != "finished":
        md.append(f"\n**Status: {run['status']}**")
    for split in ("eval", "train"):
        t = _table(final, split)
        if t:
            md += ["", f"## Final {split} metrics", "", t]
    if extra_md:
        md += ["", extra_md]
    if plots:
        md += ["", "## Plots", ""]
        md += [f"![{title}]({name})" for title, name in plots]
    if os.path.exists(os.path.join(workdir, "config.json")):
        with open(os.path.join(workdir, "config.json")) as f:
            md += ["", "## Config", "", "```json", f.read().strip(), "```"]
    with open(os.path.join(workdir, REPORT_FILE), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(workdir, SUMMARY_FILE), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    return summary
