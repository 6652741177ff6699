"""Demo task: a small attention-only transformer learning to continue repeated random tokens.

Each sequence is `k` random tokens followed by the same `k` tokens again; the second half can
only be predicted by copying from the first (an induction-head task). Optionally head 0 of
layer 0 is zero-ablated during a step window given per model in its condition (a scheduled
clamp, gradients flowing through the ablated graph).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import mechjax as mj
from mechjax.data import repeated_tokens
from mechjax.train import ModelSpec, Task


def model_config(c) -> mj.TransformerConfig:
    return mj.TransformerConfig.from_variant(
        "attn-only-2l",
        d_model=c.d_model,
        n_heads=c.n_heads,
        n_layers=c.n_layers,
        d_vocab=c.d_vocab,
        n_ctx=2 * c.seq_half,
    )


def _second_half_stats(logits, tokens, half: int):
    """Loss and accuracy of predicting the repeated half from the positions before it."""
    logp = jax.nn.log_softmax(logits[:, half - 1 : -1].astype(jnp.float32))  # [batch, pos, d_vocab]
    target = tokens[:, half:]  # [batch, pos]
    nll = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
    correct = (logp.argmax(-1) == target).astype(jnp.float32)
    return nll.mean(), correct.mean(), correct.mean(0)


def build(config) -> Task:
    """Task for configs/demo/*.py (keys under config.task: see configs/demo/repeat.py)."""
    c = config.task
    model = mj.Transformer(model_config(c))
    half, vocab, bsz = c.seq_half, c.d_vocab, config.batch_size

    def init(key):
        return mj.init(model, key, jnp.zeros((1, 2 * half), jnp.int32))

    def batch(key, step):
        return {"tokens": repeated_tokens.fixed(key, bsz, half, vocab)}

    def interventions(cond, step):
        active = (step >= cond["start"]) & (step < cond["end"])
        return (mj.ablate("blocks.0.attn.hook_z", heads=[0]).when(active),)

    def loss(params, b, ivs):
        tokens = b["tokens"]
        logits, _ = mj.run(model, params, tokens, interventions=ivs)
        logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32))  # [batch, pos, d_vocab]
        nll = -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]
        total = nll.mean() * c.loss_scale
        rep_loss, rep_acc, _ = _second_half_stats(logits, tokens, half)
        return total, {"rep_loss": rep_loss, "rep_acc": rep_acc}

    def evaluate(params, cond, key, ivs):
        tokens = repeated_tokens.fixed(key, c.eval_batch, half, vocab)
        logits, _ = mj.run(model, params, tokens, interventions=ivs)
        rep_loss, rep_acc, by_pos = _second_half_stats(logits, tokens, half)
        return {"rep_loss": rep_loss, "rep_acc": rep_acc, "rep_acc_by_pos": by_pos}

    def report(records, workdir):
        final = {}
        for r in records:
            if r["split"] == "eval":
                final[r["model"]] = r["rep_acc"]
        lines = ["## Demo: repeated-token accuracy (second half, eval)", ""]
        lines += [f"- {m}: {v:.3f}" for m, v in final.items()]
        return {"final_rep_acc": final, "_markdown": "\n".join(lines)}

    windows = [tuple(w) for w in c.ablate_windows] or [(0, 0)]
    models = []
    for w in windows:
        for s in range(c.seeds):
            name = f"seed{s}" if len(windows) == 1 else f"ablate{w[0]}-{w[1]}_seed{s}"
            cond = {"start": np.int32(w[0]), "end": np.int32(w[1])}
            models.append(ModelSpec(name, seed=s, cond=cond))
    return Task(
        model=model,
        init=init,
        batch=batch,
        loss=loss,
        interventions=interventions,
        evaluate=evaluate,
        models=tuple(models),
        report=report,
    )
