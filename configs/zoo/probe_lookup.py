r"""Zoo probe: does a lookup by key form? Associative recall over random tokens
(experiments/zoo/lookup_probe.py).

Each sequence lists `pairs` key-value pairs (`order`: "forward" = key value, "reverse" =
value key, the colored-objects order) and asks for every key once; `gap` "1" puts a "?"
between the asked key and its value (the task's shape), "0" none, "mix" half of each.
`gap_from=N` is a curriculum: a phase of the gap-0 form for steps 0 .. N - 1
(`task.phases`). A 2-layer model (d_model 128, 4 heads, MLPs 512), loss on the answers only.
Args (`:key=value,...`): order, gap, gap_from, pairs, layers, d_model, heads, d_mlp, batch,
lr, steps, every, seed; `runlocal` for CI.

    mechjax run configs/zoo/probe_lookup.py:order=reverse,gap=0 --workdir runs/probe_lookup_r0
    mechjax run configs/zoo/probe_lookup.py:order=reverse,gap=1,gap_from=4000,steps=12000,every=1000 \
        --workdir runs/probe_lookup_curriculum

Value-before-key with no gap can be learned in 4,000 steps (first-question accuracy 1.00
from step 2,500 in the earlier script's seed-0 run; this config's seed-0 run reaches 0.55,
still rising: when the lookup forms depends on the seed); the colored-objects shape (gap 1)
only after the gap-0 form (experiments/zoo/README.md, "Colored objects").
"""

from mechjax.zoo.config import probe_args, probe_config

DEFAULTS = dict(order="reverse", gap="1", gap_from=0, pairs=3, layers=2, d_model=128, heads=4,
                d_mlp=512, batch=64, lr=2e-3, steps=4000, every=500, seed=0)  # fmt: skip
# (runlocal runs the curriculum's switch too: the gap-0 form at step 0)
RUNLOCAL = dict(gap_from=1, d_model=16, heads=2, d_mlp=0, batch=8, steps=4, every=2)


def get_config(arg=None):
    a = probe_args(arg, DEFAULTS, RUNLOCAL)
    phases = [dict(start=0, end=a["gap_from"], gap="0")] if a["gap_from"] else []
    c = probe_config(
        "lookup", a["steps"], a["lr"], a["batch"], a["every"], phases=phases,
        **{k: a[k] for k in ("order", "gap", "pairs", "layers", "d_model", "heads", "d_mlp")},
    )  # fmt: skip
    c.seed = a["seed"]
    return c
