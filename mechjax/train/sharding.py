"""Device mesh and shardings for the runner (data-parallel; a "model" axis is reserved).

The mesh has axes ("data", "model"). Batches are split over "data" along their batch axis;
parameters and optimizer state are replicated. The "model" axis has size 1 today: tensor
parallel layouts would shard parameter axes over it without changing the loop.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mechjax.train.errors import ConfigError

DATA, MODEL = "data", "model"


def make_mesh(data_parallel: int = 0) -> Mesh:
    """A ("data", "model") mesh over `data_parallel` devices (0 = all devices, all processes)."""
    devices = jax.devices()
    n = len(devices) if data_parallel == 0 else data_parallel
    if not 1 <= n <= len(devices):
        raise ConfigError(
            f"config.data_parallel={data_parallel} but {len(devices)} device(s) are visible; "
            f"use 0 (all) or a number in 1..{len(devices)}."
        )
    if jax.process_count() > 1 and n != len(devices):
        raise ConfigError(
            f"config.data_parallel={data_parallel}: with {jax.process_count()} processes the mesh "
            f"must span all {len(devices)} devices; use data_parallel=0."
        )
    return Mesh(np.asarray(devices[:n]).reshape(n, 1), (DATA, MODEL))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def constrain_batch(batch, mesh: Mesh):
    """Inside jit: split each leaf's leading (batch) axis over "data" where it divides evenly.

    Called on one model's batch inside the vmap over models, so axis 0 is the batch axis.
    """
    n = mesh.shape[DATA]
    if n == 1:
        return batch

    def one(x):
        if getattr(x, "ndim", 0) >= 1 and x.shape[0] % n == 0:
            spec = P(DATA, *([None] * (x.ndim - 1)))
            return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
        return x

    return jax.tree.map(one, batch)


def to_global(x, sharding: NamedSharding):
    """A host value (identical on every process) -> a jax.Array with `sharding`.

    Works for multi-process meshes, where `jax.device_put` of a numpy array cannot address
    other processes' devices.
    """
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def fetch(tree):
    """Device -> host numpy for fully replicated (or addressable) outputs, on every process."""

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(x)

    return jax.tree.map(one, tree)
