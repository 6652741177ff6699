r"""Zoo probe: does the recap curriculum teach colored objects? (experiments/zoo/colored_probe.py)

A 2-layer model (d_model 128, MLPs, the gpt4l_mix tokenizer) on colored-objects texts:
recaps for steps 0 .. switch - 1 (a phase of `task.phases` with `form="recap"`), questions
after; `colored` of these texts and `others` texts of six short tasks per step. Accuracy on
256 eval prompts of each form every `every` steps, in the report's table. Args
(`:key=value,...`): switch, colored, others, layers, d_model, n_texts, lr, steps, every,
seed; `runlocal` for CI.

    mechjax run configs/zoo/probe_colored.py:switch=2000,steps=4500,colored=64 \
        --workdir runs/probe_colored_64
    mechjax run configs/zoo/probe_colored.py:switch=2500,steps=3500,colored=40,others=24 \
        --workdir runs/probe_colored_40_24

In the earlier script's runs (not rerun as this config), undiluted, the question followed
the recap within about 500 steps of its passing the elimination level; diluted with other
tasks, the lookup did not form in 2,500-3,000 steps (experiments/zoo/README.md, "Colored
objects").
"""

from mechjax.zoo.config import probe_args, probe_config

DEFAULTS = dict(switch=2000, colored=64, others=0, layers=2, d_model=128, n_texts=20000,
                lr=2e-3, steps=4500, every=250, seed=0)  # fmt: skip
RUNLOCAL = dict(switch=2, colored=4, others=2, d_model=32, n_texts=60, steps=4, every=2)


def get_config(arg=None):
    a = probe_args(arg, DEFAULTS, RUNLOCAL)
    phases = [dict(start=0, end=a["switch"], form="recap")] if a["switch"] else []
    c = probe_config(
        "colored", a["steps"], a["lr"], a["colored"] + a["others"], a["every"], phases=phases,
        form="question", **{k: a[k] for k in ("colored", "others", "layers", "d_model", "n_texts")},
    )  # fmt: skip
    c.seed = a["seed"]
    return c
