"""Circuits: complement ablation equals hand-written interventions; pruning finds planted heads."""

import jax.numpy as jnp
import numpy as np
import pytest
from test_analysis_detectors import _planted, _repeated

import mechjax as mj
from mechjax.analysis import circuits, detectors


def _next_token_logit(lg):
    """Mean logit of the correct next token over the second (repeated) half: [batch, 14, V]."""
    toks = _TOKS
    nxt = toks[:, 1:8]  # positions 7..13 predict tokens 1..7 of the pattern
    sel = jnp.take_along_axis(lg[:, 7:14], nxt[..., None], axis=-1)
    return jnp.mean(sel)


_TOKS = _repeated(batch=3)


def test_evaluate_equals_manual_ablation():
    model, params = _planted()
    ref = _repeated(batch=3, seed=5)
    circ = circuits.circuit_from_nodes(model, ["L0H0", "L1H1"])
    got = circuits.evaluate(
        model, params, _TOKS, _next_token_logit, circ, method="resample", reference_tokens=ref
    )
    _, rc = mj.run(model, params, ref, cache="blocks.*.attn.hook_z")
    ivs = [
        mj.patch("blocks.0.attn.hook_z", rc["blocks.0.attn.hook_z"], heads=[1]),
        mj.patch("blocks.1.attn.hook_z", rc["blocks.1.attn.hook_z"], heads=[0]),
    ]
    want = _next_token_logit(mj.run(model, params, _TOKS, interventions=ivs)[0])
    np.testing.assert_allclose(got, want, atol=1e-5)
    mean = circuits.evaluate(model, params, _TOKS, _next_token_logit, circ, method="mean")
    ivs = [
        mj.ablate("blocks.0.attn.hook_z", heads=[1], method="mean"),
        mj.ablate("blocks.1.attn.hook_z", heads=[0], method="mean"),
    ]
    np.testing.assert_allclose(
        mean, _next_token_logit(mj.run(model, params, _TOKS, interventions=ivs)[0]), atol=1e-5
    )
    with pytest.raises(ValueError, match="reference_tokens"):
        circuits.evaluate(model, params, _TOKS, _next_token_logit, circ, method="resample")


def test_faithfulness_pruning_and_auc_find_the_induction_circuit():
    model, params = _planted()
    truth = circuits.circuit_from_nodes(model, ["L0H0", "L1H0"])
    f = circuits.faithfulness(model, params, _TOKS, _next_token_logit, truth, method="zero")
    assert f["full"] - f["empty"] > 5 and f["faithfulness"] > 0.9
    wrong = circuits.faithfulness(
        model,
        params,
        _TOKS,
        _next_token_logit,
        circuits.circuit_from_nodes(model, ["L1H1"]),
        method="zero",
    )
    assert wrong["faithfulness"] < 0.2
    res = circuits.greedy_prune(
        model, params, _TOKS, _next_token_logit, threshold=1.0, method="zero"
    )
    np.testing.assert_array_equal(res["circuit"]["heads"], truth["heads"])
    assert sorted(res["removed"]) == ["L0H1", "L1H1"]
    ind = detectors.induction_score(model, params, _TOKS)
    assert circuits.roc_auc(ind, circuits.circuit_from_nodes(model, ["L1H0"])["heads"]) == 1.0
    assert circuits.roc_auc([0.1, 0.2, 0.2], [False, True, False]) == pytest.approx(0.75)
