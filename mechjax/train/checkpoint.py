"""Checkpoints with orbax: periodic + explicit steps, keep-last-N, atomic saves, resume.

Layout: `workdir/checkpoints/<step>/{params,opt_state,meta}`. Params are the stacked
`[n_models, ...]` flax variables; `meta` (JSON) holds the step and the model names.
orbax writes each step into a temporary directory and renames it when complete, so a kill
during a save leaves the previous steps intact; unfinished temporary directories are not
listed as steps and are removed when the manager next opens the directory.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"


class Checkpointer:
    """Saves/restores the runner state; decides which steps to keep."""

    def __init__(self, workdir: str, keep: int = 3, explicit_steps=(), read_only: bool = False):
        self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
        self.keep = keep
        self.explicit = {int(s) for s in explicit_steps}
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None,  # pruning is ours: explicit steps must survive keep-last-N
            create=not read_only,
            read_only=read_only,
            cleanup_tmp_directories=not read_only,
            enable_async_checkpointing=False,  # a returned save is on disk: safe to kill after
        )
        self.manager = ocp.CheckpointManager(
            self.directory, item_names=("params", "opt_state", "meta"), options=options
        )

    def latest_step(self) -> int | None:
        self.manager.reload()
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        self.manager.reload()
        return sorted(self.manager.all_steps())

    def save(self, step: int, params, opt_state, meta: dict) -> None:
        if step in self.all_steps():
            return
        self.manager.save(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(params),
                opt_state=ocp.args.StandardSave(opt_state),
                meta=ocp.args.JsonSave(dict(meta, step=int(step))),
            ),
            force=True,
        )
        self.manager.wait_until_finished()
        self._prune()

    def _prune(self) -> None:
        if self.keep <= 0:
            return
        steps = self.all_steps()
        periodic = [s for s in steps if s not in self.explicit]
        for s in periodic[: max(0, len(periodic) - self.keep)]:
            self.manager.delete(s)

    def restore(self, step: int, params_like, opt_state_like):
        """Restores (params, opt_state, meta) at `step` with the shapes/shardings of the `*_like`."""

        def abstract(tree):
            return jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree
            )

        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(abstract(params_like)),
                opt_state=ocp.args.StandardRestore(abstract(opt_state_like)),
                meta=ocp.args.JsonRestore(),
            ),
        )
        return out["params"], out["opt_state"], out["meta"]

    def restore_meta(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]

    def restore_params(self, step: int | None = None):
        """(params as saved [n_models, ...], meta) at `step` (default latest), no template needed."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no finished checkpoint in {self.directory}")
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(params=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()),
        )
        return out["params"], out["meta"]

    def close(self) -> None:
        self.manager.close()
