"""Zoo models: small LMs trained here on standard-library code (optionally mixed with tasks).

`build(config) -> Task` for `mechjax run configs/zoo/<name>.py`. The model is a
`mj.Transformer` sized by `config.task`; data come from `mechjax.zoo.data.build`. Evals:
held-out code loss (vs the unigram baseline), induction and previous-token scores of every
head on repeated random tokens and, for mixture models, accuracy and logit difference
(clean and corrupted) of every task. The report writes `tokenizer.json` and `data.json`
into the workdir, which `python -m mechjax.zoo export` ships with the weights.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

import mechjax as mj
from mechjax.analysis import detectors
from mechjax.analysis.metrics import next_token_loss
from mechjax.data import repeated_tokens
from mechjax.data import tasks as T
from mechjax.train import ConfigError, ModelSpec, Task
from mechjax.zoo import data as D


def model_config(t, vocab: int) -> mj.TransformerConfig:
    """The zoo model of `config.task` (attention-only when `d_mlp == 0`)."""
    return mj.TransformerConfig(
        d_model=t.d_model,
        n_layers=t.n_layers,
        n_heads=t.n_heads,
        d_head=t.d_model // t.n_heads,
        d_mlp=t.d_mlp if t.d_mlp else None,
        attn_only=not t.d_mlp,
        d_vocab=vocab,
        n_ctx=t.n_ctx,
        normalization_type="LN",
        positional_embedding_type=t.positional_embedding_type,
        act_fn="gelu_new",
        name=t.name,
    )


def eval_batches(
    tokenizer, task_names, n: int, seed: int = D.EVAL_SEED, options=None, split=None
) -> dict:
    """Encoded eval prompts per task: with split data the tasks' `split` (training-time
    evals use "val"), else the legacy generators at a seed disjoint from the training ones."""
    return {
        name: T.encode(D.task_prompts(name, n, seed, options, split), tokenizer)
        for name in task_names
    }


def build(config) -> Task:
    t = config.task
    options = D.plain(t.task_options)
    early_w, early_o = D.plain(t.early_task_weights), D.plain(t.early_task_options)
    if bool(t.early_steps > 0) != bool(early_w or early_o):
        raise ConfigError(
            f"zoo config: early_steps={t.early_steps} with early_task_weights={early_w} and "
            f"early_task_options={early_o}; a curriculum needs early_steps > 0 and at least one "
            "of the two (or set early_steps = 0 and leave both empty)."
        )
    if not 0 <= t.early_from < max(t.early_steps, 1):
        raise ConfigError(
            f"zoo config: early_from={t.early_from} with early_steps={t.early_steps}; the "
            "curriculum phase covers steps early_from .. early_steps - 1, so early_from must be "
            "in [0, early_steps) (0 when there is no phase)."
        )
    data = D.build(**D.build_kwargs(t))
    # split data: training-time evals (and every choice made while developing) use "val";
    # the model card reports "test" (python -m mechjax.zoo table)
    eval_split = D.EVAL_SPLIT if t.get("split_data", False) else None
    vocab = data.tokenizer.get_vocab_size()
    cfg = model_config(t, vocab)
    model = mj.Transformer(cfg)
    L = t.n_ctx
    stream = jnp.asarray(data.train.astype(np.int32))
    early_stream = None if data.train_early is None else jnp.asarray(data.train_early, jnp.int32)
    # fixed held-out windows, evenly spaced over the held-out files
    starts = np.linspace(0, len(data.heldout) - L - 1, t.eval_windows).astype(np.int64)
    held = np.stack([data.heldout[s : s + L] for s in starts]).astype(np.int32)
    bos = data.tokenizer.token_to_id(D.BOS)
    rep = repeated_tokens.fixed(0, t.eval_windows, t.induction_length, vocab, bos)  # numpy
    task_names = tuple(D.MIXTURE_TASKS) if t.task_share > 0 else ()
    batches = {}
    if task_names:
        batches = eval_batches(
            data.tokenizer, task_names, t.eval_per_task, options=options, split=eval_split
        )
    # the first phase's forms of the tasks whose options it changes (accuracy only, to watch
    # what the curriculum teaches)
    _, early_options = D.early_mixture({}, options, {}, early_o)
    early_batches = {
        f"{name}_early": b
        for name, b in eval_batches(
            data.tokenizer,
            sorted(early_o),
            t.eval_per_task,
            options=early_options,
            split=eval_split,
        ).items()
    }
    batch_size = config.batch_size

    def init(key):
        return mj.init(model, key, jnp.zeros((1, L), jnp.int32))

    def batch(key, step):
        k_long, k_short = jax.random.split(key)
        toks = D.windows(k_long, stream, batch_size, L, t.repeat_frac, t.repeat_min)
        if early_stream is not None:  # the same windows' positions, drawn from the early stream
            first = D.windows(k_long, early_stream, batch_size, L, t.repeat_frac, t.repeat_min)
            in_phase = (step >= t.early_from) & (step < t.early_steps)
            toks = jnp.where(in_phase, first, toks)
        if not t.short_len:
            return {"tokens": toks}
        rv = (t.short_vocab or vocab) if t.short_source == "random" else 0
        short, seg = D.packed_windows(k_short, stream, batch_size, L, t.short_len, random_vocab=rv)
        on = step < t.short_steps  # both are cheap gathers; the phase picks one
        return {
            "tokens": jnp.where(on, short, toks),
            "segments": jnp.where(on, seg, jnp.zeros_like(seg)),
            "warmup": on,
        }

    def loss(params, batch, ivs):
        mask = mj.document_mask(batch["segments"]) if "segments" in batch else None
        ivs = tuple(ivs) if isinstance(ivs, (tuple, list)) else ()
        if "warmup" in batch:  # layers switched off during the warm-up (their output zeroed)
            off = [mj.ablate(f"blocks.{i}.hook_attn_out") for i in t.warmup_off_layers]
            if t.warmup_off_mlps:
                off += [mj.ablate(f"blocks.{i}.hook_mlp_out") for i in range(t.n_layers)]
            ivs += tuple(iv.when(batch["warmup"]) for iv in off)
        logits, _ = mj.run(model, params, batch["tokens"], interventions=ivs, attention_mask=mask)
        toks = batch["tokens"]
        if mask is None:
            return next_token_loss(logits, toks).mean(), {}
        # a window's last token does not predict the next window's first
        same = batch["segments"][:, 1:] == batch["segments"][:, :-1]
        nll = next_token_loss(logits, toks)
        return (nll * same).sum() / same.sum(), {}

    def evaluate(params, cond, key, ivs):
        ivs = ivs if isinstance(ivs, tuple) else ()
        logits, _ = mj.run(model, params, held, interventions=ivs)
        out = {"heldout_loss": next_token_loss(logits, held).mean()}
        out["induction_score"] = detectors.induction_score(model, params, rep)
        out["prev_token_score"] = detectors.previous_token_score(model, params, rep)
        for name, b in batches.items():
            lc, _ = mj.run(model, params, b.tokens, interventions=ivs)
            lx, _ = mj.run(model, params, b.corrupted, interventions=ivs)
            out[f"acc/{name}"] = T.accuracy(lc, b).mean()
            out[f"ld/{name}"] = T.logit_diff(lc, b).mean()
            out[f"ld_corrupted/{name}"] = T.logit_diff(lx, b).mean()
        for name, b in early_batches.items():
            lc, _ = mj.run(model, params, b.tokens, interventions=ivs)
            out[f"acc/{name}"] = T.accuracy(lc, b).mean()
        return out

    def report(records, workdir):
        data.tokenizer.save(os.path.join(workdir, "tokenizer.json"))
        info = dict(data.info, unigram_loss=data.unigram_loss)
        with open(os.path.join(workdir, "data.json"), "w") as f:
            json.dump(info, f, indent=1)
        evals = [r for r in records if r.get("split") == "eval"]
        if not evals:
            return {}
        last = evals[-1]
        ind = np.asarray(last["induction_score"])
        pt = np.asarray(last["prev_token_score"])
        summary = {
            "step": last["step"],
            "heldout_loss": float(last["heldout_loss"]),
            "unigram_loss": data.unigram_loss,
            "max_induction_score": float(ind.max()),
            "max_prev_token_score": float(pt.max()),
        }
        lines = [
            f"## {t.name}: step {last['step']}",
            "",
            f"held-out code loss {summary['heldout_loss']:.3f} nats/token "
            f"(unigram baseline {data.unigram_loss:.3f})",
            "",
            "| layer | induction score per head | previous-token score per head |",
            "|---|---|---|",
        ]
        for layer in range(ind.shape[0]):
            a = " ".join(f"{x:.2f}" for x in ind[layer])
            b = " ".join(f"{x:.2f}" for x in pt[layer])
            lines.append(f"| {layer} | {a} | {b} |")
        if task_names:
            lines += [
                "",
                "| task | accuracy | logit diff | logit diff (corrupted) |",
                "|---|---|---|---|",
            ]
            for name in task_names:
                acc, ld, lx = (float(last[f"{k}/{name}"]) for k in ("acc", "ld", "ld_corrupted"))
                summary[f"acc/{name}"] = acc
                summary[f"ld/{name}"] = ld
                summary[f"ld_corrupted/{name}"] = lx
                lines.append(f"| {name} | {acc:.3f} | {ld:.2f} | {lx:.2f} |")
        summary["_markdown"] = "\n".join(lines)
        return summary

    return Task(
        model=model,
        init=init,
        batch=batch,
        loss=loss,
        evaluate=evaluate,
        models=(ModelSpec("model", seed=0),),
        report=report,
    )
