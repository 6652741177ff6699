"""Runs the official induction-head code (aadityasingh/icl-dynamics) unmodified, in its venv.

    PY icl_dynamics_launch.py run SRC [main.py arguments ...]
    PY icl_dynamics_launch.py make-data OUT.h5 [--classes 1623 --exemplars 5 --dim 512]

`run` executes SRC/main.py as `__main__` (as `python main.py ...` would) after adding aliases
that newer library versions removed and the code (or its `nptyping` import) still names:
`jax.tree_map` / `jax.tree_leaves` (removed in JAX 0.6) and numpy's pre-2.0 scalar aliases
(`np.bool8`, ...), needed only where the venv's JAX is newer than the code's tested 0.4.26.
The aliases point at the functions they were deprecated in favour of, so the computation is
the code's own.

`make-data` writes the Gaussian stand-in for the Omniglot ResNet-18 features (which cannot be
downloaded here) in the layout the code reads (`--data_file`, dataset `resnet18/224/feat`,
`[classes, exemplars, 512]` float32), drawn by the recipe of mechjax's few-shot task
(`mechjax.data.fewshot`, latent_dim 64): class centres in a random 64-d subspace of R^512 with
unit-variance features, plus exemplar noise of std 0.5.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys

NUMPY_ALIASES = {
    "bool8": "bool_",
    "object0": "object_",
    "int0": "intp",
    "uint0": "uintp",
    "void0": "void",
    "str0": "str_",
    "bytes0": "bytes_",
    "float_": "float64",
    "complex_": "complex128",
    "unicode_": "str_",
    "string_": "bytes_",
    "cfloat": "complex128",
    "clongfloat": "clongdouble",
    "longcomplex": "clongdouble",
    "longfloat": "longdouble",
    "singlecomplex": "complex64",
}


def _aliases():
    import numpy as np

    for old, new in NUMPY_ALIASES.items():
        if not hasattr(np, old):
            setattr(np, old, getattr(np, new))
    import jax

    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree_util.tree_map
    if not hasattr(jax, "tree_leaves"):
        jax.tree_leaves = jax.tree_util.tree_leaves


def run(src: str, args: list[str]) -> None:
    _aliases()
    main = os.path.join(os.path.abspath(src), "main.py")
    sys.path.insert(0, os.path.dirname(main))
    sys.argv = [main, *args]
    runpy.run_path(main, run_name="__main__")


def make_data(out: str, classes: int, exemplars: int, dim: int, latent: int = 64, seed: int = 0):
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((latent, dim)) / np.sqrt(latent)  # unit variance per feature
    centres = rng.standard_normal((classes, latent)) @ basis  # [classes, dim]
    x = centres[:, None, :] + 0.5 * rng.standard_normal((classes, exemplars, dim))
    tmp = out + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.create_dataset("resnet18/224/feat", data=x.astype(np.float32))
    os.replace(tmp, out)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3:])
    else:
        ap = argparse.ArgumentParser()
        sub = ap.add_subparsers(dest="cmd", required=True)
        m = sub.add_parser("make-data")
        m.add_argument("out")
        m.add_argument("--classes", type=int, default=1623)
        m.add_argument("--exemplars", type=int, default=5)
        m.add_argument("--dim", type=int, default=512)
        a = ap.parse_args()
        make_data(a.out, a.classes, a.exemplars, a.dim)
