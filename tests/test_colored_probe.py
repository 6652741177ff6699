"""experiments/zoo/colored_probe.py: its training texts, and configs/zoo/probe_colored.py
training it with the one loop (the recaps as a phase)."""

import json
import os
import re
import sys

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from _report import table_rows  # noqa: E402  (tests/_report.py)

from experiments.zoo import colored_probe as P  # noqa: E402
from mechjax import zoo  # noqa: E402
from mechjax.cli import main  # noqa: E402
from mechjax.train import ConfigError  # noqa: E402
from mechjax.train.config import apply_overrides, fill_defaults, load_config_file  # noqa: E402

CONFIG = os.path.join(ROOT, "configs/zoo/probe_colored.py")


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


def test_probe_switches_phase_and_writes_its_table(tmp_path):
    """runlocal: recaps at steps 0-1 (the phase), questions at 2-3; 4 colored rows and 2 of
    the other tasks a step."""
    from experiments.zoo.task import build

    task = build(fill_defaults(load_config_file(CONFIG + ":runlocal")))
    _, _, tok = zoo.load("gpt4l_mix")
    for step, form in ((0, "recap"), (1, "recap"), (2, "question")):
        b = task.batch(jax.random.key(0), step)
        assert b["tokens"].shape[0] == 6 and b["mask"].shape == (6, b["tokens"].shape[1] - 1)
        texts = [tok.decode(np.asarray(r).tolist()) for r in b["tokens"][:4]]
        assert all((" Colors: " in x) == (form == "recap") for x in texts), (step, texts)
    work = str(tmp_path / "run")
    assert main(["run", CONFIG + ":runlocal", "--workdir", work]) == 0
    rows = table_rows(open(os.path.join(work, "report.md")).read(), "| step | phase")
    assert rows[0].startswith("| step | phase | loss") and len(rows) == 3
    assert rows[1].startswith("| 2 | recap |") and rows[2].startswith("| 4 | question |")
    summary = json.load(open(os.path.join(work, "summary.json")))
    assert 0 <= summary["acc/question"] <= 1 and np.isfinite(summary["loss"])


@pytest.mark.parametrize(
    "arg, overrides, match",
    [("runlocal,colored=0", [], "colored=0 must be >= 1"),
     ("runlocal", ["batch_size=8"], r"config.batch_size=8 their sum"),
     ("runlocal,switch=100", [], "end=100 is past total_steps=4"),
     ("runlocal", ["task.form=recaps"], "valid forms: question, recap")],
)  # fmt: skip
def test_bad_arguments_are_clear_errors(arg, overrides, match):
    from experiments.zoo.task import build

    cfg = apply_overrides(fill_defaults(load_config_file(f"{CONFIG}:{arg}")), overrides)
    with pytest.raises(ConfigError, match=match):
        build(cfg)
