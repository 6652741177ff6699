"""experiments/zoo/lookup_probe.py: the associative-recall sequences ask what they list."""

import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.zoo import lookup_probe as P  # noqa: E402


@pytest.mark.parametrize("order", ["forward", "reverse"])
@pytest.mark.parametrize("gap", [0, 1, "mix"])
def test_answers_are_the_values_listed_with_the_asked_keys(order, gap):
    pairs = 4
    toks, answers, gapped = P.sample(jax.random.key(1), 32, pairs, order, gap)
    toks, gapped = np.asarray(toks), np.asarray(gapped)
    assert toks.shape == (32, (5 + (gap != 0)) * pairs) and gapped.shape == (32, pairs)
    assert gapped.all() if gap == 1 else not gapped.any() if gap == 0 else 0.3 < gapped.mean() < 0.7
    for row, gaps in zip(toks, gapped):
        listed = row[: 3 * pairs].reshape(pairs, 3)
        assert (listed[:, 2] == P.SEP).all()
        k, v = (listed[:, 0], listed[:, 1]) if order == "forward" else (listed[:, 1], listed[:, 0])
        assert len(set(k)) == len(set(v)) == pairs
        assert ((k >= P.KEYS0) & (k < P.KEYS0 + P.N_KEYS)).all()
        assert ((v >= P.VALUES0) & (v < P.VALUES0 + P.N_VALUES)).all()
        table = dict(zip(k, v))
        asked = row[answers - 1 - gaps]  # the key is right before its value or before the "?"
        assert sorted(asked) == sorted(k)  # every key asked once
        assert [table[x] for x in asked] == list(row[answers])
        if gap != 0:  # the "?" is after the key (gap) or before it ("? k v")
            assert (row[np.where(gaps, answers - 1, answers - 2)] == P.ASK).all()


@pytest.mark.parametrize("gap", [["1"], ["mix"], ["1", "--gap-from", "1"]])
def test_main_runs_and_prints_a_table(capsys, gap):
    P.main(["--steps", "2", "--every", "1", "--d-model", "16", "--heads", "2", "--d-mlp", "0",
            "--gap", *gap])  # fmt: skip
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("| step | answer loss") and len(rows) == 4
    assert rows[-1].startswith("| 2 |") and rows[-1].count("|") == (6 if gap == ["1"] else 7)


@pytest.mark.parametrize(
    "argv",
    [["--pairs", "11"], ["--gap", "0", "--gap-from", "500"], ["--gap-from", "4000"],
     ["--gap-from", "700"]],
)  # fmt: skip
def test_bad_arguments_are_clear_errors(argv, capsys):
    with pytest.raises(SystemExit):
        P.main(argv)
    assert "error: --" in capsys.readouterr().err
