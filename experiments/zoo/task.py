"""Zoo models: small LMs trained here on standard-library code (optionally mixed with tasks).

`build(config) -> Task` for `mechjax run configs/zoo/<name>.py`. The model is a
`mj.Transformer` sized by `config.task`; data come from `mechjax.zoo.data.build`. Evals:
held-out code loss (vs the unigram baseline), induction and previous-token scores of every
head on repeated random tokens and, for mixture models, accuracy and logit difference
(clean and corrupted) of every task. A curriculum is `config.task.phases`
(`mechjax.zoo.config`): per phase, a data mixture or packed short windows picked by
`curriculum_batch`, and interventions handed to the loop as `Task.interventions`. Configs
with `task.probe` build one of the probes of this folder instead. The report writes `tokenizer.json` and `data.json`
into the workdir, which `python -m mechjax.zoo export` ships with the weights.
"""

from __future__ import annotations

import functools
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

import mechjax as mj
from mechjax.analysis import detectors
from mechjax.analysis.metrics import next_token_loss
from mechjax.data import repeated_tokens
from mechjax.data import tasks as T
from mechjax.train import ConfigError, ModelSpec, Task
from mechjax.zoo import config as ZC
from mechjax.zoo import data as D

PROBES = ("induction", "lookup", "colored")  # experiments/zoo/<name>_probe.py


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
        tie_embeddings=bool(t.get("tie_embeddings", False)),
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


def doc_ids(stream, bos: int):
    """Document index of every stream position (`cumsum(stream == bos)`): each document of the
    stream starts with `bos`, so windows of these ids are `mj.document_mask` segments."""
    return jnp.cumsum(jnp.asarray(stream) == bos, dtype=jnp.int32)


def curriculum_batch(
    phases,
    stream,
    phase_stream,
    batch_size: int,
    L: int,
    vocab: int,
    repeat_frac,
    repeat_min,
    bos: int | None = None,
    names: dict | None = None,
    copy_pool=None,
):
    """`batch(key, step)` of a zoo model with curriculum `phases` (checked by
    `zoo.config.check_zoo_phases`): `[batch, L]` windows of `stream` (`zoo.data.windows`);
    inside a mixture phase the same windows' positions drawn from `phase_stream`; inside a
    packed phase, rows of independent short windows (`zoo.data.packed_windows`, of the
    phase's stream or random tokens) and their `segments`, on every row or on the first
    `round(packed_rows * batch_size)` (the rest keep the phase's full windows). Every source
    is drawn at every step (cheap gathers) and the phase masks pick one, so the step is one
    program. Batches
    have `segments` (zeros outside packed phases) iff some phase is packed.

    With `bos` (`task.doc_mask`), every batch has `segments`: the documents of each window
    (`doc_ids`, drawn with the same key, so a repeated row's copy carries its source's
    documents), and the loss and attention stay inside each document, as at evaluation, where
    every task prompt is alone.

    With `names` ({"slots", "phase_slots", "pool", "frac", "bos"}: `zoo.data.name_slots` of
    `stream` and `phase_stream`, the substitutes' ids, the share of documents), the names of
    that share of the task documents become random word tokens at every step
    (`zoo.data.substitute_names`; a phase's `name_slot_frac` replaces the share inside it);
    with `names["noise"]` each other word of those documents becomes a random lowercase word
    with probability `names["noise_p"]` (`zoo.data.substitute_words`); packed phases are left
    alone. `copy_pool` (token ids,
    `zoo.data.copy_pool_ids`) is what a packed phase with `packed_source="names"` draws from."""
    mixed = [bool(p["task_weights"] or p["task_options"]) for p in phases]
    packed = [p["windows"] == "packed" for p in phases]
    docs = None if bos is None else doc_ids(stream, bos)
    if names:
        slot_docs = doc_ids(stream, names["bos"])
        phase_slot_docs = None if phase_stream is None else doc_ids(phase_stream, names["bos"])
    phase_docs = None if bos is None or phase_stream is None else doc_ids(phase_stream, bos)
    packed_rows = []  # per packed phase: [batch, 1] True on the rows it packs (the first ones)
    for i, p in enumerate(phases):
        n = round(p.get("packed_rows", 1.0) * batch_size) if packed[i] else 0
        if packed[i] and n < 1:
            raise ConfigError(
                f"config.task.phases[{i}]: packed_rows={p['packed_rows']} packs no row of a "
                f"batch of {batch_size}; use at least 1/{batch_size}."
            )
        packed_rows.append((jnp.arange(batch_size) < n)[:, None])

    def batch(key, step):
        k_long, k_short = jax.random.split(key)
        toks = D.windows(k_long, stream, batch_size, L, repeat_frac, repeat_min)
        segments = jnp.zeros((batch_size, L), jnp.int32)
        if docs is not None:
            segments = D.windows(k_long, docs, batch_size, L, repeat_frac, repeat_min)
        if any(mixed):  # the same windows' positions, drawn from the phase stream
            first = D.windows(k_long, phase_stream, batch_size, L, repeat_frac, repeat_min)
            on = functools.reduce(
                jnp.logical_or, [ZC.in_phase(p, step) for p, m in zip(phases, mixed) if m]
            )
            toks = jnp.where(on, first, toks)
            if phase_docs is not None:
                seg = D.windows(k_long, phase_docs, batch_size, L, repeat_frac, repeat_min)
                segments = jnp.where(on, seg, segments)
        if names:
            sl = D.windows(k_long, names["slots"], batch_size, L, repeat_frac, repeat_min)
            dc = D.windows(k_long, slot_docs, batch_size, L, repeat_frac, repeat_min)
            if any(mixed):
                psl = D.windows(
                    k_long, names["phase_slots"], batch_size, L, repeat_frac, repeat_min
                )
                pdc = D.windows(k_long, phase_slot_docs, batch_size, L, repeat_frac, repeat_min)
                sl, dc = jnp.where(on, psl, sl), jnp.where(on, pdc, dc)
            for p, is_packed in zip(phases, packed):
                if is_packed:
                    sl = jnp.where(ZC.in_phase(p, step), 0, sl)
            frac = jnp.float32(names["frac"])
            for p in phases:  # a phase's own share replaces the task's inside the phase
                if "name_slot_frac" in p:
                    frac = jnp.where(ZC.in_phase(p, step), p["name_slot_frac"], frac)
            k_names = jax.random.fold_in(key, 1)
            if "noise" in names:  # word noise first: it never touches a name slot
                nz = D.windows(k_long, names["noise"], batch_size, L, repeat_frac, repeat_min)
                if any(mixed):
                    pnz = D.windows(
                        k_long, names["phase_noise"], batch_size, L, repeat_frac, repeat_min
                    )
                    nz = jnp.where(on, pnz, nz)
                for p, is_packed in zip(phases, packed):
                    if is_packed:
                        nz = jnp.where(ZC.in_phase(p, step), False, nz)
                k_noise = jax.random.fold_in(key, 2)
                toks = D.substitute_words(k_noise, toks, nz, names["noise_pool"], names["noise_p"])
            toks = D.substitute_names(k_names, toks, sl, dc, names["pool"], frac)
        if not any(packed) and docs is None:
            return {"tokens": toks}
        for p, m, is_packed, rows in zip(phases, mixed, packed, packed_rows):
            if not is_packed:
                continue
            rv = (p["packed_vocab"] or vocab) if p["packed_source"] == "random" else 0
            pool = copy_pool if p["packed_source"] == "names" else None
            src = phase_stream if m else stream
            short, seg = D.packed_windows(
                k_short, src, batch_size, L, p["packed_len"], random_vocab=rv, pool=pool
            )
            on = ZC.in_phase(p, step) & rows
            toks, segments = jnp.where(on, short, toks), jnp.where(on, seg, segments)
        return {"tokens": toks, "segments": segments}

    return batch


def _name_substitution(t, data, options, bos):
    """`curriculum_batch`'s `names` for `task.name_slots` (tasks whose train-split names are
    replaced by random word tokens in a `task.name_slot_frac` share of their documents at
    every step), or None. With `task.word_noise` > 0 it also holds the word-noise positions
    (`zoo.data.noise_positions`), pool (`zoo.data.noise_word_ids`) and probability."""
    tasks = tuple(t.get("name_slots", ()) or ())
    if not tasks:
        if float(t.get("word_noise", 0.0)):
            raise ConfigError(
                f"config.task.word_noise={t.word_noise} needs task.name_slots (the tasks whose "
                "documents get the noise), e.g. name_slots=('ioi',)."
            )
        return None
    noise = float(t.get("word_noise", 0.0))
    if not 0.0 <= noise < 1.0:
        raise ConfigError(
            f"config.task.word_noise={noise}: the probability that a word becomes noise must "
            "be in [0, 1)."
        )
    frac = float(t.get("name_slot_frac", 0.5))
    if not 0.0 < frac <= 1.0 or not t.task_share > 0:
        raise ConfigError(
            f"config.task.name_slots={list(tasks)} needs task_share > 0 and 0 < name_slot_frac "
            f"<= 1 (got task_share={t.task_share}, name_slot_frac={frac})."
        )
    kind = str(t.get("name_slot_pool", "words"))
    if kind not in D.NAME_SLOT_POOLS:
        raise ConfigError(
            f"config.task.name_slot_pool={kind!r}; valid: {', '.join(D.NAME_SLOT_POOLS)}."
        )
    slot_ids, pool = D.name_slot_ids(data.tokenizer, tasks, options, kind)
    slots = D.name_slots(data.train, slot_ids, bos)
    phase = None if data.train_early is None else D.name_slots(data.train_early, slot_ids, bos)
    out = {
        "slots": jnp.asarray(slots, jnp.int32),
        "phase_slots": None if phase is None else jnp.asarray(phase, jnp.int32),
        "pool": jnp.asarray(pool),
        "frac": frac,
        "bos": bos,
    }
    if noise > 0:
        word_ids, noise_pool = D.noise_word_ids(data.tokenizer, tasks, options)
        out["noise"] = jnp.asarray(D.noise_positions(data.train, word_ids, slots, bos))
        out["phase_noise"] = None
        if data.train_early is not None:
            out["phase_noise"] = jnp.asarray(
                D.noise_positions(data.train_early, word_ids, phase, bos)
            )
        out["noise_pool"], out["noise_p"] = jnp.asarray(noise_pool), noise
    return out


def _copy_pool(phases, data, task_names, options):
    """The name tokens a `packed_source="names"` phase draws from (`zoo.data.copy_pool_ids`
    of the run's tasks), or None when no phase does."""
    if not any(p.get("packed_source") == "names" for p in phases):
        return None
    return jnp.asarray(D.copy_pool_ids(data.tokenizer, task_names, options))


def uncovered_names(phases, tokenizer, task_names, options) -> list[str]:
    """One line per random-token packed phase (`packed_source="random"`, `packed_vocab` > 0)
    whose ids `[1, packed_vocab)` leave out some one-token names of the tasks' splits (the
    tokens a copying warm-up is meant to teach as copy targets): how many of each split's,
    and the `packed_vocab` that would hold them all. Empty when every name is covered or no
    task has names. The ids depend on the tokenizer, which depends on the data build's keys
    (`task.lexicon_templates` moves them), so a range chosen for one build can miss names of
    another."""
    out = []
    for i, p in enumerate(phases):
        if p.get("windows") != "packed" or p.get("packed_source") != "random":
            continue
        rv = p.get("packed_vocab") or 0
        if not rv:
            continue
        missed, top = {}, 0
        for sp in ("train", "val", "test"):
            ids = set()
            for t in task_names:
                names = T.split_set(t, sp, (options or {}).get(t)).get("name")
                ids |= D._one_token_ids(tokenizer, names) if names else set()
            if ids:
                top = max(top, max(ids))
                n = sum(1 for j in ids if j >= rv)
                if n:
                    missed[sp] = f"{n} of {len(ids)}"
        if missed:
            parts = ", ".join(f"{sp} {v}" for sp, v in missed.items())
            out.append(
                f"config.task.phases[{i}]: packed_vocab={rv} leaves one-token names out of the "
                f"warm-up's random tokens ({parts}); packed_vocab={top + 1} would hold them all."
            )
    return out


def lm_loss(model):
    """The zoo models' loss: mean next-token loss under the loop's interventions (a phase's,
    gated by the step); with `segments` (packed windows), behind `mj.document_mask` and
    without the loss of a window's last token on the next window's first."""

    def loss(params, batch, ivs):
        mask = mj.document_mask(batch["segments"]) if "segments" in batch else None
        ivs = tuple(ivs) if isinstance(ivs, (tuple, list)) else ()
        logits, _ = mj.run(model, params, batch["tokens"], interventions=ivs, attention_mask=mask)
        toks = batch["tokens"]
        if mask is None:
            return next_token_loss(logits, toks).mean(), {}
        same = batch["segments"][:, 1:] == batch["segments"][:, :-1]
        nll = next_token_loss(logits, toks)
        return (nll * same).sum() / same.sum(), {}

    return loss


def _probe_module(name: str):
    import importlib

    if name not in PROBES:
        raise ConfigError(f"config.task.probe={name!r}: valid probes are {', '.join(PROBES)}.")
    return importlib.import_module(f"experiments.zoo.{name}_probe")


def build(config) -> Task:
    t = config.task
    if t.get("probe"):  # a probe of experiments/zoo/: its own model, data and evals
        return _probe_module(t.probe).build(config)
    # the curriculum: one list of phases (mechjax/zoo/config.py); a phase mixture is one more
    # stream of the same data build
    ZC.reject_legacy_keys(t)
    phases = ZC.check_zoo_phases(t, config.total_steps)
    _, early_o = (D.plain(m) for m in ZC.phase_mixture(phases))
    options = D.plain(t.task_options)
    data = D.run_data(config)  # the base mixture and the phases' mixture
    # split data: training-time evals (and every choice made while developing) use "val";
    # the model card reports "test" (python -m mechjax.zoo table)
    eval_split = D.EVAL_SPLIT if t.get("split_data", False) else None
    vocab = data.tokenizer.get_vocab_size()
    cfg = model_config(t, vocab)
    model = mj.Transformer(cfg)
    ZC.check_phase_sites(phases, model)
    L = t.n_ctx
    stream = jnp.asarray(data.train.astype(np.int32))
    early_stream = None if data.train_early is None else jnp.asarray(data.train_early, jnp.int32)
    # fixed held-out windows, evenly spaced over the held-out files
    starts = np.linspace(0, len(data.heldout) - L - 1, t.eval_windows).astype(np.int64)
    held = np.stack([data.heldout[s : s + L] for s in starts]).astype(np.int32)
    bos = data.tokenizer.token_to_id(D.BOS)
    rep = repeated_tokens.fixed(0, t.eval_windows, t.induction_length, vocab, bos)  # numpy
    task_names = (D.check_tasks(t.get("tasks", ())) or D.MIXTURE_TASKS) if t.task_share > 0 else ()
    batches = {}
    if task_names:
        batches = eval_batches(
            data.tokenizer, task_names, t.eval_per_task, options=options, split=eval_split
        )
    # the phase mixture's forms of the tasks whose options it changes (accuracy only, to watch
    # what the curriculum teaches; named "_early" as before phases had their own keys)
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

    for line in uncovered_names(phases, data.tokenizer, task_names, options):
        print(f"note: {line}", file=sys.stderr)
    batch = curriculum_batch(
        phases,
        stream,
        early_stream,
        batch_size,
        L,
        vocab,
        t.repeat_frac,
        t.repeat_min,
        bos=bos if t.get("doc_mask", False) else None,
        names=_name_substitution(t, data, options, bos),
        copy_pool=_copy_pool(phases, data, task_names, options),
    )

    loss = lm_loss(model)

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
        interventions=ZC.phase_interventions(phases),  # each gated by its phase's steps
        evaluate=evaluate,
        models=(ModelSpec("model", seed=0),),
        report=report,
    )
