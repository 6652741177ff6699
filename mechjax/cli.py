"""`mechjax` command line: run a config, list configs, rebuild a report.

    mechjax run configs/<experiment>/<file>.py[:arg] --workdir DIR [--config.key=value ...]
    mechjax list [--root DIR]
    mechjax report DIR

This file is intentionally thin; the logic lives in `mechjax.train`.
"""

from __future__ import annotations

import argparse
import ast
import errno
import glob
import json
import os
import sys


def _first_doc_line(path: str) -> str:
    try:
        with open(path) as f:
            doc = ast.get_docstring(ast.parse(f.read()))
    except (OSError, SyntaxError):
        return ""
    return doc.strip().splitlines()[0] if doc else ""


def cmd_list(root: str | None) -> int:
    """Prints every configs/<experiment>/<name>.py with the first line of its docstring."""
    if root is None:  # the current directory, else the checkout this mechjax was installed from
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        root = "." if glob.glob(os.path.join("configs", "*", "*.py")) else here
    paths = sorted(glob.glob(os.path.join(root, "configs", "*", "*.py")))
    paths = [p for p in paths if not os.path.basename(p).startswith("_")]
    if not paths:
        print(f"no configs found under {os.path.join(root, 'configs')}/<experiment>/*.py")
        return 1
    rel = [os.path.relpath(p, root) for p in paths]
    width = max(len(r) for r in rel)
    for r, p in zip(rel, paths):
        print(f"{r:<{width}}  {_first_doc_line(p)}")
    return 0


def build_run(spec: str, overrides: list[str]):
    """The build phase of `mechjax run`: `(config, root, task)`, before anything trains.

    Loads the config file, applies the overrides, fills the defaults, checks the config and
    builds the experiment's task. A ValueError raised here comes from bad user input (a bad
    clamp spec, a task option out of range): it is re-raised as a `ConfigError`, which the
    CLI prints as one `error:` line without a traceback. Other exceptions (TypeError,
    AttributeError, ...: bugs) keep their traceback.
    """
    from mechjax import train

    try:
        path, _ = train.config.split_config_spec(spec)
        config = train.load_config_file(spec)
        config = train.apply_overrides(config, overrides)
        config = train.fill_defaults(config)
        train.validate_config(config)
        root = train.config.repo_root_of(path)
        task = train.load_task_module(root, config.experiment).build(config)
    except train.RunError:
        raise
    except ValueError as e:
        raise train.ConfigError(str(e)) from e
    return config, root, task


def cmd_run(spec: str, workdir: str, overrides: list[str], branch_from: str | None = None) -> int:
    from mechjax import train

    config, root, task = build_run(spec, overrides)
    if branch_from:
        source, _, step = branch_from.rpartition(":")
        if not (source and step.isdigit()):
            source, step = branch_from, None
        cfg = getattr(task.model, "cfg", None)
        model_config = json.loads(cfg.to_json()) if hasattr(cfg, "to_json") else None
        step = train.branch_run(source, workdir, None if step is None else int(step), model_config)
        print(f"branched {workdir} from {source} at step {step}", file=sys.stderr)
    summary = train.train_and_evaluate(config, workdir, task, root=root)
    print(f"done: {workdir}/report.md, summary.json (step {summary.get('step')})")
    return 0


def cmd_report(workdir: str) -> int:
    """Rebuilds report.md / summary.json from metrics.jsonl (with the task's report if importable)."""
    from mechjax import train

    if not os.path.exists(os.path.join(workdir, "metrics.jsonl")):
        raise train.RunError(f"{workdir} has no metrics.jsonl; is it the --workdir of a run?")
    task_report = None
    try:
        import ml_collections

        with open(os.path.join(workdir, "config.json")) as f:
            config = ml_collections.ConfigDict(json.load(f))
        with open(os.path.join(workdir, "run.json")) as f:
            root = json.load(f).get("root")
        if root:
            task_report = train.load_task_module(root, config.experiment).build(config).report
    except Exception as e:  # noqa: BLE001 - the generic report is still useful
        print(f"note: task report unavailable ({e}); writing the generic report", file=sys.stderr)
    train.write_report(workdir, task_report)
    print(f"wrote {os.path.join(workdir, 'report.md')} and summary.json")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mechjax", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train/evaluate a config (resumes if DIR has checkpoints)")
    r.add_argument("config", help="configs/<experiment>/<file>.py[:arg], e.g. ...py:runlocal")
    r.add_argument("--workdir", required=True, help="output directory")
    r.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() (auto-detected on TPU pods, SLURM, "
        "Open MPI; or give --coordinator/--num_processes/--process_id) before anything else",
    )
    r.add_argument(
        "--branch-from",
        metavar="RUN[:STEP]",
        help="start a new DIR from RUN's checkpoint STEP (default its latest) and train on "
        "with this config (e.g. another schedule or data after that step)",
    )
    r.add_argument("--coordinator", help="host:port of process 0 (with --distributed)")
    r.add_argument("--num_processes", type=int, help="total processes (with --distributed)")
    r.add_argument("--process_id", type=int, help="this process's index (with --distributed)")
    lst = sub.add_parser("list", help="list configs with one-line descriptions")
    lst.add_argument(
        "--root", help="repo root holding configs/ (default: . or the mechjax checkout)"
    )
    rep = sub.add_parser("report", help="rebuild DIR/report.md and summary.json from the logs")
    rep.add_argument("workdir")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # --config.key=value (or --config.key value) overrides are ours, not argparse's.
    rest, overrides, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--config."):
            body = a[len("--config.") :]
            if "=" not in body:
                if i + 1 >= len(argv):
                    print(f"error: {a} needs a value (--config.key=value)", file=sys.stderr)
                    return 2
                body, i = f"{body}={argv[i + 1]}", i + 1
            overrides.append(body)
        else:
            rest.append(a)
        i += 1
    args = _parser().parse_args(rest)
    from mechjax.train.errors import RunError

    try:
        if args.command == "list":
            return cmd_list(args.root)
        if args.command == "report":
            return cmd_report(args.workdir)
        if args.distributed:
            import jax

            jax.distributed.initialize(
                coordinator_address=args.coordinator,
                num_processes=args.num_processes,
                process_id=args.process_id,
            )
        return cmd_run(args.config, args.workdir, overrides, args.branch_from)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted: a checkpoint was saved; rerun the same command to resume.",
            file=sys.stderr,
        )
        return 130
    except OSError as e:
        if e.errno == errno.ENOSPC:
            print(
                f"error: disk full while writing {e.filename or ''}: free space and rerun "
                f"the same command to resume from the last checkpoint.",
                file=sys.stderr,
            )
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
