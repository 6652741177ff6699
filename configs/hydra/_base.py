r"""The config shared by `configs/hydra/{medusa,hydra,hydra_pp}.py` (arg `variant=NAME`).

Draft heads (K = 4) for speculative decoding on the frozen zoo model `attn2l_code` (2-layer
attention-only code LM, context 128, vocabulary 1,024), trained on its code corpus by the
one training loop; see experiments/hydra/task.py for the data and the evals.
Variants: `runlocal` (4 steps on 6 files, for CI), `steps=N`.
"""

import ml_collections

from mechjax.train import base_config, parse_arg

VARIANTS = {
    # kind, residual SiLU layers per head, Hydra++'s decoder layer, loss
    "medusa": dict(kind="medusa", n_layers=1, prefix_layer=False, loss="ce"),
    "hydra": dict(kind="hydra", n_layers=1, prefix_layer=False, loss="ce"),
    "hydra++": dict(kind="hydra", n_layers=4, prefix_layer=True, loss="distill"),
}


def get_config(arg=None):
    a = parse_arg(arg, variant="medusa", runlocal=False, steps=0)
    if a["variant"] not in VARIANTS:
        raise ValueError(f"variant={a['variant']!r}; valid: {', '.join(VARIANTS)}")
    c = base_config()
    c.experiment = "hydra"
    # ~7 min per run on this 2-core machine (427-454 s measured, sharing the cores)
    c.total_steps = 600
    c.batch_size = 8
    c.optimizer = "adam"
    c.lr = 3e-3
    c.schedule = "warmup_cosine"
    c.warmup_steps = 30
    c.grad_clip = 1.0
    c.eval_every = 200
    c.steps_per_call = 25
    c.checkpoint_every = 200
    c.keep_checkpoints = 1
    t = c.task
    t.variant = a["variant"]
    t.base = "attn2l_code"
    t.n_heads = 4
    t.update(VARIANTS[a["variant"]])
    t.max_files = 0  # 0 = the base's whole corpus (mechjax.zoo.data.build, cached)
    t.eval_windows = 32  # held-out windows of n_ctx tokens for the per-head accuracy
    t.greedy_prompts = 64  # held-out prompts for the greedy agreement / acceptance evals
    t.prompt_len = 64
    # the candidate tree of the acceptance eval (Medusa's "medusa_choices" format)
    t.tree = ((0,), (1,), (2,), (0, 0), (0, 1), (1, 0), (0, 0, 0), (0, 0, 1), (0, 1, 0),
              (1, 0, 0), (0, 0, 0, 0))  # fmt: skip
    if a["runlocal"]:
        c.total_steps, c.warmup_steps, c.eval_every, c.steps_per_call = 4, 1, 2, 2
        c.batch_size, c.checkpoint_every = 4, 0
        t.update(max_files=6, eval_windows=2, greedy_prompts=4, prompt_len=16)
    if a["steps"]:
        c.total_steps = a["steps"]
    return ml_collections.ConfigDict(c)
