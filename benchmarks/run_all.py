"""Runs every benchmark, prints the tables and writes benchmarks/RESULTS.md.

    python benchmarks/run_all.py [--quick] [--dry-run] [--only train,patching]
                                 [--icl-dynamics PATH] [--no-install] [--out FILE]

Each benchmark runs as its own process (`python benchmarks/<script> [--quick] --json TMP`,
so no two share a JAX runtime), in this order: hooks_overhead, train, vmap_scaling,
induction, patching. Peers run in their own virtualenvs, created on first use
(`_util.peer_python`; `--no-install` reports them as unavailable instead). The official
induction-head code needs `--icl-dynamics PATH` (or `$ICL_DYNAMICS`): a checkout of
github.com/aadityasingh/icl-dynamics or its git directory.

RESULTS.md records the command, the date, the machine (CPU model, cores, memory, load average
before and after), the JAX / jaxlib (XLA) / torch versions and every peer's versions, then a
summary (every headline ratio and every target) and each benchmark's tables. It is meant to be
produced on a quiet machine: the load average is recorded so that a reader can check.

--quick: tiny shapes, one repeat: checks the plumbing; its numbers mean nothing, and the file
         goes to benchmarks/RESULTS.quick.md (git-ignored), marked as such, unless --out.
--dry-run: prints what would run and which peers are found; runs, installs and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _util  # noqa: E402

BENCHES = {
    "hooks_overhead": "bench_hooks_overhead.py",
    "train": "bench_train.py",
    "vmap_scaling": "bench_vmap_scaling.py",
    "induction": "bench_induction.py",
    "patching": "bench_patching_vs_tl.py",
    "generate": "bench_generate.py",
}


def commands(a) -> dict[str, list[str]]:
    out = {}
    for name, script in BENCHES.items():
        cmd = [sys.executable, os.path.join(HERE, script)]
        if a.quick:
            cmd.append("--quick")
        if name in ("induction", "patching") and a.no_install:
            cmd.append("--no-install")
        if name == "induction" and a.icl_dynamics:
            cmd += ["--icl-dynamics", a.icl_dynamics]
        out[name] = cmd
    return out


def peers_found(a) -> dict[str, str]:
    """Peer -> interpreter path, or why it is missing (no installs, nothing imported)."""
    import bench_induction

    found = {}
    for name in ("tl3", "tl4"):
        try:
            found[name] = _util.peer_python(name, install=False)
        except _util.PeerUnavailable as e:
            found[name] = f"missing ({e})"
    for version in ("same", "0.4.26"):  # bench_induction's default --icl-jax
        name, spec = bench_induction.icl_spec(None if version == "same" else version)
        try:
            found[name] = _util.peer_python(name, install=False, spec=spec)
        except _util.PeerUnavailable as e:
            found[name] = f"missing ({e})"

    try:
        src, commit = bench_induction.official_source(a.icl_dynamics, clone=False)
        found["icl-dynamics code"] = f"{src} @ {commit}"
    except _util.PeerUnavailable as e:
        found["icl-dynamics code"] = f"missing ({e})"
    return found


def run_one(name: str, cmd: list[str]) -> dict:
    print(f"\n##### {name}: {shlex.join(cmd)}", flush=True)
    load = [round(x, 2) for x in os.getloadavg()]
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="run_all") as d:
        path = os.path.join(d, f"{name}.json")
        r = subprocess.run([*cmd, "--json", path], check=False)
        wall = time.perf_counter() - t
        if r.returncode != 0 or not os.path.exists(path):
            return {"name": name, "error": f"exit {r.returncode}", "wall_s": wall, "load": load}
        with open(path) as f:
            report = json.load(f)
    return {"name": name, "report": report, "wall_s": wall, "load": load}


def _md_escape(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def results_markdown(a, runs: list[dict], machine: dict, machine_end: dict, argv) -> str:
    cmd = "python benchmarks/run_all.py" + "".join(f" {shlex.quote(x)}" for x in argv)
    lines = ["# Benchmark results", ""]
    if a.quick:
        lines += [
            "> **QUICK MODE** (`--quick`): tiny shapes and one repeat, to check that every "
            "benchmark and peer runs. The numbers below are not results.",
            "",
        ]
    lines += [
        f"Produced by `{cmd}` on {machine['date']}. Do not edit by hand: rerun the command.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {machine['cpu']} |",
        f"| cores | {machine['cores']} (usable: {machine['cores_usable']}) |",
        f"| memory | {machine['memory_gib']} GiB |",
        f"| load average (1/5/15 min) | start {machine['load_average_1_5_15']}, end "
        f"{machine_end['load_average_1_5_15']} |",
        f"| OS | {machine['os']} |",
        f"| Python | {machine['python']} |",
        f"| JAX / jaxlib (XLA) | {machine['jax']} / {machine['jaxlib']} ({machine.get('xla')}), "
        f"backend {machine.get('jax_backend')}, devices {machine.get('jax_devices')} |",
        f"| flax / optax / numpy | {machine['flax']} / {machine['optax']} / {machine['numpy']} |",
        f"| torch / transformers | {machine['torch']} / {machine['transformers']} |",
        f"| XLA_FLAGS | `{machine['XLA_FLAGS']}` |",
        "",
        "## Peers",
        "",
        "| benchmark | peer | versions |",
        "|---|---|---|",
    ]
    for r in runs:
        for peer, v in r.get("report", {}).get("peers", {}).items():
            vs = ", ".join(f"{k} {x}" for k, x in v.items() if k != "python")
            lines.append(f"| {r['name']} | {peer} | {_md_escape(vs)} |")
    lines += ["", "## Summary", "", "| benchmark | claim |", "|---|---|"]
    for r in runs:
        if "error" in r:
            lines.append(f"| {r['name']} | **failed** ({r['error']}) |")
            continue
        for h in r["report"]["headline"]:
            lines.append(f"| {r['name']} | {_md_escape(h)} |")
    lines += ["", "## Targets", "", "| benchmark | target | status | detail |", "|---|---|---|---|"]
    for r in runs:
        for t in r.get("report", {}).get("targets", []):
            lines.append(
                f"| {r['name']} | {_md_escape(t['target'])} | {_md_escape(t['status'])} | "
                f"{_md_escape(t['detail'])} |"
            )
    lines += ["", "## Details", ""]
    for r in runs:
        lines.append(
            f"<!-- {r['name']}: {r['wall_s']:.0f} s wall, load average before {r['load']} -->"
        )
        if "error" in r:
            lines += [f"### {r['name']}", "", f"failed: {r['error']} (see the console output)", ""]
            continue
        lines += [_util.render(r["report"], markdown=True), ""]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny shapes: plumbing, not results")
    ap.add_argument("--dry-run", action="store_true", help="show the plan; run nothing")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHES)}")
    ap.add_argument("--icl-dynamics", help="checkout or git dir of aadityasingh/icl-dynamics")
    ap.add_argument("--no-install", action="store_true", help="never create peer virtualenvs")
    ap.add_argument("--out", help="RESULTS file (default RESULTS.md, RESULTS.quick.md w/ --quick)")
    a = ap.parse_args(argv)
    cmds = commands(a)
    if a.only:
        names = [n.strip() for n in a.only.split(",")]
        unknown = [n for n in names if n not in cmds]
        if unknown:
            ap.error(f"unknown benchmark(s) {unknown}; known: {list(cmds)}")
        cmds = {n: cmds[n] for n in names}
    out = a.out or os.path.join(HERE, "RESULTS.quick.md" if a.quick else "RESULTS.md")
    if a.dry_run:
        for name, cmd in cmds.items():
            print(f"{name}: {shlex.join(cmd)} --json TMP")
        for peer, where in peers_found(a).items():
            print(f"peer {peer}: {where}")
        print(f"would write {out}")
        return 0
    machine = _util.machine_info()
    runs = [run_one(name, cmd) for name, cmd in cmds.items()]
    machine_end = _util.machine_info()
    text = results_markdown(a, runs, machine, machine_end, argv)
    with open(out, "w") as f:
        f.write(text)
    print("\n" + "=" * 100)
    for r in runs:
        if "error" in r:
            print(f"== {r['name']}: FAILED ({r['error']})")
        else:
            print(_util.render(r["report"]))
        print()
    print(f"wrote {out}")
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
