"""`mj.load_run(DIR)`: the model and latest params of a run written by `train_and_evaluate`."""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np

from mechjax.train.report import RUN_FILE


def _read_json(workdir: str, name: str):
    path = os.path.join(workdir, name)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: {workdir!r} does not look like a mechjax run directory "
            f"(expected config.json, run.json and checkpoints/ written by `mechjax run`)."
        )
    with open(path) as f:
        return json.load(f)


def load_model(workdir: str):
    """The flax module of a run: rebuilt from model_config.json, else via the task's build()."""
    from mechjax.models import Transformer, TransformerConfig

    run = _read_json(workdir, RUN_FILE)
    if run.get("model_kind") == "Transformer":
        return Transformer(TransformerConfig.from_dict(_read_json(workdir, "model_config.json")))
    from mechjax.train.config import load_task_module

    config = ml_collections.ConfigDict(_read_json(workdir, "config.json"))
    if not run.get("root"):
        raise ValueError(
            f"{workdir}: the model is not a plain mj.Transformer and the run did not record the "
            f"repo root holding experiments/{config.experiment}/task.py; rebuild the model with "
            f"that task's build(config).model."
        )
    return load_task_module(run["root"], config.experiment).build(config).model


def load_run(workdir: str, which: str | int | None = None, step: int | None = None):
    """Model and params of a run directory (latest checkpoint by default).

    Args:
      workdir: the `--workdir` of `mechjax run` / `train_and_evaluate`.
      which: for runs that trained several models (seeds/conditions): the model's name
        (as in metrics.jsonl) or its index; default the first model.
      step: a specific checkpointed step instead of the latest.

    Returns:
      `(model, params)`: the flax module and its variables `{"params": ...}` (numpy arrays) for
      the chosen model, ready for `mj.run(model, params, tokens)`.
    """
    workdir = os.path.abspath(workdir)
    run = _read_json(workdir, RUN_FILE)
    names = run.get("models", [])
    if which is None:
        index = 0
    elif isinstance(which, int):
        if not 0 <= which < len(names):
            raise ValueError(f"which={which} is out of range: the run has models {names}")
        index = which
    elif which in names:
        index = names.index(which)
    else:
        raise ValueError(f"which={which!r} is not a model of this run; its models are {names}")
    from mechjax.train.checkpoint import Checkpointer

    ckpt = Checkpointer(workdir, read_only=True)
    try:
        steps = ckpt.all_steps()
        if not steps:
            raise FileNotFoundError(f"{workdir} has no finished checkpoint yet.")
        if step is not None and step not in steps:
            raise ValueError(f"step={step} has no checkpoint in {workdir}; saved steps: {steps}")
        params, _ = ckpt.restore_params(step)
    finally:
        ckpt.close()
    params = jax.tree.map(lambda x: np.asarray(x)[index], params)
    return load_model(workdir), params
