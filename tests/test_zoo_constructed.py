"""The hand-set induction model: its shipped circuit, checked by mechjax's own analyses.

The model is exact by construction (mechjax.zoo.constructed), so most checks are exact up
to float32 and the exp(-30) attention leakage: heads outside the circuit change nothing
(tolerance 1e-5 on logits and metrics), and on sequences whose first copy has distinct
tokens every prediction of the second copy is right (accuracy asserted == 1.0: the
correct logit is 20, every other one ~1e-7, so no rounding can flip an argmax).
"""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax.analysis import circuits, detectors, patching, path_patching
from mechjax.data import repeated_tokens
from mechjax.zoo import circuits as zc
from mechjax.zoo import constructed as C

V, N, L, B = 32, 64, 12, 16  # vocabulary, context, length of one copy, batch
CIRCUIT_HEADS = {C.PREV_HEAD, C.INDUCTION_HEAD}
OTHER_HEADS = [(i, h) for i in range(2) for h in range(C.N_HEADS) if (i, h) not in CIRCUIT_HEADS]
assert set(OTHER_HEADS) == set(C.DISTRACTORS) | set(C.ZERO_HEADS)


@pytest.fixture(scope="module")
def built():
    return C.induction_model(V, N)


@pytest.fixture(scope="module")
def data():
    clean = C.repeated_permutations(0, B, L, V)
    corrupt = C.repeated_permutations(1, B, L, V)  # an independent sequence
    return clean, corrupt, C.repeated_half_logprob(clean, L)


def _z(i):
    return f"blocks.{i}.attn.hook_z"


# -- the data format ------------------------------------------------------------------------


def test_shipped_circuit_round_trips_and_equals_the_constructed_one(built):
    _, _, circ = built
    shipped = mj.zoo.circuit(C.MODEL_NAME, C.TASK)
    assert shipped == circ == C.induction_circuit()
    assert zc.Circuit.from_dict(circ.to_dict()) == circ
    assert zc.Circuit.from_json(circ.to_json()) == circ
    assert hash(shipped) == hash(circ)
    with open(f"{zc.CIRCUITS_DIR}/{zc.file_name(C.MODEL_NAME, C.TASK)}") as f:
        assert f.read() == circ.to_json()  # the file is what the code builds (regenerate: .save())
    assert (C.MODEL_NAME, C.TASK) in zc.available()
    assert circ.heads == (C.PREV_HEAD, C.INDUCTION_HEAD)
    assert circ.by_role("induction") == ("L1H2",) and circ.roles["L0H1"] == "previous_token"
    assert {str(e) for e in circ.edges_into("L1H2")} == {
        "embed -> L1H2.q",
        "L0H1 -> L1H2.k",
        "embed -> L1H2.v",
    }
    assert circ.node("L0H1").site == "blocks.0.attn.hook_z"
    assert json.loads(circ.to_json())["format"] == zc.FORMAT


def test_circuit_masks_match_analysis_node_names(built):
    model, _, circ = built
    m = circ.masks(model)
    assert set(m) == {"heads"} and m["heads"].shape == (2, C.N_HEADS)
    assert {tuple(int(x) for x in ix) for ix in np.argwhere(m["heads"])} == CIRCUIT_HEADS


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(nodes=("embed", "L0h1")), "bad node name"),
        (dict(edges=(("L1H2", "L0H1", "k"),)), "does not come before"),
        (dict(edges=(("L0H1", "L1H2", "resid"),)), "receives through"),
        (dict(edges=(("L0H0", "L1H2", "k"),)), "not among the nodes"),
        (dict(edges=(("logits", "L1H2", "q"),)), "send nothing"),
        (dict(roles={"L0H1": "Previous-Token"}), "snake_case"),
        (dict(roles={"L0H0": "backup"}), "not a node"),
        (dict(ablation="median"), "ablation"),
        (dict(minimality={"L0H0": 0.1}), "non-members"),
        (dict(model="a__b"), "without '__'"),
        (dict(edges=(("embed", "L0H1", "v"), ("embed", "L0H1", "v", 0.5))), "repeated edges"),
    ],
    ids=[
        "node",
        "order",
        "channel",
        "endpoint",
        "logits-sender",
        "role",
        "role-node",
        "ablation",
        "minimality",
        "file-name",
        "repeated-edge",
    ],
)
def test_circuit_validation_fails_loudly(change, match):
    base = C.induction_circuit()
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(base, **change)


def test_from_dict_and_load_errors(tmp_path):
    d = C.induction_circuit().to_dict()
    with pytest.raises(ValueError, match="unknown keys"):
        zc.Circuit.from_dict({**d, "faithfulnes": 1.0})
    with pytest.raises(ValueError, match="disagree with the name"):
        zc.Circuit.from_dict(
            {**d, "nodes": [{"name": "L0H1", "kind": "head", "layer": 1, "head": 1}]}
        )
    with pytest.raises(ValueError, match=r"available: \('constructed_induction', 'induction'\)"):
        mj.zoo.circuit("gpt4l_mix", "ioi")
    scored = dataclasses.replace(
        C.induction_circuit(),
        edges=[dataclasses.replace(e, score=0.5) for e in C.induction_circuit().edges],
        minimality={"L0H1": -0.1, "L1H2": 0.0},
    )
    assert zc.Circuit.from_json(scored.to_json()) == scored != C.induction_circuit()
    path = C.induction_circuit().save(str(tmp_path))
    assert zc.load(C.MODEL_NAME, C.TASK, folder=str(tmp_path)) == C.induction_circuit()
    assert path.endswith("constructed_induction__induction.json")


# -- the model does the task, by the algorithm it was built for ------------------------------


@pytest.mark.parametrize("d_vocab, n_ctx, length", [(32, 64, 24), (11, 24, 10)], ids=["V32", "V11"])
def test_predicts_the_repeated_half_exactly(d_vocab, n_ctx, length):
    model, params, _ = C.induction_model(d_vocab, n_ctx)
    for seed in range(3):
        toks = C.repeated_permutations(seed, 32, length, d_vocab)
        logits, _ = mj.run(model, params, toks)
        s = C.repeated_half_scores(logits, toks, length)
        assert s["accuracy"] == 1.0 and s["loss"] < 1e-6
        np.testing.assert_allclose(logits, C.reference_logits(toks, d_vocab), atol=1e-4)
    # Tokens that repeat inside a copy make some predictions ambiguous; the model still
    # computes exactly the induction algorithm.
    dups = np.asarray(repeated_tokens.fixed(0, 32, length, d_vocab, bos=C.BOS))
    logits, _ = mj.run(model, params, dups)
    np.testing.assert_allclose(logits, C.reference_logits(dups, d_vocab), atol=1e-4)


def test_detectors_single_out_the_constructed_heads(built, data):
    model, params, _ = built
    clean = data[0]
    prev = np.asarray(detectors.previous_token_score(model, params, clean))
    ind = np.asarray(detectors.induction_score(model, params, clean))
    assert prev[C.PREV_HEAD] > 0.999 and ind[C.INDUCTION_HEAD] > 0.999
    # The rest: ~1/(pos+1) of uniform attention (zero heads), or 0.
    assert np.delete(prev.ravel(), np.ravel_multi_index(C.PREV_HEAD, prev.shape)).max() < 0.15
    assert np.delete(ind.ravel(), np.ravel_multi_index(C.INDUCTION_HEAD, ind.shape)).max() < 0.1
    dup = np.asarray(detectors.duplicate_token_score(model, params, clean))
    assert dup[1, 0] > 0.999  # the duplicate-token distractor looks important, and is not


# -- ablation, patching, path patching: the effect is exactly the circuit's -----------------


@pytest.mark.parametrize("method", ["zero", "mean"])
def test_ablating_heads_outside_the_circuit_changes_nothing(built, data, method):
    model, params, _ = built
    clean = data[0]
    full, _ = mj.run(model, params, clean)
    for i, h in OTHER_HEADS:
        lg, _ = mj.run(model, params, clean, interventions=[mj.ablate(_z(i), [h], method=method)])
        np.testing.assert_allclose(lg, full, atol=1e-5, err_msg=f"L{i}H{h}")
    every = [mj.ablate(_z(i), [h], method=method) for i, h in OTHER_HEADS]
    np.testing.assert_allclose(
        mj.run(model, params, clean, interventions=every)[0], full, atol=1e-5
    )
    # Either circuit head ablated: accuracy from 1.0 to <= 0.3 and loss from < 1e-6 to > 2
    # nats (chance: 1/31, ln 31 = 3.4). Not to chance exactly: the batch mean of L0H1's
    # previous tokens still points the induction head at tokens common in the batch.
    for i, h in CIRCUIT_HEADS:
        lg, _ = mj.run(model, params, clean, interventions=[mj.ablate(_z(i), [h], method=method)])
        s = C.repeated_half_scores(lg, clean, L)
        assert s["accuracy"] < 0.3 and s["loss"] > 2.0, (i, h, s)


def test_activation_patching_finds_only_the_circuit_heads(built, data):
    model, params, _ = built
    clean, corrupt, metric = data
    m_clean = float(metric(mj.run(model, params, clean)[0]))
    m_corrupt = float(metric(mj.run(model, params, corrupt)[0]))
    assert m_clean > -1e-6 and m_corrupt < -10
    sites = tuple(_z(i) for i in range(2))
    _, cc = mj.run(model, params, clean, cache=sites)
    _, kc = mj.run(model, params, corrupt, cache=sites)
    # Noising: each head's corrupted output in the clean run.
    noised = np.asarray(patching.attn_head_out_all_pos(model, params, clean, kc, metric))
    # Denoising (TransformerLens' direction): each head's clean output in the corrupted run.
    denoised = np.asarray(patching.attn_head_out_all_pos(model, params, corrupt, cc, metric))
    for i, h in OTHER_HEADS:
        assert abs(noised[i, h] - m_clean) < 1e-5 and abs(denoised[i, h] - m_corrupt) < 1e-5
    for i, h in CIRCUIT_HEADS:
        assert noised[i, h] < m_clean - 5
    assert abs(denoised[C.INDUCTION_HEAD] - m_clean) < 1e-5  # the logits read only L1H2


def test_edge_patching_finds_exactly_the_circuit_edges(built, data):
    model, params, circ = built
    clean, corrupt, metric = data
    m_clean = float(metric(mj.run(model, params, clean)[0]))
    r = path_patching.edge_patch(model, params, clean, corrupt, metric)
    found = set()
    for (li, hi), per in zip(r["receivers"], r["edges"]):
        for c, ch in enumerate("qkv"):
            for i in range(li):
                for h in range(C.N_HEADS):
                    if abs(per[c, i, h] - m_clean) > 1e-5:
                        found.add((f"L{i}H{h}", f"L{li}H{hi}", ch))
    for i in range(2):
        for h in range(C.N_HEADS):
            if abs(r["logits"][i, h] - m_clean) > 1e-5:
                found.add((f"L{i}H{h}", "logits", "resid"))
    heads = {n for n in circ.node_names if n.startswith("L")}
    want = {(e.sender, e.receiver, e.channel) for e in circ.edges if e.sender in heads}
    assert found == want
    i, h = C.PREV_HEAD
    assert r["edges"][r["receivers"].index(C.INDUCTION_HEAD), 1, i, h] < m_clean - 5


def test_direct_path_graph_is_the_circuit(built, data):
    model, params, circ = built
    graph = C.direct_path_graph(model, params, data[0])
    nodes, edges = C.logit_ancestors(graph)
    assert nodes == set(circ.node_names)
    assert edges == {(e.sender, e.receiver, e.channel) for e in circ.edges}
    # The distractors read the stream, so they have edges, just none towards the logits.
    assert ("embed", "L1H0", "v") in graph and ("pos_embed", "L0H0", "q") in graph


# -- faithfulness and minimality ------------------------------------------------------------


@pytest.mark.parametrize("method", ["mean", "zero", "resample"])
def test_faithfulness_is_exact_and_every_member_is_necessary(built, data, method):
    model, params, circ = built
    clean, corrupt, metric = data
    kw = dict(method=method, reference_tokens=corrupt if method == "resample" else None)
    masks = circ.masks(model)
    f = circuits.faithfulness(model, params, clean, metric, masks, **kw)
    assert f["full"] - f["empty"] > 2
    assert abs(f["faithfulness"] - 1.0) < 1e-6 and abs(f["circuit"] - f["full"]) < 1e-6
    for i, h in circ.heads:
        drop = {"heads": np.array(masks["heads"])}
        drop["heads"][i, h] = False
        g = circuits.faithfulness(model, params, clean, metric, drop, **kw)["faithfulness"]
        # Resampled, the empty circuit confidently predicts the other sequence (-19 nats);
        # without L0H1 the induction head matches the other sequence's previous tokens at
        # random, about chance (-8 nats): halfway. Mean or zero: the empty circuit is chance.
        assert g < (0.6 if method == "resample" else 0.2), (method, i, h, g)


def test_greedy_pruning_recovers_the_circuit(built, data):
    model, params, circ = built
    clean, _, metric = data
    res = circuits.greedy_prune(model, params, clean, metric, 1e-4, method="mean")
    assert sorted(res["removed"]) == sorted(f"L{i}H{h}" for i, h in OTHER_HEADS)
    np.testing.assert_array_equal(res["circuit"]["heads"], circ.masks(model)["heads"])
    truth = circ.masks(model)["heads"]
    score = np.asarray(detectors.induction_score(model, params, jnp.asarray(clean)))
    score = score + np.asarray(detectors.previous_token_score(model, params, clean))
    assert circuits.roc_auc(score, truth) == 1.0


def test_verification_table_smoke():
    out = C.verify(batch=4, length=6)
    assert out["direct_paths"]["equal_to_circuit"] and out["greedy_prune"]["kept_equals_circuit"]
    assert out["ablations"]["full model"]["accuracy"] == 1.0
    text = C.table(out)
    assert "| full model | 1.000 |" in text and "without L0H1" in text
