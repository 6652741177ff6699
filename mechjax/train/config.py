"""Config utilities: the base config, `get_config(arg)` arg strings, file loading, overrides.

A config file is `configs/<experiment>/<name>.py` with `get_config(arg: str | None)` returning an
`ml_collections.ConfigDict`. The arg string selects variants, e.g. `"runlocal"` or
`"runlocal,seeds=8"`; parse it with :func:`parse_arg`.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import os
import sys
from typing import Any

import ml_collections

from mechjax.train.errors import ConfigError

_OPTIMIZERS = ("adam", "adamw", "sgd")
_SCHEDULES = ("constant", "cosine", "warmup_cosine")


def base_config() -> ml_collections.ConfigDict:
    """The runner's keys with their defaults; experiment configs start from this."""
    c = ml_collections.ConfigDict()
    c.experiment = ""  # folder experiments/<experiment>/ whose task.py has build(config) -> Task
    c.seed = 0  # global seed; each model's keys also fold in its ModelSpec.seed
    c.total_steps = 1000
    c.batch_size = 32  # per model, global over all devices
    c.optimizer = "adam"  # adam | adamw | sgd
    c.lr = 1e-3
    c.schedule = "constant"  # constant | cosine | warmup_cosine
    c.warmup_steps = 0
    c.weight_decay = 0.0  # adamw only (sgd/adam: add it to the loss)
    c.grad_clip = 0.0  # global-norm clip per model; 0 = off
    c.eval_every = 100  # also evaluated at step 0 and at the end
    c.eval_steps = ()  # extra explicit eval steps, e.g. tuple(range(700, 1500, 16)) around a drop
    c.log_every = 0  # train-metric records; 0 = same as eval_every
    c.steps_per_call = 10  # lax.scan length: steps per host round trip
    c.checkpoint_every = 500  # 0 = only at the end (and on Ctrl-C / before a NaN stop)
    c.checkpoint_steps = ()  # extra explicit steps, e.g. dense around a phase change
    c.keep_checkpoints = 3  # keep the last N periodic ones; explicit steps are always kept
    c.data_parallel = 0  # devices on the mesh "data" axis; 0 = all devices
    c.progress = True  # tqdm bar (only when stderr is a terminal)
    c.task = ml_collections.ConfigDict()  # experiment-specific keys
    return c


def validate_config(config) -> None:
    """Checks the runner's keys on the host; raises ConfigError naming the key and valid values."""

    def bad(key, msg):
        raise ConfigError(f"config.{key}={config[key]!r}: {msg}")

    for key in ("total_steps", "batch_size", "steps_per_call", "eval_every"):
        if not isinstance(config[key], int) or config[key] <= 0:
            bad(key, "must be a positive int.")
    for key in ("log_every", "checkpoint_every", "keep_checkpoints", "warmup_steps"):
        if not isinstance(config[key], int) or config[key] < 0:
            bad(key, "must be an int >= 0.")
    if config.optimizer not in _OPTIMIZERS:
        bad("optimizer", f"valid optimizers are {', '.join(_OPTIMIZERS)}.")
    if config.schedule not in _SCHEDULES:
        bad("schedule", f"valid schedules are {', '.join(_SCHEDULES)}.")
    if not config.lr > 0:
        bad("lr", "must be > 0.")
    if config.grad_clip < 0:
        bad("grad_clip", "must be >= 0 (0 turns clipping off).")
    if any((not isinstance(s, int)) or s <= 0 for s in config.checkpoint_steps):
        bad("checkpoint_steps", "must be a tuple of positive ints.")
    if any((not isinstance(s, int)) or s <= 0 for s in config.get("eval_steps", ())):
        bad("eval_steps", "must be a tuple of positive ints (extra eval steps).")
    if config.schedule == "warmup_cosine" and config.warmup_steps >= config.total_steps:
        bad("warmup_steps", f"must be < total_steps={config.total_steps} for warmup_cosine.")


# ------------------------------------------------------------------------------------------------
# Arg strings: "runlocal,seeds=8"


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_arg(arg: str | None, **defaults) -> dict[str, Any]:
    """Parses a config arg string `"runlocal,seeds=8"` into a dict.

    A bare word is a flag (`runlocal` -> True). Values are Python literals where they parse
    (`8`, `0.5`, `(1, 2)`, `True`), else strings. With `defaults`, the result starts from them,
    unknown keys raise ConfigError listing the valid ones, and values are converted to the
    default's type (`seeds=8` with default `seeds=1` is an int).

    Args:
      arg: the part after `:` in `configs/x/y.py:arg`, or None/"".
      **defaults: the keys this config accepts and their default values.

    Returns:
      dict key -> value.
    """
    out = dict(defaults)
    if not arg:
        return out
    for part in _split_top_level(arg):
        part = part.strip()
        if not part:
            continue
        key, eq, text = part.partition("=")
        key = key.strip()
        value = _literal(text.strip()) if eq else True
        if defaults:
            if key not in defaults:
                raise ConfigError(
                    f"config arg {key!r} is not known{_did_you_mean(key, defaults)}. "
                    f"Valid args: {', '.join(sorted(defaults))}."
                )
            value = _coerce(value, defaults[key], f"config arg {key!r}")
        out[key] = value
    return out


def _split_top_level(arg: str) -> list[str]:
    """Splits on commas that are not inside brackets (so `steps=(1,2)` stays whole)."""
    parts, depth, cur = [], 0, []
    for ch in arg:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _did_you_mean(key: str, valid) -> str:
    near = difflib.get_close_matches(key, [str(v) for v in valid], n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(n) for n in near)}?)" if near else ""


def _coerce(value, default, what: str):
    """Converts `value` to the type of `default`, or raises ConfigError."""
    if default is None:
        return value
    want = type(default)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        return value if isinstance(value, str) else str(value)
    elif isinstance(default, (tuple, list)):
        if isinstance(value, (tuple, list)):
            return want(value)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return want((value,))
    elif isinstance(value, want):
        return value
    raise ConfigError(
        f"{what} expects {_article(want.__name__)} (default {default!r}), got {value!r} "
        f"({type(value).__name__})."
    )


# ------------------------------------------------------------------------------------------------
# Loading config files and applying --config.key=value overrides


def split_config_spec(spec: str) -> tuple[str, str | None]:
    """`"configs/x/y.py:runlocal"` -> (`"configs/x/y.py"`, `"runlocal"`)."""
    if ".py:" in spec:
        path, _, arg = spec.partition(".py:")
        return path + ".py", arg
    return spec, None


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """Imports a config file by path and returns `get_config(arg)` (`spec` = `path.py[:arg]`)."""
    path, arg = split_config_spec(spec)
    if not os.path.isfile(path):
        raise ConfigError(
            f"config file {path!r} does not exist. Configs live in configs/<experiment>/<name>.py; "
            f"list them with `mechjax list`."
        )
    module_name = "mechjax_config_" + os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path!r} has no get_config(arg) function.")
    config = module.get_config(arg)
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(
            f"{path}: get_config must return an ml_collections.ConfigDict, got {type(config).__name__}."
        )
    return config


def _flat_keys(config, prefix="") -> list[str]:
    keys = []
    for k, v in config.items():
        full = f"{prefix}{k}"
        if isinstance(v, ml_collections.ConfigDict):
            keys.extend(_flat_keys(v, full + "."))
        else:
            keys.append(full)
    return keys


def apply_overrides(config, overrides) -> ml_collections.ConfigDict:
    """Applies `key=value` overrides (dotted keys for nested dicts) with type checking.

    Args:
      config: the ConfigDict from `get_config` (modified in place and returned).
      overrides: iterable of `"key=value"` strings or a dict key -> value (values already
        parsed). Strings parse as Python literals where possible.

    Raises:
      ConfigError naming the key and listing valid keys, or the expected type, before anything runs.
    """
    items = overrides.items() if isinstance(overrides, dict) else []
    if not isinstance(overrides, dict):
        parsed = []
        for o in overrides:
            key, eq, text = o.partition("=")
            if not eq:
                raise ConfigError(f"override {o!r} must look like key=value (e.g. lr=0.01).")
            parsed.append((key.strip(), _literal(text.strip())))
        items = parsed
    valid = _flat_keys(config)
    for key, value in items:
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
                node = None
                break
            node = node[p]
        if node is None or leaf not in node or isinstance(node[leaf], ml_collections.ConfigDict):
            raise ConfigError(
                f"unknown config key {key!r}{_did_you_mean(key, valid)}. "
                f"Valid keys: {', '.join(valid)}."
            )
        new = _coerce(value, node[leaf], f"config.{key}")
        with node.unlocked() if hasattr(node, "unlocked") else _null():
            node[leaf] = new
    return config


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def fill_defaults(config) -> ml_collections.ConfigDict:
    """Returns a copy of `config` with every missing runner key taken from `base_config()`."""
    out = base_config()
    _merge(out, config)
    return out


def _merge(dst, src):
    for k, v in src.items():
        if isinstance(v, ml_collections.ConfigDict) and k in dst:
            _merge(dst[k], v)
        else:
            with dst.ignore_type():
                dst[k] = v


def repo_root_of(config_path: str) -> str:
    """`<root>/configs/<exp>/<file>.py` -> `<root>` (where `experiments/` lives)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(config_path))))


def load_task_module(root: str, experiment: str):
    """Imports `<root>/experiments/<experiment>/task.py` by file path."""
    if not experiment:
        raise ConfigError(
            "config.experiment is empty: set it to the folder name under experiments/ whose "
            "task.py has build(config) -> Task."
        )
    path = os.path.join(root, "experiments", experiment, "task.py")
    if not os.path.isfile(path):
        raise ConfigError(
            f"config.experiment={experiment!r} but {path} does not exist; it should define "
            f"build(config) -> mechjax.train.Task."
        )
    if root not in sys.path:  # lets task.py import its siblings as experiments.<exp>.<module>
        sys.path.insert(0, root)
    name = f"mechjax_experiment_{experiment}_task"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not hasattr(module, "build"):
        raise ConfigError(f"{path} has no build(config) -> Task function.")
    return module


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word
