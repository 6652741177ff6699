"""`python -m mechjax.zoo list | export RUN_DIR NAME | table [NAME ...] | factors NAME|RUN_DIR`.

list    the shipped models, one line each (size, training time)
export  write a finished `mechjax run configs/zoo/NAME.py --workdir RUN_DIR` into the zoo
table   the model-card tables of shipped models, computed now from their weights
factors which held-out part of a task's prompts (templates, names, ...) a model fails on
        (NAME may be a training run's --workdir: its latest or --step checkpoint)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _list() -> int:
    from mechjax import zoo

    if not zoo.names():
        print(f"no zoo models in {zoo.WEIGHTS_DIR}")
        return 1
    for name in zoo.names():
        c = zoo.card(name)
        size = os.path.getsize(os.path.join(zoo.path(name), "model.safetensors")) / 2**20
        t = c["training"].get("wall_time_s") or 0
        print(
            f"{name:14s} {c['n_params'] / 1e6:5.2f}M params  {size:5.1f} MiB  trained {t / 60:.0f} min"
        )
    return 0


def _table(names, n: int, out: str | None, plots: str | None) -> int:
    from mechjax import zoo
    from mechjax.zoo import data as D
    from mechjax.zoo import evaluate as E

    names = names or zoo.names()
    parts = []
    for name in names:
        t0 = time.time()
        model, params, tok = zoo.load(name)
        c = zoo.card(name)
        mixture = c["data"].get("task_share", 0) > 0
        tasks = tuple(c["data"].get("tasks") or D.MIXTURE_TASKS) if mixture else ("docstring",)
        # code models: the docstring task with the parameter names their tokenizer keeps whole
        # (the mixture's tokenizer has them all); mixture models: their training options
        args = (
            E.mixture_args(c)
            if mixture
            else {"options": {"docstring": {"names": E.docstring_names(tok)}}}
        )
        result = {
            "tasks": E.task_table(
                model, params, tok, tasks, n=n, mixture=mixture, baselines=True, **args
            ),
            "code": E.code_loss(model, params, tok),
            "heads": {k: v.tolist() for k, v in E.head_scores(model, params, tok).items()},
            "copying": E.copying(model, params, tok),
        }
        import numpy as np

        heads = {k: np.asarray(v) for k, v in result["heads"].items()}
        md = E.markdown(name, result["tasks"], result["code"], heads, result["copying"])
        skipped = result["tasks"].get("_skipped")
        if skipped:
            md += "\n\nnot evaluated (tokenizer): " + "; ".join(skipped)
        parts.append(f"### {name}\n\n{md}\n")
        print(parts[-1], flush=True)
        print(f"({name}: evaluated in {time.time() - t0:.0f} s)", file=sys.stderr)
        if plots:
            os.makedirs(plots, exist_ok=True)
            E.plot(name, result["tasks"], heads, os.path.join(plots, f"{name}.png"))
        if out:
            with open(os.path.join(out, f"{name}.json"), "w") as f:
                json.dump(result, f, indent=1)
    return 0


def _factors(
    name: str, task: str, n: int, held_out, step: int | None = None, split: str = "test"
) -> int:
    from mechjax import zoo
    from mechjax.zoo import evaluate as E

    if os.path.isdir(name):  # a training run's checkpoint (finished or not)
        model, params, tok = zoo.load_checkpoint(name, step)
        opts = (zoo.run_config(name)["task"].get("task_options") or {}).get(task) or {}
        name = f"{name} (step {step if step is not None else 'latest'})"
    else:
        if step is not None:
            raise SystemExit("--step needs a run directory, not a shipped model name")
        model, params, tok = zoo.load(name)
        opts = (zoo.card(name)["data"].get("task_options") or {}).get(task) or {}
    factors = [tuple(k for k in h.split(",") if k) for h in held_out] if held_out else None
    print(f"### {name}: {task}, options {opts}, held-out kinds from {split!r}\n")
    rows = E.factor_table(model, params, tok, task, factors, n, opts, split=split)
    print(E.factor_markdown(rows, split))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mechjax.zoo", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the shipped models")
    e = sub.add_parser("export", help="write a finished run into the zoo")
    e.add_argument("run_dir")
    e.add_argument("name")
    e.add_argument("--out-dir", default=None, help="default: the package's weights/ folder")
    e.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    t = sub.add_parser("table", help="model-card tables from the shipped weights")
    t.add_argument("names", nargs="*")
    t.add_argument("--n", type=int, default=256, help="eval prompts per task")
    t.add_argument("--json-dir", default=None, help="also write NAME.json here")
    t.add_argument("--plots", default=None, help="also write NAME.png (head scores, tasks) here")
    f = sub.add_parser("factors", help="a task's test-split kinds one at a time")
    f.add_argument("name", help="a shipped model, or a run's --workdir (its latest checkpoint)")
    f.add_argument("--task", default="docstring")
    f.add_argument("--step", type=int, default=None, help="a run's checkpointed step")
    f.add_argument("--n", type=int, default=256, help="prompts per row")
    f.add_argument(
        "--split",
        default="test",
        choices=("val", "test"),
        help="where the held-out kinds come from: 'val' while choosing a recipe, 'test' to report",
    )
    f.add_argument(
        "--held-out",
        action="append",
        help="kinds held out together in one row, comma-separated, '' for none (repeat for more rows; "
        "default: none, each kind alone, all)",
    )
    a = p.parse_args(argv)
    if a.cmd == "factors":
        return _factors(a.name, a.task, a.n, a.held_out, a.step, a.split)
    if a.cmd == "list":
        return _list()
    if a.cmd == "export":
        from mechjax import zoo

        print(zoo.export(a.run_dir, a.name, a.out_dir, a.dtype))
        return 0
    return _table(a.names, a.n, a.json_dir, a.plots)


if __name__ == "__main__":
    sys.exit(main())
