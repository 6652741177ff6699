"""Induction-head training throughput: the flagship (`fewshot.py:paper`) vs the official code.

    python benchmarks/bench_induction.py --icl-dynamics PATH [--sequences 300000 | --steps N]
                                         [--quick] [--seeds 1] [--icl-jax VERSION] [--json OUT]

PATH (or `$ICL_DYNAMICS`): a checkout of the official code of Singh et al. 2024,
github.com/aadityasingh/icl-dynamics (a folder holding main.py), or its git directory (the
five .py files are then extracted at HEAD into benchmarks/.cache). The script does not
download it unless asked (`--clone`: `git clone` into the cache; needs access to GitHub, which
many machines, this repo's among them, do not have). Without it, the official side is
reported as unavailable and only mechjax's side runs.

Both train the paper's main configuration (2-layer attention-only transformer, d_model 64,
8 heads, Adam lr 1e-5, batch 32) for the same number of sequences, with the same evaluations:
4 evaluators x 1,000 sequences at step 0, every 156 steps (4,992 sequences) and at the end.

  mechjax   `mechjax run configs/induction_heads/fewshot.py:paper,steps=N/32` (no intermediate
            checkpoints: `--config.checkpoint_steps=()`; the final checkpoint and the report
            are written, as every run does)
  official  `main.py` with the arguments of the paper's Figure 3a run (ih_paper_runs.sh), but
            `--train_iters N --eval_every 4992`, no checkpoints (the script's `--ckpt_every
            1000` left out) and `--suppress_output`; on the Gaussian stand-in for the Omniglot
            ResNet-18 features (peers/icl_dynamics_launch.py make-data: the features cannot be
            downloaded here); run unmodified through peers/icl_dynamics_launch.py (aliases for
            APIs that newer JAX / numpy removed), in its own virtualenvs: one with mechjax's JAX
            and jaxlib (`_util.PEERS["icl"]`: same XLA on both sides) and one with JAX 0.4.26,
            the version the code was tested with (`--icl-jax same,0.4.26`, the default); the
            faster of the two is the official code at its best, the denominator of the ratios.

Measured, each as a whole process (spawn to exit: imports, data, compilation, training,
evaluations, writing results): the time and sequences/s for N sequences; and the steady
state, (N - N_short) / (T(N) - T(N_short)) with N_short about N/3 (a multiple of the eval
period): the cost per sequence once running, evaluations included, start-up and compilation
excluded. With `--seeds S`, mechjax trains S models as one vmapped program and the official
code is charged S sequential runs (S x its measured time).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import _util  # noqa: E402

LAUNCH = os.path.join(HERE, "peers", "icl_dynamics_launch.py")
REPO = "https://github.com/aadityasingh/icl-dynamics"
SOURCES = ("main.py", "main_utils.py", "models.py", "opto.py", "samplers.py")
BATCH = 32
EVAL_STEPS = 156  # fewshot.py:paper's eval_every: 156 x 32 = 4,992 sequences
FULL = dict(steps=9375, short=3120, eval_steps=EVAL_STEPS, eval_size=1000)  # 3e5 sequences
QUICK = dict(steps=40, short=20, eval_steps=10, eval_size=100)


def official_source(path: str | None, clone: bool, log=print) -> tuple[str, str]:
    """(folder holding main.py, commit or '?') of the official code; PeerUnavailable if none."""
    path = path or os.environ.get("ICL_DYNAMICS")
    if not path and clone:
        path = os.path.join(_util.CACHE, "icl-dynamics")
        if not os.path.exists(path):
            log(f"[induction] git clone {REPO} {path}")
            r = subprocess.run(["git", "clone", "--depth", "1", REPO, path], check=False)
            if r.returncode != 0:
                raise _util.PeerUnavailable(f"git clone {REPO} failed (no access to GitHub?)")
    if not path:
        raise _util.PeerUnavailable(
            "the official code (aadityasingh/icl-dynamics) is not on this machine: pass "
            "--icl-dynamics PATH (a checkout, or its git directory) or set ICL_DYNAMICS, or "
            "use --clone where GitHub is reachable"
        )
    path = os.path.abspath(path)
    if os.path.isfile(os.path.join(path, "main.py")):
        commit = _git(["-C", path, "rev-parse", "HEAD"]) or "?"
        return path, commit
    git_dir = path if os.path.exists(os.path.join(path, "HEAD")) else os.path.join(path, ".git")
    commit = _git(["--git-dir", git_dir, "rev-parse", "HEAD"])
    if not commit:
        raise _util.PeerUnavailable(f"{path} holds neither main.py nor a git repository")
    out = os.path.join(_util.CACHE, "icl-dynamics-src", commit)
    if not os.path.isfile(os.path.join(out, "main.py")):
        os.makedirs(out, exist_ok=True)
        archive = subprocess.run(
            ["git", "--git-dir", git_dir, "archive", "HEAD", *SOURCES],
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            raise _util.PeerUnavailable(f"git archive of {SOURCES} failed in {git_dir}")
        subprocess.run(["tar", "-x", "-C", out], input=archive.stdout, check=True)
    return out, commit


def _git(args) -> str | None:
    r = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def icl_spec(jax_version: str | None) -> tuple[str, dict]:
    """(venv name, PEERS-style spec) of the official code's virtualenv."""
    if not jax_version:
        return "icl", _util.PEERS["icl"]
    spec = dict(_util.PEERS["icl"])
    reqs = [f"jax=={jax_version}", f"jaxlib=={jax_version}", "equinox", "optax", "h5py"]
    old = tuple(int(x) for x in jax_version.split(".")[:3]) < (0, 4, 30)
    reqs += ["nptyping", "numpy<2" if old else "numpy"]  # jaxlib < 0.4.30: built for numpy 1
    spec["install"] = (lambda: reqs,)
    return f"icl-jax{jax_version}", spec


def official_args(data: str, folder: str, sequences: int, p: dict) -> list[str]:
    """main.py arguments: the paper's Figure 3a run (ih_paper_runs.sh) at this budget."""
    return [
        "--data_file", data,
        "--mixing_coeffs", "1.0",
        "--pt_burstiness", "1",
        "--train_context_len", "2",
        "--fs_relabel", "5",
        "--fs_relabel_split", "8", "2", "0",
        "--exemplar_split", "1", "4", "0",
        "--pe_names", "fsl_train", "fsl_val_rl", "fsl_train_valex", "fsl_test_class",
        "--pe_classes", "train", "train", "train", "test",
        "--pe_exemplars", "train", "train", "val", "train",
        "--pe_fs_relabel_scheme", "train", "val", "train", "train",
        "--pe_burstiness", "1", "1", "1", "1",
        "--train_iters", str(sequences),
        "--train_bs", str(BATCH),
        "--eval_every", str(p["eval_steps"] * BATCH),
        "--eval_iters", str(p["eval_size"]),
        "--lr", "0.00001",
        "--d_model", "64",
        "--class_split", "50", "1473", "100",
        "--run", "omniglot50_rl5",
        "--init_seed", "5",
        "--base_folder", folder,
        "--raw_name",
        "--suppress_output",
    ]  # fmt: skip


def mechjax_cmd(workdir: str, steps: int, p: dict, seeds: int) -> list[str]:
    spec = f"configs/induction_heads/fewshot.py:paper,steps={steps},seeds={seeds}"
    return [
        sys.executable, "-m", "mechjax.cli", "run", spec, "--workdir", workdir,
        f"--config.eval_every={p['eval_steps']}",
        f"--config.steps_per_call={p['eval_steps']}",
        f"--config.task.eval_size={p['eval_size']}",
        "--config.checkpoint_steps=()",
        "--config.progress=False",
    ]  # fmt: skip


def whole_process(cmd, cwd, timeout=None) -> tuple[float, str]:
    """(wall seconds from spawn to exit, output); RuntimeError with the tail on failure."""
    t = time.perf_counter()
    r = subprocess.run(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    dt = time.perf_counter() - t
    if r.returncode != 0:
        tail = "\n".join(r.stdout.splitlines()[-20:])
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed (exit {r.returncode}):\n{tail}")
    return dt, r.stdout


def run_mechjax(steps, p, seeds) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_ih") as d:
        wd = os.path.join(d, "run")
        wall, _ = whole_process(mechjax_cmd(wd, steps, p, seeds), ROOT)
        with open(os.path.join(wd, "run.json")) as f:
            run = json.load(f)
    return {"wall_s": wall, "train_steps_per_s": run.get("steps_per_sec")}


def run_official(py, src, data, steps, p) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_icl") as d:
        cmd = [py, LAUNCH, "run", src, *official_args(data, d, steps * BATCH, p)]
        wall, out = whole_process(cmd, d)
    m = re.search(r"total training time \(min\):\s*([0-9.eE+-]+)", out)
    return {"wall_s": wall, "in_process_s": float(m.group(1)) * 60 if m else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--icl-dynamics", help="checkout or git dir of aadityasingh/icl-dynamics")
    ap.add_argument("--clone", action="store_true", help="git clone it if no path is given")
    ap.add_argument(
        "--icl-jax",
        default="same,0.4.26",
        help="JAX versions to run the official code with, comma-separated: 'same' (mechjax's) "
        "and/or a version (0.4.26: the code's tested one); the faster is its best",
    )
    ap.add_argument("--sequences", type=int, help="sequences per model (default 300,000)")
    ap.add_argument("--steps", type=int, help="or: train steps per model (32 sequences each)")
    ap.add_argument("--seeds", type=int, default=1, help="mechjax models as one vmapped program")
    ap.add_argument("--repeats", type=int, default=1, help="best of N of every process")
    ap.add_argument("--quick", action="store_true", help="40 steps, small evals (plumbing)")
    ap.add_argument("--no-install", action="store_true", help="never create the peer venv")
    ap.add_argument("--json", help="write the report here")
    a = ap.parse_args(argv)
    p = dict(QUICK if a.quick else FULL)
    if a.steps:
        a.sequences = a.steps * BATCH
    if a.sequences:
        period = p["eval_steps"]
        p["steps"] = max(2 * period, a.sequences // BATCH)
        p["short"] = max(period, round(p["steps"] / 3 / period) * period)
    seqs, short_seqs = p["steps"] * BATCH, p["short"] * BATCH
    period = p["eval_steps"]
    n_evals = 1 + p["steps"] // period + (1 if p["steps"] % period else 0)
    report = _util.new_report(
        "Induction-head training (Singh et al. 2024 main run): mechjax flagship vs the official "
        "code" + (" [QUICK]" if a.quick else ""),
        sys.argv if argv is None else ["benchmarks/bench_induction.py", *argv],
        sequences=seqs,
        short_sequences=short_seqs,
        eval_every_sequences=p["eval_steps"] * BATCH,
        eval_sequences=p["eval_size"],
        seeds=a.seeds,
        repeats=a.repeats,
    )
    report["peers"]["mechjax"] = _util.package_versions(sys.executable, ("jax", "jaxlib", "flax"))
    mv = report["peers"]["mechjax"].get("jax")

    officials = {}  # label -> (python, src, data)
    try:
        src, commit = official_source(a.icl_dynamics, a.clone)
    except _util.PeerUnavailable as e:
        src = None
        report["notes"].append(f"official code unavailable: {e}")
        print(f"[induction] official code unavailable: {e}", file=sys.stderr)
    for version in [v.strip() for v in a.icl_jax.split(",") if v.strip()] if src else []:
        name, spec = icl_spec(None if version == "same" else version)
        label = f"official (JAX {mv if version == 'same' else version})"
        try:
            py = _util.peer_python(name, install=not a.no_install, spec=spec)
            data = os.path.join(_util.CACHE, "icl_gaussian_features.h5")
            if not os.path.exists(data):
                os.makedirs(_util.CACHE, exist_ok=True)
                subprocess.run([py, LAUNCH, "make-data", data], check=True)
        except (_util.PeerUnavailable, subprocess.CalledProcessError) as e:
            report["notes"].append(f"{label} unavailable: {e}")
            print(f"[induction] {label} unavailable: {e}", file=sys.stderr)
            continue
        report["peers"][label] = {
            "code": f"aadityasingh/icl-dynamics @ {commit}",
            "python": py,
            **_util.package_versions(py, spec["packages"]),
        }
        officials[label] = (py, src, data)

    best = {}

    def keep(key, r):
        if key not in best or r["wall_s"] < best[key]["wall_s"]:
            best[key] = r

    for _ in range(a.repeats):  # interleaved: load drifts hit every side alike
        for steps, tag in ((p["steps"], "long"), (p["short"], "short")):
            for label, args in officials.items():
                print(f"[induction] {label}, {steps * BATCH} sequences", flush=True)
                keep((label, tag), run_official(*args, steps, p))
            print(f"[induction] mechjax, {steps * BATCH} sequences", flush=True)
            keep(("mechjax", tag), run_mechjax(steps, p, a.seeds))

    def side(who):
        """(whole-process s, sequences/s whole, sequences/s steady or None, long-run record)."""
        lo, sh = best[(who, "long")], best[(who, "short")]
        runs = 1 if who == "mechjax" else a.seeds  # the official code: sequential runs
        wall = lo["wall_s"] * runs
        dt = (lo["wall_s"] - sh["wall_s"]) * runs
        steady = a.seeds * (seqs - short_seqs) / dt if dt > 0 else None  # None: noise > signal
        return wall, a.seeds * seqs / wall, steady, lo

    rows = []
    mj_wall, mj_whole, mj_steady, mj_lo = side("mechjax")
    tag = f"{a.seeds} models, one vmapped program" if a.seeds > 1 else "1 model"
    train_only = mj_lo["train_steps_per_s"]
    rows.append(
        [
            f"mechjax (JAX {mv}) fewshot.py:paper ({tag})",
            mj_wall,
            mj_whole,
            mj_steady,
            None if train_only is None else train_only * BATCH * a.seeds,
        ]
    )
    sides = {label: side(label) for label in officials}
    runs = f"{a.seeds} sequential runs" if a.seeds > 1 else "1 model"
    for label, (o_wall, o_whole, o_steady, o_lo) in sides.items():
        rows.append([f"{label} icl-dynamics main.py ({runs})", o_wall, o_whole, o_steady, None])
        if o_lo.get("in_process_s"):
            report["notes"].append(
                f"{label}: its own 'total training time' (inside main.py, imports excluded): "
                f"{o_lo['in_process_s']:.1f} s for {seqs:,} sequences"
            )
    if sides:  # against the official code at its best (the faster of its JAX versions)
        fast = min(sides, key=lambda k: sides[k][0])
        o_wall = sides[fast][0]
        report["headline"].append(
            f"whole process (cold: fresh processes, compilation included), {seqs:,} sequences "
            f"per model incl. {n_evals} evaluations: {fast} {o_wall:.1f} s / mechjax (JAX {mv}) "
            f"{mj_wall:.1f} s = {o_wall / mj_wall:.2f}x"
        )
        steady = {k: v[2] for k, v in sides.items() if v[2] is not None}
        if steady and mj_steady is not None:
            fast = max(steady, key=steady.get)
            report["headline"].append(
                f"steady state (warm: start-up and compilation excluded, evaluations included): "
                f"mechjax (JAX {mv}) {mj_steady:,.0f} / {fast} {steady[fast]:,.0f} sequences/s "
                f"= {mj_steady / steady[fast]:.2f}x"
            )
        else:
            report["notes"].append(
                "steady state not resolved: a long run took no longer than a short one (noise)"
            )
    report["tables"].append(
        {
            "title": f"{seqs:,} sequences per model (steady state from the {short_seqs:,}-sequence "
            f"runs); evaluations every {p['eval_steps'] * BATCH:,} sequences of 4 x "
            f"{p['eval_size']:,}",
            "columns": [
                "implementation",
                "whole process s",
                "sequences/s (whole)",
                "sequences/s (steady)",
                "train-only sequences/s (run.json)",
            ],
            "rows": rows,
        }
    )
    report["notes"].append(
        "data: mechjax draws its Gaussian features inside the program; the official code reads "
        "the same kind of stand-in from an h5 file written once (not timed)"
    )
    return _util.emit(report, a.json)


if __name__ == "__main__":
    main()
