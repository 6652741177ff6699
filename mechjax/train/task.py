"""`Task` and `ModelSpec`: what an experiment hands to the one training loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model of a run: its name (in metrics/checkpoints), seed, and condition pytree.

    All specs of a task share one `cond` pytree structure; the runner stacks the leaves on a
    leading `[n_models]` axis, so conditions (clamp values, window bounds, ...) are data.
    """

    name: str
    seed: int = 0
    cond: Any = None


def _no_interventions(cond, step):
    return ()


@dataclasses.dataclass(frozen=True)
class Task:
    """What an experiment hands to the one training loop. All functions pure and jittable.

    Fields:
      model: the flax module (e.g. `mj.Transformer(cfg)`); saved so `mj.load_run` can rebuild it.
      init: key -> flax variables `{"params": ...}`.
      batch: (data_key, step) -> batch pytree. `data_key` is already specific to this model's
        seed and this step; the batch must be a pure function of them (resume relies on it).
        Leaves with a leading batch axis of size `config.batch_size` are split over devices.
      loss: (params, batch, interventions) -> (scalar loss, dict of scalar train metrics).
        `params` are the flax variables; gradients flow through the intervened graph.
      interventions: (cond, step) -> tuple of mj interventions for this step. Express windows
        with `iv.when((step >= a) & (step < b))` so schedules live in leaves (no recompiles).
      evaluate: (params, cond, key, interventions) -> dict name -> scalar or small array; runs
        at step 0, every `config.eval_every` steps and at the end, vmapped over models.
      models: the models trained together as one vmapped program.
      report: (metric records, workdir) -> headline numbers for summary.json; may write PNGs
        into workdir and return markdown under "_markdown" to append to report.md.
      trainable: None (train every parameter, the default) or `path -> bool` choosing the
        parameters the optimizer updates; the others stay bit-identical (zero updates, no
        optimizer state, outside gradient clipping). `path` is the leaf's tuple of keys from
        the root of the variables, e.g. `("params", "base", "W_E")`; e.g. draft heads on a
        frozen base: `trainable=lambda path: path[1] != "base"`.
    """

    model: nn.Module
    init: Callable[[jax.Array], Any]
    batch: Callable[[jax.Array, jax.Array], Any]
    loss: Callable[[Any, Any, tuple], tuple[jax.Array, dict]]
    interventions: Callable[[Any, jax.Array], tuple] = _no_interventions
    evaluate: Callable[[Any, Any, jax.Array, tuple], dict] | None = None
    models: tuple[ModelSpec, ...] = (ModelSpec("model", seed=0, cond=None),)
    report: Callable[[list[dict], str], dict] | None = None
    trainable: Callable[[tuple], bool] | None = None

    def __post_init__(self):
        models = tuple(self.models)
        if not models:
            raise ValueError("Task.models is empty: give at least one ModelSpec.")
        for m in models:
            if not isinstance(m, ModelSpec):
                raise TypeError(f"Task.models must hold ModelSpec(name, seed, cond), got {m!r}")
        names = [m.name for m in models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"Task.models has duplicate names {dup}; names must be unique.")
        structs = {str(jax.tree.structure(m.cond)) for m in models}
        if len(structs) > 1:
            raise ValueError(
                "every ModelSpec.cond must have the same pytree structure (they are stacked on a "
                f"[n_models] axis); got {sorted(structs)}."
            )
        if self.trainable is not None and not callable(self.trainable):
            raise TypeError(
                f"Task.trainable must be None or a function path -> bool, got {self.trainable!r}"
            )
        object.__setattr__(self, "models", models)


def seed_models(n: int, cond: Any = None, prefix: str = "seed") -> tuple[ModelSpec, ...]:
    """`n` models differing only by seed: names `seed0`, `seed1`, ..."""
    return tuple(ModelSpec(f"{prefix}{i}", seed=i, cond=cond) for i in range(n))
