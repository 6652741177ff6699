"""Runner tests that need real processes: SIGKILL/Ctrl-C + resume, 8 forced devices, 2 processes.

Each case runs the demo config in a fresh Python process (device flags must be set before jax
is imported; kills must hit a real process). The processes share a persistent compilation
cache so that repeated runs of the same program skip XLA compilation.
"""

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small enough to compile quickly; 2 models so the vmapped path is what gets resumed/sharded.
OVERRIDES = {
    "total_steps": 40,
    "steps_per_call": 5,
    "eval_every": 20,
    "checkpoint_every": 10,
    "keep_checkpoints": 2,
    "task.d_model": 16,
    "task.n_heads": 2,
    "task.d_vocab": 11,
    "task.seq_half": 4,
    "task.eval_batch": 16,
}
ARG = "runlocal,seeds=2"

WORKER = r"""
import json, os, signal, sys
args = json.loads(sys.argv[1])
if args.get("devices"):
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args['devices']}"
import jax
if args.get("nproc"):
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{args['port']}",
                               num_processes=args["nproc"], process_id=args["proc"])
import numpy as np
from mechjax import train
from mechjax.train import loop

# Self-inflicted signals at a fixed step make the kill point deterministic (still a real
# SIGKILL/SIGINT of this process, delivered by the kernel).
sig_at = args.get("signal_at_chunk")
if sig_at is not None:
    orig_chunk = loop.Trainer.train_chunk
    def train_chunk(self, params, opt_state, start, n, conds=None):
        if start == sig_at:
            os.kill(os.getpid(), getattr(signal, args["signal"]))
        return orig_chunk(self, params, opt_state, start, n, conds)
    loop.Trainer.train_chunk = train_chunk
kill_in_save = args.get("kill_in_save")
if kill_in_save is not None:
    from orbax.checkpoint._src.path import atomicity
    from mechjax.train import checkpoint
    state = {"armed": False}
    orig_save, orig_fin = checkpoint.Checkpointer.save, atomicity.AtomicRenameTemporaryPath.finalize
    def save(self, step, *a, **k):
        state["armed"] = step == kill_in_save
        return orig_save(self, step, *a, **k)
    async def finalize(self, *a, **k):
        if state["armed"]:  # everything is written, nothing renamed: the worst moment
            os.kill(os.getpid(), signal.SIGKILL)
        return await orig_fin(self, *a, **k)
    checkpoint.Checkpointer.save = save
    atomicity.AtomicRenameTemporaryPath.finalize = finalize

if args.get("cli"):
    from mechjax.cli import main
    sys.exit(main(args["cli"]))
root = args["root"]
config = train.load_config_file(os.path.join(root, "configs/demo/repeat.py:" + args["arg"]))
config = train.apply_overrides(config, args["overrides"])
task = train.load_task_module(root, config.experiment).build(config)
_, params = train.train_and_evaluate(config, args["workdir"], task, root=root, return_params=True)
flat = {jax.tree_util.keystr(k): np.asarray(v)
        for k, v in jax.tree_util.tree_leaves_with_path(params)}
np.savez(args["out"], **flat)
print("devices", jax.device_count(), "processes", jax.process_count(), flush=True)
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax_cache")
    e = dict(os.environ)
    e.update(
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        PYTHONPATH=ROOT + os.pathsep + e.get("PYTHONPATH", ""),
    )
    e.pop("XLA_FLAGS", None)
    worker = tmp_path_factory.mktemp("worker") / "worker.py"
    worker.write_text(WORKER)
    return e, str(worker)


def _start(env, workdir, out, **kw):
    e, worker = env
    args = dict(root=ROOT, arg=ARG, overrides=OVERRIDES, workdir=str(workdir), out=str(out), **kw)
    return subprocess.Popen(
        [sys.executable, worker, json.dumps(args)],
        env=e,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(env, workdir, out, **kw):
    p = _start(env, workdir, out, **kw)
    stdout, stderr = p.communicate(timeout=600)
    return p.returncode, stdout, stderr


def _load(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _steps(workdir):
    d = os.path.join(workdir, "checkpoints")
    return sorted(int(s) for s in os.listdir(d) if s.isdigit())


@pytest.fixture(scope="module")
def reference(env, tmp_path_factory):
    """Final params of an uninterrupted run."""
    d = tmp_path_factory.mktemp("reference")
    rc, out, err = _run(env, d / "run", d / "params.npz")
    assert rc == 0, err[-3000:]
    return _load(d / "params.npz")


def test_sigkill_mid_training_then_resume_is_bit_identical(env, reference, tmp_path):
    rc, _, err = _run(
        env, tmp_path / "run", tmp_path / "p.npz", signal_at_chunk=25, signal="SIGKILL"
    )
    assert rc == -signal.SIGKILL, err[-3000:]
    assert not (tmp_path / "p.npz").exists()
    assert _steps(tmp_path / "run")[-1] == 20  # steps 20..24 were lost with the process
    rc, _, err = _run(env, tmp_path / "run", tmp_path / "p.npz")
    assert rc == 0, err[-3000:]
    _assert_identical(_load(tmp_path / "p.npz"), reference)
    records = [json.loads(x) for x in open(tmp_path / "run" / "metrics.jsonl")]
    evals = [(r["step"], r["model"]) for r in records if r["split"] == "eval"]
    assert evals == sorted(set(evals)), "resume must not duplicate metric records"


def test_sigkill_during_save_keeps_last_good_checkpoint(env, reference, tmp_path):
    rc, _, err = _run(env, tmp_path / "run", tmp_path / "p.npz", kill_in_save=30)
    assert rc == -signal.SIGKILL, err[-3000:]
    names = os.listdir(tmp_path / "run" / "checkpoints")
    assert any("tmp" in n for n in names), names  # the unfinished save is there...
    assert _steps(tmp_path / "run")[-1] == 20  # ...but not listed as a step
    rc, _, err = _run(env, tmp_path / "run", tmp_path / "p.npz")
    assert rc == 0, err[-3000:]
    _assert_identical(_load(tmp_path / "p.npz"), reference)
    assert not any("tmp" in n for n in os.listdir(tmp_path / "run" / "checkpoints"))


def test_ctrl_c_saves_checkpoint_then_resume(env, reference, tmp_path):
    work = tmp_path / "run"
    cli = ["run", f"{ROOT}/configs/demo/repeat.py:{ARG}", "--workdir", str(work)]
    cli += [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
    rc, _, err = _run(env, work, tmp_path / "p.npz", cli=cli, signal_at_chunk=25, signal="SIGINT")
    assert rc == 130, err[-3000:]
    assert "rerun the same command to resume" in err
    assert "Traceback" not in err
    # Step 30 is not a periodic checkpoint step of this run's boundaries-before-kill; the Ctrl-C
    # handler saved the state reached when the interrupted chunk finished.
    assert _steps(work)[-1] == 30
    with open(work / "run.json") as f:
        assert "interrupted at step 30" in json.load(f)["status"]
    rc, _, err = _run(env, work, tmp_path / "p.npz")
    assert rc == 0, err[-3000:]
    _assert_identical(_load(tmp_path / "p.npz"), reference)


def _metric(workdir, split, key):
    records = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    return np.array([[r[key]] for r in records if r["split"] == split])


def test_eight_cpu_devices_match_one_device(env, reference, tmp_path):
    rc, out, err = _run(env, tmp_path / "run8", tmp_path / "p8.npz", devices=8)
    assert rc == 0, err[-3000:]
    assert "devices 8" in out
    p8 = _load(tmp_path / "p8.npz")
    for k in reference:
        np.testing.assert_allclose(p8[k], reference[k], rtol=1e-4, atol=1e-5, err_msg=k)
    with open(tmp_path / "run8" / "run.json") as f:
        assert json.load(f)["devices"] == 8


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process(env, reference, tmp_path):
    port = _free_port()
    procs = [
        _start(env, tmp_path / "run", tmp_path / f"p{i}.npz", nproc=2, proc=i, port=port)
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
    p0, p1 = _load(tmp_path / "p0.npz"), _load(tmp_path / "p1.npz")
    _assert_identical(p0, p1)  # every process holds the same replicated params
    for k in reference:
        np.testing.assert_allclose(p0[k], reference[k], rtol=1e-4, atol=1e-5, err_msg=k)
    with open(tmp_path / "run" / "run.json") as f:
        info = json.load(f)
    assert info["processes"] == 2 and info["devices"] == 2
