"""Metric records: DIR/metrics.jsonl (one record per eval/log per model) and TensorBoard events."""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

METRICS_FILE = "metrics.jsonl"
TB_DIR = "tensorboard"


def to_python(value):
    """numpy/jax scalars and arrays -> JSON-friendly floats/ints/lists (NaN/inf kept as floats)."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        v = arr.item()
        return float(v) if isinstance(v, float) else v
    return arr.tolist()


def read_records(workdir: str) -> list[dict]:
    """All records of DIR/metrics.jsonl (an unfinished last line from a kill is skipped)."""
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def _tensorboardx_writer():
    """tensorboardX.SummaryWriter, imported without pulling in torch (5 s) when it is not loaded.

    tensorboardX imports torch only to accept torch tensors; we log Python floats.
    """
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None  # makes `import torch` raise ImportError inside tensorboardX
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]  # a later `import torch` by the user works as usual
    return SummaryWriter


class MetricWriter:
    """Appends records to metrics.jsonl and scalars to TensorBoard (process 0 only)."""

    def __init__(self, workdir: str, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = os.path.join(workdir, METRICS_FILE)
        self._file = None
        self._tb = None
        if not enabled:
            return
        self._file = open(self.path, "a")
        if tensorboard:
            SummaryWriter = _tensorboardx_writer()
            self._tb = SummaryWriter(logdir=os.path.join(workdir, TB_DIR), flush_secs=30)

    def truncate_after(self, step: int) -> None:
        """Drops records newer than `step` (written after the checkpoint we resume from)."""
        if not self.enabled:
            return
        kept = [r for r in read_records(os.path.dirname(self.path)) if r.get("step", 0) <= step]
        self._file.close()
        with open(self.path, "w") as f:
            for r in kept:
                f.write(json.dumps(r) + "\n")
        self._file = open(self.path, "a")

    def write(self, step: int, model: str, split: str, metrics: dict) -> dict:
        record = {"step": int(step), "model": model, "split": split}
        record.update({k: to_python(v) for k, v in metrics.items()})
        if not self.enabled:
            return record
        self._file.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if k in ("step", "model", "split") or not isinstance(v, (int, float)):
                    continue
                if isinstance(v, bool) or not math.isfinite(v):
                    continue
                self._tb.add_scalar(f"{model}/{split}/{k}", v, global_step=int(step))
        return record

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
