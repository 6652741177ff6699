"""The experiment runner: one training loop, configs, checkpoints, sharding, metrics, reports.

    from mechjax.train import Task, ModelSpec, train_and_evaluate, base_config
    summary = train_and_evaluate(config, workdir, task)

See `Task` for what an experiment provides and `base_config()` for the config keys.
Names are imported lazily so `import mechjax` does not pay for orbax/optax/tensorboard.
"""

import importlib

_EXPORTS = {
    "Checkpointer": "checkpoint",
    "ConfigError": "errors",
    "RunError": "errors",
    "TrainingDiverged": "errors",
    "WorkdirError": "errors",
    "apply_overrides": "config",
    "base_config": "config",
    "fill_defaults": "config",
    "load_config_file": "config",
    "load_task_module": "config",
    "parse_arg": "config",
    "validate_config": "config",
    "load_model": "load",
    "load_run": "load",
    "Trainer": "loop",
    "branch_run": "loop",
    "make_optimizer": "loop",
    "make_schedule": "loop",
    "train_and_evaluate": "loop",
    "read_records": "metrics",
    "write_report": "report",
    "make_mesh": "sharding",
    "ModelSpec": "task",
    "Task": "task",
    "seed_models": "task",
}

_SUBMODULES = (
    "checkpoint",
    "config",
    "errors",
    "load",
    "loop",
    "metrics",
    "report",
    "sharding",
    "task",
)

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mechjax.train.{_EXPORTS[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"mechjax.train.{name}")
    raise AttributeError(f"module 'mechjax.train' has no attribute {name!r}")


def __dir__():
    return __all__
