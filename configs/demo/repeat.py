"""Demo: attention-only transformer learns to continue repeated random tokens (induction).

Run:   mechjax run configs/demo/repeat.py:runlocal --workdir /tmp/demo
Seeds: mechjax run configs/demo/repeat.py:runlocal,seeds=4 --workdir /tmp/demo4
Clamp: mechjax run configs/demo/repeat.py:runlocal,windows=True --workdir /tmp/demo_win
       (head 0 of layer 0 zero-ablated during a step window, per model)
Full:  mechjax run configs/demo/repeat.py --workdir /tmp/demo_full

What it shows: eval rep_acc (accuracy on the repeated half) climbs from chance (1/d_vocab) to
near 1 once an induction circuit forms (full run); runlocal only checks the pipeline (~20 s).
"""

from mechjax.train import base_config, parse_arg


def get_config(arg=None):
    a = parse_arg(arg, runlocal=False, seeds=1, windows=False)
    c = base_config()
    c.experiment = "demo"
    c.total_steps = 2000
    c.batch_size = 64
    c.lr = 1e-3
    c.schedule = "warmup_cosine"
    c.warmup_steps = 100
    c.eval_every = 100
    c.steps_per_call = 50
    c.checkpoint_every = 500
    c.keep_checkpoints = 3

    t = c.task
    t.d_vocab = 64
    t.seq_half = 16
    t.d_model = 64
    t.n_heads = 8
    t.n_layers = 2
    t.eval_batch = 256
    t.seeds = a["seeds"]
    t.loss_scale = 1.0  # multiplies the loss (a huge value is a handy divergence test)
    # Per-model [start, end) windows of ablating head 0 of layer 0; () = one model, no ablation.
    t.ablate_windows = ((0, 0), (0, 1000), (1000, 2000)) if a["windows"] else ()

    if a["runlocal"]:
        c.total_steps = 60
        c.batch_size = 16
        c.warmup_steps = 10
        c.eval_every = 20
        c.steps_per_call = 10
        c.checkpoint_every = 20
        t.d_vocab = 16
        t.seq_half = 8
        t.d_model = 32
        t.n_heads = 4
        t.eval_batch = 32
        if a["windows"]:
            t.ablate_windows = ((0, 0), (0, 30), (30, 60))
    return c
