"""experiments/zoo/lookup_probe.py: the associative-recall sequences ask what they list, and
configs/zoo/probe_lookup.py trains it with the one loop (a gap-0 phase as its curriculum)."""

import json
import os
import sys

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from _report import table_rows  # noqa: E402  (tests/_report.py)

from experiments.zoo import lookup_probe as P  # noqa: E402
from mechjax.cli import main  # noqa: E402
from mechjax.train import ConfigError  # noqa: E402
from mechjax.train.config import fill_defaults, load_config_file  # noqa: E402

CONFIG = os.path.join(ROOT, "configs/zoo/probe_lookup.py")


@pytest.mark.parametrize("order", ["forward", "reverse"])
@pytest.mark.parametrize("gap", [0, 1, "mix"])
def test_answers_are_the_values_listed_with_the_asked_keys(order, gap):
    pairs = 4
    toks, answers, gapped = P.sample(jax.random.key(1), 32, pairs, order, gap)
    toks, gapped = np.asarray(toks), np.asarray(gapped)
    assert toks.shape == (32, P.length(pairs, gap)) and gapped.shape == (32, pairs)
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


def _build(arg):
    from experiments.zoo.task import build

    return build(fill_defaults(load_config_file(f"{CONFIG}:{arg}")))


def test_the_gap0_phase_pads_its_form_and_moves_the_loss_mask():
    """runlocal: `gap_from=1`, so step 0 is the gap-0 form (5 tokens a pair, padded to the
    gap-1 length) and step 1 the gap-1 form; the mask marks each form's answers."""
    task = _build("runlocal")
    pairs = 3
    for step, gap in ((0, 0), (1, 1)):
        b = task.batch(jax.random.key(2), step)
        toks, mask = np.asarray(b["tokens"]), np.asarray(b["mask"])
        assert toks.shape == (8, P.length(pairs, 1)) and mask.shape == (8, toks.shape[1] - 1)
        _, answers, _ = P.sample(jax.random.key(0), 1, pairs, "reverse", gap)
        assert np.flatnonzero(mask[0]).tolist() == (answers - 1).tolist()
        assert (toks[:, P.length(pairs, gap) :] == 0).all()  # padding
        assert (toks[:, answers] >= P.VALUES0).all()  # every answer is a value


@pytest.mark.parametrize("arg", ["runlocal,gap=1", "runlocal,gap=mix,gap_from=0"])
def test_probe_runs_as_a_config_of_the_loop(arg, tmp_path):
    work = str(tmp_path / "run")
    assert main(["run", f"{CONFIG}:{arg}", "--workdir", work]) == 0
    rows = table_rows(open(os.path.join(work, "report.md")).read(), "| step | answer loss")
    head = rows[0]
    assert head.startswith("| step | answer loss | first question (chance 0.33) | all questions")
    assert ("with the gap" in head) == ("mix" in arg) and ("gap-0 form" in head) == (
        "mix" not in arg
    )
    assert rows[-1].startswith("| 4 |") and rows[-1].count("|") == head.count("|")
    summary = json.load(open(os.path.join(work, "summary.json")))
    assert 0 <= summary["acc_first"] <= 1 and np.isfinite(summary["loss"])
    assert json.load(open(os.path.join(work, "run.json")))["traces"]["train"] == 1


@pytest.mark.parametrize(
    "arg, match",
    [("runlocal,pairs=11", r"pairs=11 must be in \[2, 10\]"),
     ("runlocal,gap=2", r"config.task.gap='2': valid gaps are '0', '1' and 'mix'"),
     ("runlocal,gap_from=4000", r"end=4000 is past total_steps=4"),
     ("runlocal,order=sideways", r"order='sideways'")],
)  # fmt: skip
def test_bad_arguments_are_clear_errors(arg, match):
    with pytest.raises(ConfigError, match=match):
        _build(arg)
