r"""Zoo probe: does an induction head form? (experiments/zoo/induction_probe.py)

A 2-layer attention-only model (d_model 128, 8 heads, RoPE, vocabulary 1,024) on windows of
`context` random tokens, each repeating its first m ~ U[min_rep, max_rep] tokens; induction
and previous-token scores every `every` steps, in the report's table. Args (`:key=value,...`):
context, min_rep, max_rep, eval_len, layers, d_model, heads, d_mlp (0: attention only),
vocab, batch, lr, steps, every, seed; `runlocal` for CI.

    mechjax run configs/zoo/probe_induction.py:context=128,min_rep=16,max_rep=63 \
        --workdir runs/probe_induction_128
    mechjax run configs/zoo/probe_induction.py:context=48,min_rep=8,max_rep=20,eval_len=20,steps=2400 \
        --workdir runs/probe_induction_48

The 48-token context forms an induction head (about 0.9 by step 2,400); the 128-token one
does not in 2,000 steps (experiments/zoo/README.md, "How we got induction heads to form").
"""

from mechjax.zoo.config import probe_args, probe_config

DEFAULTS = dict(context=128, min_rep=16, max_rep=64, eval_len=50, layers=2, d_model=128,
                heads=8, d_mlp=0, vocab=1024, batch=16, lr=1e-3, steps=2000, every=200,
                seed=0)  # fmt: skip
RUNLOCAL = dict(context=32, min_rep=4, max_rep=8, eval_len=8, d_model=32, heads=2, vocab=64,
                batch=4, steps=4, every=2)  # fmt: skip


def get_config(arg=None):
    a = probe_args(arg, DEFAULTS, RUNLOCAL)
    c = probe_config(
        "induction", a["steps"], a["lr"], a["batch"], a["every"],
        **{k: a[k] for k in ("context", "min_rep", "max_rep", "eval_len", "layers", "d_model",
                             "heads", "d_mlp", "vocab")},
    )  # fmt: skip
    c.seed = a["seed"]
    return c
