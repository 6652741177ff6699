"""The config shared by `configs/zoo/*.py` (each sets the model and data sizes)."""

from __future__ import annotations

import ml_collections

from mechjax.train import base_config, parse_arg


def zoo_config(
    name: str,
    arg,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    variants: dict | None = None,
    **task,
):
    """A zoo config: `task` sets the model (`n_layers`, `d_model`, `n_heads`, `d_mlp`, `n_ctx`)
    and data (`vocab_size`, `task_share`, `n_per_task`, `task_weights`, `task_options`).
    Variants: `runlocal` (4 steps on a 40-file corpus, for CI), `steps=N`, and each name in
    `variants` ({flag: task overrides, or "steps"}, for the experiments a model card reports)."""
    variants = variants or {}
    a = parse_arg(arg, runlocal=False, steps=0, **{k: False for k in variants})
    for k, overrides in variants.items():
        if a[k]:
            task = {**task, **overrides}
    steps = task.pop("steps", steps)  # a variant may train longer
    c = base_config()
    c.experiment = "zoo"
    c.total_steps = steps
    c.batch_size = batch_size
    c.optimizer = "adamw"
    c.weight_decay = 0.01
    c.lr = lr
    c.schedule = "warmup_cosine"
    c.warmup_steps = 100
    c.grad_clip = 1.0
    c.eval_every = 250
    c.steps_per_call = 25
    c.checkpoint_every = 250
    c.keep_checkpoints = 2
    t = c.task
    t.name = name
    t.positional_embedding_type = "rotary"
    t.d_mlp = 0
    t.task_share = 0.0
    t.n_per_task = 0
    t.max_files = 0
    t.repeat_frac = 0.0  # fraction of training windows that repeat their first m tokens
    t.repeat_min = 16
    # curriculum: for the first `short_steps` steps each row packs independent `short_len`-token
    # windows (each repeating its first m ~ U[4, short_len // 2] tokens) behind a document mask
    t.short_len = 0  # 0 = off
    t.short_steps = 0
    t.short_source = "code"  # or "random": uniformly random tokens (synthetic copying warm-up)
    # layers whose attention output is zero-ablated (mj.ablate(...).when(step < short_steps))
    # during the warm-up, so that a deep model learns copying in its first layers
    t.warmup_off_layers = ()
    t.warmup_off_mlps = False  # also zero every MLP's output during the warm-up
    t.short_vocab = 0  # random warm-up tokens from [1, short_vocab) (0 = the whole vocabulary)
    t.task_weights = {}  # {task: w}: w times the examples of that task (zoo.data.build)
    t.task_options = {}  # {task: generator options}, used for training and evaluation
    # True: task texts from the tasks' "train" split (templates, names, items held out by
    # hash; `mechjax.data.tasks.splits`), evals during training on "val", cards on "test".
    # False: the legacy generators the first zoo was trained on (same templates everywhere).
    t.split_data = False
    # curriculum by task mix: for steps early_from .. early_steps - 1 the task examples are
    # drawn with these weights / options instead (zoo.data.build's early_task_*), e.g.
    # {"colored_objects": {"form": "recap"}}; evaluation always uses `task_options`
    t.early_from = 0
    t.early_steps = 0
    t.early_task_weights = {}
    t.early_task_options = {}
    t.eval_windows = 16
    t.eval_per_task = 64
    t.induction_length = 50
    t.update(task)
    if a["runlocal"]:
        c.total_steps, c.warmup_steps, c.eval_every, c.steps_per_call = 4, 1, 2, 2
        c.checkpoint_every = 0
        t.short_steps = min(t.short_steps, 2)
        t.early_steps = min(t.early_steps, 2)
        t.early_from = min(t.early_from, max(t.early_steps - 1, 0))
        # code-only models shrink to a 512-token vocabulary; mixture models keep theirs, since
        # every task word must stay one token (2,000 examples per task are enough for that)
        vocab = t.vocab_size if t.task_share > 0 else 512
        t.update(vocab_size=vocab, max_files=40, eval_windows=2, eval_per_task=4)
        t.update(induction_length=16, n_per_task=min(t.n_per_task, 2000))
    if a["steps"]:
        c.total_steps = a["steps"]
    return ml_collections.ConfigDict(c)


def zoo_optimizer(lr: float, steps: int):
    """The zoo configs' optimiser (AdamW with weight decay 0.01, warmup 100 + cosine, clip 1.0)
    for `steps` steps, for scripts that train outside `mechjax run` (the zoo's probes)."""
    from types import SimpleNamespace

    from mechjax.train.loop import make_optimizer

    return make_optimizer(SimpleNamespace(
        optimizer="adamw", lr=lr, weight_decay=0.01, grad_clip=1.0, schedule="warmup_cosine",
        warmup_steps=min(100, steps // 2), total_steps=steps))  # fmt: skip
