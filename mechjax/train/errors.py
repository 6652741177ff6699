"""Errors the runner raises for problems a user can fix (the CLI prints them without a traceback)."""

from __future__ import annotations


class RunError(Exception):
    """Base class: a one-paragraph message saying what went wrong and what to do."""


class ConfigError(RunError, ValueError):
    """Unknown config key, wrong value type, a bad config file/arg, or a bad task option.

    Experiment code raises it from `build(config)` for bad user input (an unknown option
    value, options that do not fit together). `mechjax run` prints it as one `error:` line; it
    also prints any other ValueError raised while building the task that way.
    """


class WorkdirError(RunError, OSError):
    """The workdir cannot be created or written (permissions, full disk)."""


class TrainingDiverged(RunError, FloatingPointError):
    """A loss became NaN/inf; the run stopped and the last good checkpoint was kept."""

    def __init__(self, message: str, step: int, model: str | None = None):
        super().__init__(message)
        self.step = step
        self.model = model
