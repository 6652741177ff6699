"""Circuit analysis: activation/path patching, attribution, logit attribution, detectors.

Every function is pure on `(model, params, inputs, ...)`, built on `mj.run` and the
interventions; sweeps are one compiled program (vmapped, chunked with `chunk_size`).
"""

from mechjax.analysis import (
    attribution,
    circuits,
    detectors,
    logit_attribution,
    metrics,
    patching,
    path_patching,
    weights,
)

__all__ = [
    "attribution",
    "circuits",
    "detectors",
    "logit_attribution",
    "metrics",
    "path_patching",
    "patching",
    "weights",
]
