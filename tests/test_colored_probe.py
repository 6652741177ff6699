"""experiments/zoo/colored_probe.py: its training texts and the curriculum's phases."""

import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.zoo import colored_probe as P  # noqa: E402
from mechjax import zoo  # noqa: E402


def test_texts_end_with_the_answer_and_the_mask_covers_each_text():
    recap = P.training_texts("recap", 20, 0)
    question = P.training_texts("question", 20, 0)
    for r, q in zip(recap, question):
        scene = dict((o, c) for c, o in re.findall(r"a (\w+) (\w+)", r.split(" Colors:")[0]))
        recap_pairs = re.findall(r"(\w+) (\w+)[,.]", r.split(" Colors: ")[1])
        assert dict(recap_pairs) == scene and r.endswith(".")  # every object, with its color
        obj, color = re.search(r"The (\w+) is (\w+)$", q).groups()
        assert dict((o, c) for c, o in re.findall(r"a (\w+) (\w+)", q))[obj] == color
    _, _, tok = zoo.load("gpt4l_mix")
    toks, mask = P.encode_texts(recap[:3] + ["ab"], tok)
    lens = [1 + len(tok.encode(t).ids) for t in recap[:3] + ["ab"]]
    assert toks.shape == (4, max(lens)) and mask.shape == (4, max(lens) - 1)
    assert mask.sum(1).tolist() == [n - 1 for n in lens]  # every real token but BOS is a target
    assert (toks[:, 0] == 0).all() and (toks[3, lens[3] :] == 0).all()


def test_main_switches_phase_and_prints_a_table(capsys):
    P.main(["--steps", "4", "--every", "2", "--switch", "2", "--colored", "4", "--others", "2",
            "--n-texts", "60", "--d-model", "32"])  # fmt: skip
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("| step | phase | loss") and len(rows) == 4
    assert rows[2].startswith("| 2 | recap |") and rows[3].startswith("| 4 | question |")
    acc = [float(x) for x in rows[3].split("|")[4:6]]
    assert all(0 <= x <= 1 for x in acc)
    assert np.isfinite(float(rows[3].split("|")[3]))


@pytest.mark.parametrize("argv", [["--switch", "4500"], ["--switch", "100"], ["--colored", "0"]])
def test_bad_arguments_are_clear_errors(argv, capsys):
    with pytest.raises(SystemExit):
        P.main(argv)
    assert "error: --" in capsys.readouterr().err
