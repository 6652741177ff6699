"""Shared plumbing of the benchmarks: peers' virtualenvs, worker subprocesses, timing, the
machine's measured matmul throughput, machine facts, and the report every script returns.

A benchmark script's `main(argv)` returns a *report* (a JSON-able dict) and, with
`--json PATH`, writes it there; `run_all.py` runs every script as a subprocess and renders the
reports into benchmarks/RESULTS.md:

    {"title": str, "command": str, "settings": {...}, "peers": {name: {package: version}},
     "tables": [{"title": str, "columns": [...], "rows": [[...], ...]}],
     "headline": [str, ...],   # the claims, each naming both versions and warm/cold
     "targets": [{"target": str, "status": "met" | "not met" | "deferred", "detail": str}],
     "notes": [str, ...]}

Peers live in their own virtualenvs (TransformerLens 3 and 4 cannot share one; the official
induction-head code pins its own stack). `peer_python(name)` finds or creates them: the
environment variable `MECHJAX_BENCH_<NAME>_PYTHON` (an interpreter path) wins; then the
usual local folders; then `benchmarks/.cache/venvs/<name>` (or `$MECHJAX_BENCH_CACHE`), created
with `python -m venv` and `pip install` of the spec's requirements unless `install=False`.
"""

from __future__ import annotations

import datetime
import importlib.metadata as md
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.environ.get("MECHJAX_BENCH_CACHE", os.path.join(HERE, ".cache"))


class PeerUnavailable(RuntimeError):
    """A peer (its virtualenv or its code) cannot be had here; the message says what to do."""


def _torch_pin() -> str:
    try:
        return f"torch=={md.version('torch').split('+')[0]}"
    except md.PackageNotFoundError:
        return "torch"


def _jax_pin(pkg: str) -> str:
    try:
        return f"{pkg}=={md.version(pkg)}"
    except md.PackageNotFoundError:
        return pkg


# name -> how to find or build the peer's interpreter. `module`: what must import there;
# `packages`: versions recorded in the report; `install`: pip steps, run in order.
PEERS = {
    "tl3": dict(
        module="transformer_lens",
        packages=("transformer-lens", "torch", "transformers"),
        candidates=("/work/venv-tl3/bin/python",),
        install=(lambda: [_torch_pin()], lambda: ["transformer-lens<4", "safetensors"]),
    ),
    "tl4": dict(
        module="transformer_lens",
        packages=("transformer-lens", "torch", "transformers"),
        candidates=("/work/venv-tl4/bin/python",),
        install=(lambda: [_torch_pin()], lambda: ["transformer-lens>=4", "safetensors"]),
    ),
    # The official induction-head code (JAX + Equinox). Same JAX/jaxlib as mechjax by default,
    # so that both sides use the same XLA; the code's own tested version is `--icl-jax 0.4.26`.
    "icl": dict(
        module="equinox",
        packages=("jax", "jaxlib", "equinox", "optax", "numpy", "h5py"),
        candidates=(),
        install=(
            lambda: [
                _jax_pin("jax"),
                _jax_pin("jaxlib"),
                "equinox",
                "optax",
                "h5py",
                "nptyping",
                "numpy",
            ],
        ),
    ),
}


def env_var(name: str) -> str:
    return f"MECHJAX_BENCH_{name.upper()}_PYTHON"


def _imports(python: str, module: str) -> bool:
    """Whether `python` can find `module` (located, not imported: a quick check)."""
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    try:
        r = subprocess.run([python, "-c", code], capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def _base_python() -> str:
    """A python of the same version that is not inside a virtualenv (for `-m venv`)."""
    exe = getattr(sys, "_base_executable", None) or sys.executable
    return exe if os.path.exists(exe) else sys.executable


def peer_python(name: str, *, install: bool = True, spec: dict | None = None, log=print) -> str:
    """Interpreter path of peer `name` (a key of PEERS, or `spec` for a custom one).

    Raises PeerUnavailable (with what to do) when none is found and `install` is False or the
    installation fails.
    """
    spec = spec or PEERS[name]
    var = env_var(name)
    if os.environ.get(var):
        py = os.environ[var]
        if not _imports(py, spec["module"]):
            raise PeerUnavailable(f"{var}={py} cannot import {spec['module']}")
        return py
    for py in spec.get("candidates", ()):
        if os.path.exists(py) and _imports(py, spec["module"]):
            return py
    venv = os.path.join(CACHE, "venvs", name)
    py = os.path.join(venv, "bin", "python")
    if os.path.exists(py) and _imports(py, spec["module"]):
        return py
    if not install:
        raise PeerUnavailable(
            f"no virtualenv for peer {name!r}: set {var}=/path/to/python, or rerun without "
            f"--no-install to create {venv}"
        )
    log(f"[setup] creating {venv} for peer {name!r} (pip; a few minutes)")
    try:
        subprocess.run([_base_python(), "-m", "venv", venv], check=True)
        for step in spec["install"]:
            reqs = step()
            log(f"[setup] {venv}: pip install {' '.join(shlex.quote(r) for r in reqs)}")
            subprocess.run([py, "-m", "pip", "install", "-q", *reqs], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise PeerUnavailable(f"could not set up the virtualenv of peer {name!r}: {e}") from e
    if not _imports(py, spec["module"]):
        raise PeerUnavailable(f"{py} was installed but cannot import {spec['module']}")
    return py


def package_versions(python: str, packages) -> dict:
    """{package: version} as installed for interpreter `python` (None if absent)."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = None\n"
        "out['python'] = sys.version.split()[0]\n"
        "print(json.dumps(out))\n"
    )
    r = subprocess.run(
        [python, "-c", code, *packages], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(r.stdout)


def run_json(cmd: list[str], *, timeout: float | None = None, cwd=None, env=None) -> dict:
    """Runs `cmd + ["--json", tmp]` and returns the JSON it wrote; stderr is passed through.

    Raises RuntimeError with the tail of the output when the command fails.
    """
    with tempfile.TemporaryDirectory(prefix="mjbench") as d:
        path = os.path.join(d, "out.json")
        r = subprocess.run(
            [*cmd, "--json", path],
            cwd=cwd,
            env=env,
            timeout=timeout,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if r.returncode != 0 or not os.path.exists(path):
            tail = "\n".join(r.stdout.splitlines()[-30:])
            raise RuntimeError(f"{shlex.join(cmd)} failed (exit {r.returncode}):\n{tail}")
        with open(path) as f:
            return json.load(f)


def timed(fn, *args):
    """(fn(*args), seconds). `fn` must block until its result is ready."""
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


# -- the machine ---------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict:
    """CPU model, cores, memory, load average, Python / JAX / XLA / torch versions, date."""
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _mem_gib(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
    }
    for p in ("jax", "jaxlib", "flax", "optax", "numpy", "torch", "transformers"):
        try:
            info[p] = md.version(p)
        except md.PackageNotFoundError:
            info[p] = None
    try:
        import jax

        info["jax_backend"] = jax.default_backend()
        info["jax_devices"] = [str(d) for d in jax.devices()]
        info["xla"] = f"bundled with jaxlib {info['jaxlib']}"
    except Exception as e:  # noqa: BLE001 - machine info must not fail the run
        info["jax_backend"] = f"unavailable: {e}"
    return info


def matmul_throughput(quick: bool = False, reps: int = 5) -> dict:
    """Best measured f32 GEMM throughput (GFLOP/s) of this machine, by JAX/XLA and by torch.

    Two shapes: the GPT-2-small MLP input projection of the batched patching sweep
    (`[12 heads x 8 x 64, 768] @ [768, 3072]`) and a square 2048 GEMM (512 / 256 with
    `quick`). The floor of a benchmark uses `peak_gflops`, the best over both libraries and
    shapes: the fastest this machine did this kind of arithmetic in this run.
    """
    import numpy as np

    shapes = [(768, 768, 768), (256, 256, 256)] if quick else [(6144, 768, 3072), (2048,) * 3]
    out = {"shapes": [list(s) for s in shapes], "reps": reps}
    rng = np.random.default_rng(0)
    arrays = [
        (rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32))
        for m, k, n in shapes
    ]
    best = {}
    try:
        import jax
        import jax.numpy as jnp

        mm = jax.jit(jnp.matmul)
        for (m, k, n), (a, b) in zip(shapes, arrays):
            ja, jb = jnp.asarray(a), jnp.asarray(b)
            mm(ja, jb).block_until_ready()
            t = min(timed(lambda a=ja, b=jb: mm(a, b).block_until_ready())[1] for _ in range(reps))
            best[f"jax {m}x{k}x{n}"] = 2 * m * k * n / t / 1e9
    except ImportError:
        pass
    try:
        import torch

        with torch.no_grad():
            for (m, k, n), (a, b) in zip(shapes, arrays):
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                ta @ tb
                t = min(timed(lambda a=ta, b=tb: a @ b)[1] for _ in range(reps))
                best[f"torch {m}x{k}x{n}"] = 2 * m * k * n / t / 1e9
        out["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    out["gflops"] = {k: round(v, 1) for k, v in best.items()}
    out["peak_gflops"] = round(max(best.values()), 1) if best else None
    return out


# -- reports -------------------------------------------------------------------------------------


def command_line(argv=None) -> str:
    """`python <script> <args>` as the user would type it (`--json PATH` left out)."""
    argv = list(sys.argv if argv is None else argv)
    script = os.path.relpath(os.path.abspath(argv[0]), ROOT) if argv else "?"
    args, i = [], 1
    while i < len(argv):
        if argv[i] == "--json":
            i += 2
            continue
        if not argv[i].startswith("--json="):
            args.append(argv[i])
        i += 1
    return " ".join(["python", shlex.quote(script), *(shlex.quote(a) for a in args)])


def new_report(title: str, argv=None, **settings) -> dict:
    return {
        "title": title,
        "command": command_line(argv),
        "settings": settings,
        "peers": {},
        "tables": [],
        "headline": [],
        "targets": [],
        "notes": [],
    }


def fmt(x, digits: int = 2) -> str:
    """Numbers for tables: None -> '-', floats with `digits` significant decimals."""
    if x is None:
        return "-"
    if isinstance(x, float):
        if x != 0 and abs(x) < 10 ** (-digits):
            return f"{x:.1e}"
        return f"{x:,.{digits}f}"
    return str(x)


def render_table(table: dict, markdown: bool) -> str:
    cols, rows = table["columns"], [[fmt(c) for c in r] for r in table["rows"]]
    if markdown:
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(str(c)), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    title = table.get("title")
    return (
        f"**{title}**\n\n" if markdown and title else f"{title}\n" if title else ""
    ) + "\n".join(lines)


def render(report: dict, markdown: bool = False) -> str:
    """The report as text (terminal) or markdown (RESULTS.md)."""
    parts = []
    if markdown:
        parts.append(f"### {report['title']}\n\n`{report['command']}`")
    else:
        parts.append(f"== {report['title']}\n   {report['command']}")
    for t in report["tables"]:
        parts.append(render_table(t, markdown))
    if report["headline"]:
        bullet = "- " if markdown else "  * "
        parts.append("\n".join(bullet + h for h in report["headline"]))
    if report["targets"]:
        parts.append(
            render_table(
                {
                    "title": "targets",
                    "columns": ["target", "status", "detail"],
                    "rows": [[t["target"], t["status"], t["detail"]] for t in report["targets"]],
                },
                markdown,
            )
        )
    if report["notes"]:
        bullet = "- " if markdown else "  note: "
        parts.append("\n".join(bullet + n for n in report["notes"]))
    return "\n\n".join(parts)


def emit(report: dict, json_path: str | None) -> dict:
    """Prints the report and writes it to `json_path` (if given); returns it."""
    print(render(report), flush=True)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=1, default=_jsonable)
    return report


def _jsonable(x):
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:
        pass
    return str(x)
