"""The model zoo: small LMs trained on this kind of machine by `configs/zoo/*.py`, shipped here.

    import mechjax as mj
    model, params, tokenizer = mj.zoo.load("attn2l_code")
    tokens = [[0] + tokenizer.encode("def add(a, b):\\n    return a").ids]
    logits, cache = mj.run(model, params, tokens, cache="blocks.*.attn.hook_pattern")

Each model lives in `mechjax/zoo/weights/<name>/`: `model.safetensors` (params, flattened
with "/"), `config.json` (the `TransformerConfig`), `tokenizer.json` and `card.json` (data,
training time, the final evals). `python -m mechjax.zoo export RUN_DIR NAME` writes one from a
finished `mechjax run configs/zoo/NAME.py --workdir RUN_DIR`; `python -m mechjax.zoo table`
prints the model-card tables from the shipped weights.
"""

from __future__ import annotations

import json
import os

import numpy as np

from mechjax.zoo.circuits import Circuit
from mechjax.zoo.circuits import load as _load_circuit

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
_FILES = ("model.safetensors", "config.json", "tokenizer.json", "card.json")


def names() -> list[str]:
    """Names of the shipped zoo models."""
    if not os.path.isdir(WEIGHTS_DIR):
        return []
    return sorted(
        d
        for d in os.listdir(WEIGHTS_DIR)
        if os.path.isfile(os.path.join(WEIGHTS_DIR, d, _FILES[0]))
    )


def path(name: str) -> str:
    """The folder of zoo model `name` (raises ValueError listing the valid names)."""
    folder = os.path.join(WEIGHTS_DIR, name)
    if not isinstance(name, str) or not os.path.isfile(os.path.join(folder, _FILES[0])):
        raise ValueError(
            f"no zoo model named {name!r}; shipped models: {', '.join(names()) or 'none'}."
        )
    return folder


def card(name: str) -> dict:
    """The model card (`card.json`) of `name`: data, training and evaluation facts."""
    with open(os.path.join(path(name), "card.json")) as f:
        return json.load(f)


def _unflatten(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        node = out
        parts = key.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def _flatten(tree, prefix="") -> dict:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        else:
            out[key] = np.asarray(v)
    return out


def load(name: str, dtype: str = "float32"):
    """`(model, params, tokenizer)` of zoo model `name`, offline, from the installed package.

    Args:
      name: one of :func:`names` (e.g. "attn2l_code", "attn4l_code", "gpt4l_mix").
      dtype: the params' dtype ("float32" or "bfloat16"); weights are stored in float16.

    Returns:
      `model` (`mj.Transformer`), `params` (`{"params": ...}` numpy arrays) and a
      `tokenizers.Tokenizer` whose id 0 is `<|endoftext|>` (prepend it as BOS).
    """
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from mechjax.models import Transformer, TransformerConfig

    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"zoo.load: dtype={dtype!r}; valid: float32, bfloat16.")
    folder = path(name)
    with open(os.path.join(folder, "config.json")) as f:
        cfg = TransformerConfig.from_dict(json.load(f))
    flat = load_file(os.path.join(folder, "model.safetensors"))
    if dtype == "bfloat16":
        import jax.numpy as jnp

        flat = {k: np.asarray(v.astype(np.float32)).astype(jnp.bfloat16) for k, v in flat.items()}
    else:
        flat = {k: v.astype(np.float32) for k, v in flat.items()}
    tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    return Transformer(cfg), {"params": _unflatten(flat)}, tokenizer


def load_checkpoint(run_dir: str, step: int | None = None):
    """`(model, params, tokenizer)` of a zoo training run's checkpoint, finished or not.

    Args:
      run_dir: the `--workdir` of `mechjax run configs/zoo/<name>.py`.
      step: a checkpointed step (default the latest).

    The tokenizer is the run's `tokenizer.json` once its report wrote it; before that, the
    run's data build is redone from its `config.json` (`zoo.data.run_data`, from the on-disk
    cache when it is there), which gives the same tokenizer.
    """
    from tokenizers import Tokenizer

    from mechjax.train.load import load_run

    model, params = load_run(run_dir, step=step)
    saved = os.path.join(run_dir, "tokenizer.json")
    if os.path.isfile(saved):
        return model, params, Tokenizer.from_file(saved)
    from mechjax.zoo import data as D

    return model, params, D.run_data(run_config(run_dir)).tokenizer


def run_config(run_dir: str) -> dict:
    """The `config.json` a zoo run wrote (raises FileNotFoundError naming the folder)."""
    f = os.path.join(run_dir, "config.json")
    if not os.path.isfile(f):
        raise FileNotFoundError(
            f"{run_dir} has no config.json; pass the --workdir of a `mechjax run "
            "configs/zoo/<name>.py`."
        )
    with open(f) as fh:
        return json.load(fh)


def export(run_dir: str, name: str, out_dir: str | None = None, dtype: str = "float16") -> str:
    """Writes the finished run `run_dir` as zoo model `name`; returns the folder.

    Args:
      run_dir: the `--workdir` of `mechjax run configs/zoo/<name>.py` (its report wrote
        tokenizer.json and data.json there).
      name: the zoo name (folder under `out_dir`).
      out_dir: defaults to the package's `weights/` folder.
      dtype: storage dtype of the params ("float16" keeps the zoo small; "float32").
    """
    import dataclasses

    from safetensors.numpy import save_file

    from mechjax.train.load import load_run

    for f in ("tokenizer.json", "data.json", "summary.json", "run.json"):
        if not os.path.isfile(os.path.join(run_dir, f)):
            raise FileNotFoundError(
                f"zoo.export: {run_dir}/{f} is missing; export a finished `mechjax run "
                f"configs/zoo/<name>.py` workdir."
            )
    model, params = load_run(run_dir)
    folder = os.path.join(out_dir or WEIGHTS_DIR, name)
    os.makedirs(folder, exist_ok=True)
    flat = {k: v.astype(dtype) for k, v in _flatten(params["params"]).items()}
    save_file(flat, os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(model.cfg), f, indent=1)
    with open(os.path.join(run_dir, "tokenizer.json")) as src:
        text = src.read()
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        f.write(text)
    info = {}
    for f in ("data.json", "summary.json", "run.json", "config.json"):
        with open(os.path.join(run_dir, f)) as src:
            info[f[:-5]] = json.load(src)
    summary = info["summary"]
    run = info["run"]
    card_ = {
        "name": name,
        "config": f"configs/zoo/{name}.py",
        "data": info["data"],
        "training": {
            "steps": summary.get("step"),
            "batch_size": info["config"].get("batch_size"),
            "tokens_per_step": info["config"].get("batch_size") * model.cfg.n_ctx,
            "wall_time_s": run.get("wall_time_s"),
            "steps_per_sec": run.get("steps_per_sec"),
            "lr": info["config"].get("lr"),
            "schedule": info["config"].get("schedule"),
            "jax": run.get("jax"),
            "devices": run.get("devices"),
        },
        "final_eval": {
            k: v
            for k, v in summary.items()
            if not k.startswith("_") and k not in ("final", "models", "experiment")
        },
        "n_params": int(sum(v.size for v in flat.values())),
        "dtype": dtype,
    }
    task = info["config"].get("task", {})
    if task.get("early_steps"):  # (runs made before config.task.phases)
        card_["training"]["curriculum_steps"] = [task.get("early_from", 0), task["early_steps"]]
    if task.get("phases"):  # the curriculum: each phase's steps and what it changes
        card_["training"]["phases"] = list(task["phases"])
    with open(os.path.join(folder, "card.json"), "w") as f:
        json.dump(card_, f, indent=1, default=str)
    return folder


def circuit(model_name: str, task: str) -> Circuit:
    """The shipped circuit of `task` in `model_name` (`mechjax.zoo.circuits.Circuit`).

    Nodes, edges and roles, with the faithfulness it was verified at; raises ValueError
    listing the available (model, task) pairs. `("constructed_induction", "induction")` is
    the hand-set model of `mechjax.zoo.constructed.induction_model()`.
    """
    return _load_circuit(model_name, task)


__all__ = ["WEIGHTS_DIR", "Circuit", "card", "circuit", "export", "load", "names", "path"]
