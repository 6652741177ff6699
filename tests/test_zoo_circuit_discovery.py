"""experiments/zoo/circuits.py recovers the hand-set circuit of the constructed induction model
exactly (the ground truth of `mechjax.zoo.constructed`), with its edge types."""

import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.zoo import circuits as X  # noqa: E402
from mechjax.zoo import constructed  # noqa: E402


def _batch(length=12, n=32):
    model, params, truth = constructed.induction_model(d_vocab=32, n_ctx=64)
    seqs = constructed.repeated_permutations(0, n, length, 32)  # BOS, x, x
    other = constructed.repeated_permutations(1, n, length, 32)
    clean = seqs[:, :-1]  # predict the last token of the second copy
    # the first copy replaced: the same current token, but nothing to induct from
    corrupted = np.concatenate([seqs[:, :1], other[:, 1 : 1 + length], clean[:, 1 + length :]], 1)
    answer = jnp.asarray(seqs[:, -1])
    last = np.full(n, clean.shape[1] - 1)
    batch = types.SimpleNamespace(tokens=clean, corrupted=corrupted, last=last, positions={})

    def metric(logits):
        lp = jax.nn.log_softmax(logits[:, -1].astype(jnp.float32), -1)
        return jnp.take_along_axis(lp, answer[:, None], 1).mean()

    return model, params, truth, batch, metric


def test_discovery_finds_exactly_the_constructed_circuit():
    model, params, truth, batch, metric = _batch()
    found = X.discover(model, params, batch, metric, tau=0.04, depth=3)
    assert found["clean"] > -1e-3 and found["corrupted"] < -2  # induction works / is broken
    want = {(n.layer, n.head) for n in truth.nodes if n.kind == "head"}
    assert set(found["heads"]) == want == {(0, 1), (1, 2)}
    edges = {(a, b, c) for a, b, c, _ in found["edges"]}
    assert edges == {("L1H2", "logits", "resid"), ("L0H1", "L1H2", "k")}
    heads, mlps = X.prune(model, params, batch, metric, found["heads"], found["mlps"])
    assert set(heads) == want  # both members are necessary
    r = X.removal_drops(model, params, batch, metric, heads, mlps)
    assert abs(r["faithfulness"] - 1.0) < 1e-4
    assert max(r["without"].values()) < 0.2
