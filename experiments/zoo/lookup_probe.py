"""Does a lookup by key form? A probe on associative recall over random tokens.

Colored objects asks for the color of a named object: "... a blue chair, a red pen ... The
chair is" -> " blue". Stripped of the words, that is associative recall. Each sequence here
lists `--pairs` key-value pairs and then asks for every key once, in random order:

    forward:  k1 v1 ; k2 v2 ; k3 v3 ;  k2 ? v2  k1 ? v1  k3 ? v3
    reverse:  v1 k1 ; v2 k2 ; v3 k3 ;  k2 ? v2  k1 ? v1  k3 ? v3

Keys come from 20 tokens and values from 10, like the task's 20 objects and 10 colors. The
values of one sequence are distinct, and so are its keys. `--gap 1` puts one token ("?") between the
asked key and its value. That is the shape of the task, where " is" follows the object, so the
lookup must be keyed on the *previous* token. `--gap 0` lets an induction head answer (forward)
or a head that copies what sits before the match (reverse). `--gap mix` asks half of the
questions as "k ? v" and the other half as "? k v" (same length, answer right after the key),
to see whether the easy form teaches the hard one. A curriculum is a phase of another form,
`phases=[dict(start=0, end=N, gap="0")]` (the config's `gap_from=N`): the gap-0 form before
step N, the base form after. The loss is on the values of the questions only. Every
`every` steps (the config's `eval_every`) the probe records the training loss and the
accuracy on 512 held-out sequences: for the first question (chance 1 / pairs), for all of
them (the last can be answered by elimination) and, with gap "mix", for the first question
when it has the gap; for each phase's form, also the first-question accuracy on that form.

`build(config) -> Task` for `configs/zoo/probe_lookup.py` (the zoo task dispatches on
`config.task.probe`):

    mechjax run configs/zoo/probe_lookup.py:order=reverse,gap=1 --workdir runs/probe_lookup
    mechjax run configs/zoo/probe_lookup.py:order=forward,gap=0 --workdir runs/probe_lookup_f0

See experiments/zoo/README.md ("Colored objects").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import mechjax as mj
from mechjax.analysis.metrics import next_token_loss
from mechjax.train import ConfigError, ModelSpec, Task
from mechjax.zoo import config as ZC

SEP, ASK, KEYS0, N_KEYS, VALUES0, N_VALUES = 1, 2, 10, 20, 40, 10  # token ids (0 pads)
DATA_KEYS = {"gap": "the question form during the phase: '0', '1' or 'mix' (module docstring)"}
N_HELD = 512  # held-out sequences per form


def sample(key, batch: int, pairs: int, order: str, gap):
    """`[batch, length(pairs, gap)]` token ids (gap "mix" counts as 1), the
    positions of the answers and, per question, whether a gap separates it from its key."""
    kk, kv, ko, kg = jax.random.split(key, 4)
    keys = jnp.argsort(jax.random.uniform(kk, (batch, N_KEYS)), 1)[:, :pairs] + KEYS0
    values = jnp.argsort(jax.random.uniform(kv, (batch, N_VALUES)), 1)[:, :pairs] + VALUES0
    sep = jnp.full((batch, pairs), SEP)
    listed = (keys, values, sep) if order == "forward" else (values, keys, sep)
    asked = jnp.argsort(jax.random.uniform(ko, (batch, pairs)), 1)
    rows = jnp.arange(batch)[:, None]
    ask, gapped = jnp.full((batch, pairs), ASK), jnp.full((batch, pairs), gap == 1)
    question = [keys[rows, asked]] + [ask] * (gap == 1) + [values[rows, asked]]
    if gap == "mix":
        gapped = jax.random.bernoulli(kg, 0.5, (batch, pairs))
        question = [jnp.where(gapped, keys[rows, asked], ask),
                    jnp.where(gapped, ask, keys[rows, asked]), values[rows, asked]]  # fmt: skip
    q = len(question)
    toks = jnp.concatenate(
        [jnp.stack(listed, -1).reshape(batch, -1), jnp.stack(question, -1).reshape(batch, -1)], 1
    )
    answers = 3 * pairs + q * np.arange(pairs) + q - 1
    return toks, answers, gapped


def length(pairs: int, gap) -> int:
    """Tokens of a sequence: 3 per listed pair, 2 or 3 per question."""
    return (5 + (gap != 0)) * pairs


def gap_of(value, what: str):
    """A config's gap ("0", "1", "mix", or the ints 0 / 1) as `sample` takes it."""
    g = str(value)
    if g not in ("0", "1", "mix"):
        raise ConfigError(f"{what}={value!r}: valid gaps are '0', '1' and 'mix'.")
    return g if g == "mix" else int(g)


def answer_mask(pairs: int, gap, n: int) -> np.ndarray:
    """`[n - 1]` float: 1 where `next_token_loss[:, t]` predicts an answer (token t + 1)."""
    _, answers, _ = sample(jax.random.key(0), 1, pairs, "forward", gap)
    mask = np.zeros(n - 1, np.float32)
    mask[answers - 1] = 1
    return mask


def model_config(t, n_ctx: int) -> mj.TransformerConfig:
    return mj.TransformerConfig(
        d_model=t.d_model, n_layers=t.layers, n_heads=t.heads, d_head=t.d_model // t.heads,
        attn_only=not t.d_mlp, d_mlp=t.d_mlp or None, d_vocab=VALUES0 + N_VALUES, n_ctx=n_ctx,
        positional_embedding_type="rotary", name="lookup_probe",
    )  # fmt: skip


def build(config) -> Task:
    t = config.task
    if not 2 <= t.pairs <= N_VALUES:
        raise ConfigError(f"lookup probe: pairs={t.pairs} must be in [2, {N_VALUES}].")
    if t.order not in ("forward", "reverse"):
        raise ConfigError(f"lookup probe: order={t.order!r}; valid: 'forward', 'reverse'.")
    gap = gap_of(t.gap, "config.task.gap")
    phases = ZC.check_phases(t.get("phases", ()), config.total_steps, DATA_KEYS)
    phase_gaps = [gap_of(p["gap"], f"config.task.phases[{i}].gap") if "gap" in p else None
                  for i, p in enumerate(phases)]  # fmt: skip
    forms = list(dict.fromkeys([gap] + [g for g in phase_gaps if g is not None]))
    n = max(length(t.pairs, g) for g in forms)  # every form padded to the longest
    model = mj.Transformer(model_config(t, n))
    ZC.check_phase_sites(phases, model)
    masks = {g: jnp.asarray(answer_mask(t.pairs, g, n)) for g in forms}
    held = {}
    for g in forms:  # fixed held-out sequences of each form
        toks, answers, gapped = sample(jax.random.key(10**6 + config.seed), N_HELD, t.pairs,
                                       t.order, g)  # fmt: skip
        held[g] = (np.asarray(toks), answers, np.asarray(gapped[:, 0]))
    batch_size = config.batch_size

    def padded(key, g):
        toks = sample(key, batch_size, t.pairs, t.order, g)[0]
        return jnp.pad(toks, ((0, 0), (0, n - toks.shape[1])))

    def init(key):
        return mj.init(model, key, jnp.zeros((1, n), jnp.int32))

    def batch(key, step):
        toks, mask = padded(key, gap), masks[gap]
        for p, g in zip(phases, phase_gaps):
            if g is not None:
                on = ZC.in_phase(p, step)
                toks, mask = jnp.where(on, padded(key, g), toks), jnp.where(on, masks[g], mask)
        return {"tokens": toks, "mask": jnp.broadcast_to(mask, (batch_size, n - 1))}

    def loss(params, batch, ivs):
        logits, _ = mj.run(model, params, batch["tokens"], interventions=tuple(ivs))
        nll = next_token_loss(logits, batch["tokens"])
        return (nll * batch["mask"]).sum() / batch["mask"].sum(), {}

    def hits(params, g, ivs):
        toks, answers, _ = held[g]
        logits, _ = mj.run(model, params, toks, interventions=ivs)
        return logits[:, answers - 1].argmax(-1) == toks[:, answers]  # [N_HELD, pairs]

    def evaluate(params, cond, key, ivs):
        hit = hits(params, gap, ivs)
        out = {"acc_first": hit[:, 0].mean(), "acc_all": hit.mean()}
        if gap == "mix":
            gapped = held[gap][2]
            out["acc_first_gapped"] = (hit[:, 0] * gapped).sum() / max(gapped.sum(), 1)
        for g in forms[1:]:
            out[f"acc_first/gap{g}"] = hits(params, g, ivs)[:, 0].mean()
        return out

    def report(records, workdir):
        return table(records, t.pairs, gap, forms[1:])

    return Task(
        model=model, init=init, batch=batch, loss=loss,
        interventions=ZC.phase_interventions(phases), evaluate=evaluate,
        models=(ModelSpec("model", seed=0),), report=report,
    )  # fmt: skip


def table(records, pairs: int, gap, phase_forms) -> dict:
    """The probe's table (one row per eval after step 0) and headline numbers."""
    train = {r["step"]: r for r in records if r.get("split") == "train"}
    evals = [r for r in records if r.get("split") == "eval" and r["step"] > 0]
    cols = ["acc_first", "acc_all"] + ["acc_first_gapped"] * (gap == "mix")
    cols += [f"acc_first/gap{g}" for g in phase_forms]
    names = {"acc_first": f"first question (chance {1 / pairs:.2f})", "acc_all": "all questions",
             "acc_first_gapped": "first question, with the gap",
             **{f"acc_first/gap{g}": f"first question, gap-{g} form" for g in phase_forms}}  # fmt: skip
    head = ["step", "answer loss"] + [names[c] for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    summary = {}
    for r in evals:
        loss = train.get(r["step"], {}).get("loss", float("nan"))
        cells = [str(r["step"]), f"{loss:.3f}"] + [f"{r[c]:.2f}" for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
        summary = {"step": r["step"], "loss": loss, **{c: float(r[c]) for c in cols}}
    summary["_markdown"] = "\n".join(lines)
    return summary
