"""The one training loop: `train_and_evaluate(config, workdir, task)`.

Every model of `task.models` is trained by ONE jitted, vmapped program: parameters, optimizer
state and data keys carry a leading `[n_models]` axis. Each host call runs `steps_per_call`
steps with `lax.scan`; the scan length is fixed and steps past the next eval/checkpoint
boundary are skipped with `lax.cond`, so a run compiles its train step exactly once and a
resumed run executes the very same program (bit-identical parameters).

Keys: model m gets `fold_in(key(config.seed), models[m].seed)`, split by `fold_in` into init
(0), data (1) and eval (2) keys; step s of model m uses `fold_in(data_key, s)`. Data is
therefore a pure function of (seed, step).

Reading order: `train_and_evaluate` runs these steps, each a function or class below:
`_check_inputs` and `_check_workdir`; `Trainer` (mesh and shardings, optimizer and
schedule, the jitted init/train/eval functions); `_save_run_files`; `_init_or_restore`;
`_HostLoop.run` (train in chunks up to each boundary, then log / eval / checkpoint; Ctrl-C
and divergence); `_finish_run_info` (run.json, partial report); `write_report`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from mechjax.train import sharding as shd
from mechjax.train.checkpoint import CHECKPOINT_DIR, Checkpointer
from mechjax.train.config import fill_defaults, validate_config
from mechjax.train.errors import ConfigError, TrainingDiverged, WorkdirError
from mechjax.train.metrics import METRICS_FILE, MetricWriter, read_records
from mechjax.train.report import RUN_FILE, write_report
from mechjax.train.task import Task

CONFIG_FILE = "config.json"
MODEL_CONFIG_FILE = "model_config.json"


def make_schedule(config) -> optax.Schedule:
    """Learning-rate schedule from config.schedule / lr / warmup_steps / total_steps."""
    lr, total, warm = config.lr, config.total_steps, config.warmup_steps
    if config.schedule == "constant":
        if warm:
            return optax.join_schedules(
                [optax.linear_schedule(0.0, lr, warm), optax.constant_schedule(lr)], [warm]
            )
        return optax.constant_schedule(lr)
    if config.schedule == "cosine":
        return optax.cosine_decay_schedule(lr, total)
    return optax.warmup_cosine_decay_schedule(0.0, lr, warm, total)


def make_optimizer(config) -> optax.GradientTransformation:
    """optax optimizer (with optional global-norm clipping) from the config."""
    sched = make_schedule(config)
    if config.optimizer == "adam":
        opt = optax.adam(sched)
    elif config.optimizer == "adamw":
        opt = optax.adamw(sched, weight_decay=config.weight_decay)
    else:
        opt = optax.sgd(sched)
    if config.grad_clip > 0:
        opt = optax.chain(optax.clip_by_global_norm(config.grad_clip), opt)
    return opt


def _key_name(k) -> str | int:
    for attr in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey
        if hasattr(k, attr):
            return getattr(k, attr)
    return str(k)


def _zero_updates() -> optax.GradientTransformation:
    """Updates of -0.0: `p + (-0.0)` is `p` bit for bit (`p + 0.0` turns -0.0 into +0.0)."""
    return optax.stateless(
        lambda updates, params=None: jax.tree.map(lambda u: jnp.full_like(u, -0.0), updates)
    )


def freeze(tx: optax.GradientTransformation, trainable, params) -> optax.GradientTransformation:
    """`tx` on the leaves of `params` where `trainable(path)` is True; the others get zero
    updates and no optimizer state, and stay out of `tx`'s gradient clipping (`Task.trainable`).

    `params` (arrays or shape structs) fixes the labels on the host, so `trainable` sees plain
    key tuples such as `("params", "base", "W_E")` and runs once per leaf.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [tuple(_key_name(k) for k in path) for path, _ in flat]
    labels = ["train" if trainable(p) else "frozen" for p in paths]
    if "train" not in labels:
        raise ConfigError(
            f"Task.trainable selects no parameter: every one of the {len(paths)} leaves would "
            f"stay frozen. Paths look like {paths[0] if paths else ()}."
        )
    label_tree = jax.tree_util.tree_unflatten(treedef, labels)
    return optax.multi_transform({"train": tx, "frozen": _zero_updates()}, label_tree)


def _stack_conds(task: Task):
    conds = [m.cond for m in task.models]
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *conds)


class Trainer:
    """The jitted pieces of the loop for one (config, task, mesh).

    `traces` counts how often each jitted function was traced: the train step must be traced
    once per Trainer whatever the condition values or intervention windows (tests assert it).
    """

    def __init__(self, config, task: Task, mesh=None):
        validate_config(config)
        self.config, self.task = config, task
        # mesh and sharding: every array is replicated; batches are split on the data axis
        self.mesh = shd.make_mesh(config.data_parallel) if mesh is None else mesh
        self.rep = shd.replicated(self.mesh)
        # optimizer and learning-rate schedule
        self.tx = make_optimizer(config)
        if task.trainable is not None:  # a frozen subset (None: the plain optimizer)
            self.tx = freeze(self.tx, task.trainable, jax.eval_shape(task.init, jax.random.key(0)))
        self.schedule = make_schedule(config)
        self.names = [m.name for m in task.models]
        self.n_models = len(self.names)
        self.length = min(config.steps_per_call, config.total_steps)
        self.traces = {"init": 0, "train": 0, "eval": 0}
        self.conds = jax.tree.map(lambda x: shd.to_global(x, self.rep), _stack_conds(task))
        seeds = np.asarray([m.seed for m in task.models], np.int32)
        self.seeds = shd.to_global(seeds, self.rep)
        n_data = self.mesh.shape[shd.DATA]
        if config.batch_size % n_data:
            raise ConfigError(
                f"config.batch_size={config.batch_size} is not divisible by the {n_data} devices "
                f"on the data axis; use a multiple of {n_data} or set config.data_parallel."
            )
        # the jitted functions (traced on first call; the train step exactly once)
        rep = self.rep
        self._init = jax.jit(self._init_impl, out_shardings=rep)
        self._train = jax.jit(self._train_impl, out_shardings=rep, donate_argnums=(0, 1))
        self._eval = jax.jit(self._eval_impl, out_shardings=rep)

    # -- keys -------------------------------------------------------------------------------------
    def _keys(self, seeds, which: int):
        base = jax.random.key(self.config.seed)
        return jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(base, s), which))(seeds)

    # -- traced functions -------------------------------------------------------------------------
    def _init_impl(self, seeds):
        self.traces["init"] += 1
        params = jax.vmap(self.task.init)(self._keys(seeds, 0))
        return params, jax.vmap(self.tx.init)(params)

    def _one_step(self, params, opt_state, cond, data_key, step):
        """One update of one model (vmapped over models by the caller)."""
        batch = self.task.batch(jax.random.fold_in(data_key, step), step)
        batch = shd.constrain_batch(batch, self.mesh)
        ivs = tuple(self.task.interventions(cond, step))
        (loss, metrics), grads = jax.value_and_grad(self.task.loss, has_aux=True)(
            params, batch, ivs
        )
        updates, opt_state = self.tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, dict(metrics)

    def _train_impl(self, params, opt_state, conds, seeds, start, n):
        self.traces["train"] += 1
        data_keys = self._keys(seeds, 1)
        step_all = jax.vmap(self._one_step, in_axes=(0, 0, 0, 0, None))

        def run(carry, step):
            p, o, loss, metrics = step_all(*carry, conds, data_keys, step)
            return (p, o), (loss, metrics)

        out_shape = jax.eval_shape(run, (params, opt_state), start)[1]

        def body(carry, i):
            # Steps past `n` are skipped so one compiled scan length serves every chunk.
            return jax.lax.cond(
                i < n,
                lambda c: run(c, start + i),
                lambda c: (c, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out_shape)),
                carry,
            )

        (params, opt_state), (losses, metrics) = jax.lax.scan(
            body, (params, opt_state), jnp.arange(self.length)
        )
        return params, opt_state, losses, metrics  # losses: [length, n_models]

    def _eval_impl(self, params, conds, seeds, step):
        self.traces["eval"] += 1
        keys = self._keys(seeds, 2)

        def one(p, c, k):
            ivs = tuple(self.task.interventions(c, step))
            return dict(self.task.evaluate(p, c, jax.random.fold_in(k, step), ivs))

        return jax.vmap(one)(params, conds, keys)

    # -- host API ---------------------------------------------------------------------------------
    def init(self):
        return self._init(self.seeds)

    def train_chunk(self, params, opt_state, start: int, n: int, conds=None):
        """Runs steps start..start+n-1 (n <= steps_per_call) for every model.

        Returns (params, opt_state, losses [n, n_models], metrics {name: [n, n_models]}) with
        losses/metrics on the host.
        """
        conds = self.conds if conds is None else conds
        start_arr = shd.to_global(np.int32(start), self.rep)
        n_arr = shd.to_global(np.int32(n), self.rep)
        params, opt_state, losses, metrics = self._train(
            params, opt_state, conds, self.seeds, start_arr, n_arr
        )
        losses, metrics = shd.fetch((losses, metrics))
        return params, opt_state, losses[:n], {k: v[:n] for k, v in metrics.items()}

    def evaluate(self, params, step: int) -> dict:
        if self.task.evaluate is None:
            return {}
        out = self._eval(params, self.conds, self.seeds, shd.to_global(np.int32(step), self.rep))
        return shd.fetch(out)


# ------------------------------------------------------------------------------------------------


def _boundaries(config, start: int) -> list[int]:
    """Steps after which the host must act (log/eval/checkpoint/end), sorted, > start."""
    total = config.total_steps
    every = [config.eval_every, config.log_every or config.eval_every, config.checkpoint_every]
    extra = tuple(config.checkpoint_steps) + tuple(config.get("eval_steps", ()))
    stops = {total} | {s for s in extra if start < s < total}
    for e in every:
        if e:
            stops |= set(range((start // e + 1) * e, total, e))
    return sorted(s for s in stops if s > start)


def _check_workdir(workdir: str) -> None:
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test_{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise WorkdirError(
            f"cannot write to workdir {workdir!r} ({e.strerror or e}). Choose a directory you can "
            f"write to (--workdir DIR), fix its permissions, or free disk space; nothing was run."
        ) from None


def _write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=str)
    os.replace(tmp, path)  # atomic: a kill never leaves half a file


def _save_run_files(config, workdir: str, task: Task, run_info: dict) -> None:
    from mechjax.models import Transformer

    path = os.path.join(workdir, CONFIG_FILE)
    new = json.loads(config.to_json_best_effort())
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            print(
                f"note: resuming {workdir} with changed config keys {changed}",
                file=sys.stderr,
            )
    _write_json(path, new)
    cfg = getattr(task.model, "cfg", None)
    if cfg is not None and hasattr(cfg, "to_json"):
        with open(os.path.join(workdir, MODEL_CONFIG_FILE), "w") as f:
            f.write(cfg.to_json())
    kind = (
        "Transformer" if isinstance(task.model, Transformer) and task.model.head is None else "task"
    )
    _write_json(os.path.join(workdir, RUN_FILE), dict(run_info, model_kind=kind))


def branch_run(source: str, workdir: str, step: int | None = None, model_config=None) -> int:
    """Start `workdir` from `source`'s checkpoint `step` (default its latest): copies that
    checkpoint and `source`'s metrics records up to it, and writes branch.json. The next
    `mechjax run` (or `train_and_evaluate`) in `workdir` then resumes from there with its own
    config: another schedule, data or interventions after that step, while steps up to it
    stay `source`'s. `model_config`: the new run's model config (a dict), checked against
    `source`'s model_config.json. Returns the step. Raises WorkdirError (workdir already has
    checkpoints, source has none or not that step) or ConfigError (models differ)."""
    import shutil

    steps = []
    if os.path.isdir(os.path.join(source, CHECKPOINT_DIR)):
        src = Checkpointer(source, read_only=True)
        steps = src.all_steps()
        src.close()
    if not steps:
        raise WorkdirError(f"--branch-from {source}: no checkpoints there to branch from.")
    step = steps[-1] if step is None else int(step)
    if step not in steps:
        raise WorkdirError(f"--branch-from {source}:{step}: no such checkpoint; it has {steps}.")
    dst_ckpt = os.path.join(workdir, CHECKPOINT_DIR)
    if os.path.isdir(dst_ckpt) and os.listdir(dst_ckpt):
        raise WorkdirError(
            f"--branch-from: {workdir} already has checkpoints (rerun without --branch-from to "
            "resume it, or give a new --workdir)."
        )
    src_model = os.path.join(source, MODEL_CONFIG_FILE)
    if model_config is not None and os.path.exists(src_model):
        with open(src_model) as f:
            old = json.load(f)
        diff = sorted(k for k in set(old) | set(model_config) if old.get(k) != model_config.get(k))
        if diff:
            raise ConfigError(
                f"--branch-from {source}: its model differs from this config's in {diff} "
                f"({', '.join(f'{k}: {old.get(k)!r} -> {model_config.get(k)!r}' for k in diff)})."
            )
    os.makedirs(dst_ckpt, exist_ok=True)
    shutil.copytree(
        os.path.join(source, CHECKPOINT_DIR, str(step)), os.path.join(dst_ckpt, str(step))
    )
    with open(os.path.join(workdir, METRICS_FILE), "w") as out:
        out.writelines(json.dumps(r) + "\n" for r in read_records(source) if r["step"] <= step)
    _write_json(
        os.path.join(workdir, "branch.json"), {"source": os.path.abspath(source), "step": step}
    )
    return step


class _SigintFlag:
    """First Ctrl-C sets a flag (checked between host calls); a second one interrupts at once."""

    def __init__(self):
        self.hit = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _check_inputs(config, task: Task):
    """The filled-in, validated config (raises TypeError / ConfigError before anything runs)."""
    if not isinstance(task, Task):
        raise TypeError(f"task must be a mechjax.train.Task, got {type(task).__name__}")
    config = fill_defaults(config) if isinstance(config, ml_collections.ConfigDict) else config
    validate_config(config)
    return config


def _run_info(config, trainer: Trainer, root: str | None) -> dict:
    """The first run.json record (status "running"; `_finish_run_info` completes it)."""
    return {
        "experiment": config.experiment,
        "models": trainer.names,
        "root": root,
        "status": "running",
        "processes": jax.process_count(),
        "devices": len(trainer.mesh.devices.flat),
        "jax": jax.__version__,
    }


def _init_or_restore(trainer: Trainer, ckpt: Checkpointer, writer: MetricWriter, workdir: str):
    """`(params, opt_state, step)`: fresh at step 0, or the latest checkpoint of `workdir`.

    On resume, metrics.jsonl records after the checkpoint's step are dropped (the resumed run
    writes them again, bit-identically).
    """
    params, opt_state = trainer.init()
    latest = ckpt.latest_step()
    if latest is None:
        return params, opt_state, 0
    meta = ckpt.restore_meta(latest)
    if meta.get("models") != trainer.names:
        raise ConfigError(
            f"{workdir} holds a checkpoint of models {meta.get('models')} but this task trains "
            f"{trainer.names}; use a new --workdir or the original config."
        )
    params, opt_state, _ = ckpt.restore(latest, params, opt_state)
    writer.truncate_after(latest)
    return params, opt_state, latest


def _diverged(config, trainer: Trainer, ckpt: Checkpointer, losses, step: int):
    """The `TrainingDiverged` for the first non-finite entry of `losses` ([n, n_models])."""
    i, m = np.argwhere(~np.isfinite(losses))[0]
    last = ckpt.latest_step()
    kept = (
        f"the last good checkpoint (step {last}) is kept in {ckpt.directory}"
        if last is not None
        else "no checkpoint had been saved yet"
    )
    return TrainingDiverged(
        f"training diverged: the loss of model {trainer.names[m]!r} became "
        f"{losses[i, m]} at step {step + i}; {kept}. Lower config.lr "
        f"(now {config.lr}), set config.grad_clip (e.g. 1.0), or check the loss "
        f"for log(0) / division by zero.",
        step=int(step + i),
        model=trainer.names[m],
    )


class _HostLoop:
    """The host side of a run: trains in chunks up to each boundary, then logs, evaluates and
    checkpoints there.

    `params, opt_state, step` always hold a complete, consistent step (a chunk's result is
    adopted only once its losses are finite), so Ctrl-C can checkpoint them as they are.
    `status` ends as "finished", "diverged at step S", "interrupted at step S (checkpoint
    saved)" or, after any other error, "failed at step S[ (checkpoint saved)]: Error: message". `train_time, timed_steps` count training only (no eval/checkpoint), after the
    first chunk (which includes compilation).
    """

    def __init__(self, config, trainer: Trainer, ckpt, writer, bar, params, opt_state, step: int):
        self.config, self.trainer = config, trainer
        self.ckpt, self.writer, self.bar = ckpt, writer, bar  # Checkpointer, MetricWriter, tqdm
        self.params, self.opt_state, self.step = params, opt_state, step
        self.status = "finished"
        self.log_every = config.log_every or config.eval_every
        self.eval_steps = {int(s) for s in config.get("eval_steps", ())}
        self.train_time, self.timed_steps = 0.0, 0
        self._sums, self._count = None, 0  # per-metric sums over steps since the last train log
        self._first_chunk = True

    def run(self) -> None:
        """Trains to `config.total_steps` (evaluating step 0 first on a fresh run)."""
        try:
            with _SigintFlag() as sigint:
                if self.step == 0:
                    self.log_eval(0)
                for stop in _boundaries(self.config, self.step):
                    while self.step < stop:
                        self.train_chunk(min(self.trainer.length, stop - self.step))
                        if sigint.hit:
                            raise KeyboardInterrupt
                    self.at_boundary()
        except KeyboardInterrupt:
            self.save()  # params/opt_state always hold a complete, consistent step
            self.status = f"interrupted at step {self.step} (checkpoint saved)"
            raise
        except TrainingDiverged:
            raise  # train_chunk set the status
        except Exception as e:
            # any other error (in an eval, a metric, a checkpoint write): run.json must not
            # say "finished"; the last complete step is saved when that still works
            saved = ""
            try:
                self.save()
                saved = " (checkpoint saved)"
            except Exception:  # noqa: BLE001 - keep the original error
                pass
            self.status = f"failed at step {self.step}{saved}: {type(e).__name__}: {e}"
            raise

    def train_chunk(self, n: int) -> None:
        """Runs `n` steps from `self.step`; raises TrainingDiverged on a non-finite loss."""
        t_chunk = time.perf_counter()
        params, opt_state, losses, metrics = self.trainer.train_chunk(
            self.params, self.opt_state, self.step, n
        )
        if not np.isfinite(losses).all():
            err = _diverged(self.config, self.trainer, self.ckpt, losses, self.step)
            self.status = f"diverged at step {err.step}"
            raise err
        self.params, self.opt_state = params, opt_state
        chunk = {"loss": losses, **metrics}
        part = {k: np.asarray(v, np.float64).sum(0) for k, v in chunk.items()}
        self._sums = part if self._sums is None else {k: self._sums[k] + part[k] for k in part}
        self._count += n
        self.step += n
        self.bar.update(n)
        self.bar.set_postfix(loss=f"{float(losses[-1].mean()):.4g}")
        if not self._first_chunk:  # the first call includes compilation
            self.train_time += time.perf_counter() - t_chunk
            self.timed_steps += n
        self._first_chunk = False

    def at_boundary(self) -> None:
        """At a boundary step: the train log, the eval and the checkpoint that are due."""
        step, config = self.step, self.config
        if step % self.log_every == 0 or step == config.total_steps:
            self.log_train()
        if step % config.eval_every == 0 or step == config.total_steps or step in self.eval_steps:
            self.log_eval(step)
        periodic = config.checkpoint_every and step % config.checkpoint_every == 0
        if periodic or step in self.ckpt.explicit or step == config.total_steps:
            self.save()

    def log_train(self) -> None:
        """One "train" record per model: metric means since the last one, and the lr."""
        lr = float(self.trainer.schedule(self.step - 1))
        for m, name in enumerate(self.trainer.names):
            rec = {k: v[m] / self._count for k, v in self._sums.items()}
            self.writer.write(self.step, name, "train", dict(rec, lr=lr))
        self._sums, self._count = None, 0

    def log_eval(self, step: int) -> None:
        """One "eval" record per model (none when the task has no `evaluate`)."""
        ev = self.trainer.evaluate(self.params, step)
        for m, name in enumerate(self.trainer.names):
            if ev:
                self.writer.write(step, name, "eval", {k: v[m] for k, v in ev.items()})
        self.writer.flush()

    def save(self) -> None:
        self.ckpt.save(self.step, self.params, self.opt_state, {"models": self.trainer.names})


def _finish_run_info(workdir: str, run_info: dict, loop: _HostLoop, wall_time_s: float) -> None:
    """Completes run.json (status, timing, compile counts); after a stop, a partial report."""
    trainer = loop.trainer
    sps = loop.timed_steps / loop.train_time if loop.train_time > 0 else None
    run_info.update(
        status=loop.status,
        wall_time_s=wall_time_s,
        steps_per_sec=sps,
        model_steps_per_sec=None if sps is None else sps * trainer.n_models,
        traces=dict(trainer.traces),  # compile count per jitted fn (1 each when healthy)
    )
    with open(os.path.join(workdir, RUN_FILE)) as f:
        run_info["model_kind"] = json.load(f).get("model_kind")
    _write_json(os.path.join(workdir, RUN_FILE), run_info)
    if loop.status != "finished":
        try:  # a partial report still helps to see what happened before the stop
            write_report(workdir, None)
        except Exception as e:  # noqa: BLE001 - never mask the real error
            print(f"note: could not write the partial report: {e}", file=sys.stderr)


def train_and_evaluate(
    config, workdir: str, task: Task, *, root: str | None = None, return_params: bool = False
):
    """Trains every model of `task`, evaluating, logging and checkpointing; returns the summary.

    Rerunning with the same workdir resumes from the latest checkpoint.

    Args:
      config: ConfigDict with the runner keys (missing ones default from `base_config()`).
      workdir: output directory (created); gets metrics.jsonl, checkpoints/, tensorboard/,
        report.md, plot_*.png, summary.json, config.json, model_config.json, run.json.
      task: the experiment's `Task`.
      root: repo root holding experiments/ (recorded so `mj.load_run` can rebuild the task).
      return_params: also return this process's final params (host numpy, [n_models, ...]).

    Returns:
      the summary dict (also in DIR/summary.json); `(summary, params)` with `return_params`.

    Raises:
      ConfigError / WorkdirError before anything runs; TrainingDiverged on a NaN/inf loss
      (last good checkpoint kept); KeyboardInterrupt after saving a checkpoint on Ctrl-C.
    """
    # 1. check the inputs and the workdir; build the mesh, optimizer and jitted step functions
    config = _check_inputs(config, task)
    workdir = os.path.abspath(workdir)
    lead = jax.process_index() == 0  # only process 0 writes files
    if lead:
        _check_workdir(workdir)
    trainer = Trainer(config, task, None)
    run_info = _run_info(config, trainer, root)
    if lead:
        _save_run_files(config, workdir, task, run_info)

    # 2. initialise, or restore the latest checkpoint
    ckpt = Checkpointer(workdir, config.keep_checkpoints, config.checkpoint_steps)
    writer = MetricWriter(workdir, enabled=lead)
    params, opt_state, step = _init_or_restore(trainer, ckpt, writer, workdir)

    # 3. the host loop: train / log / eval / checkpoint up to total_steps
    from tqdm.auto import tqdm

    show = bool(config.progress) and lead and sys.stderr.isatty()
    bar = tqdm(total=config.total_steps, initial=step, disable=not show, unit="step")
    loop = _HostLoop(config, trainer, ckpt, writer, bar, params, opt_state, step)
    t0 = time.time()
    try:
        loop.run()
    finally:
        # 4. close the outputs and record how the run ended (also after an error)
        bar.close()
        writer.close()
        ckpt.close()
        if lead:
            _finish_run_info(workdir, run_info, loop, time.time() - t0)

    # 5. the report and summary
    summary = write_report(workdir, task.report) if lead else {}
    return (summary, shd.fetch(loop.params)) if return_params else summary
