"""Does the recap curriculum teach colored objects, and at what rate of examples?

A small model (2 layers, d_model 128, MLPs; the gpt4l_mix tokenizer) trains on
colored-objects texts from `mechjax.data.tasks`: in a phase of `form="recap"` (the config's
`switch=N`: steps 0 .. N - 1), recaps ("On the desk, I see a purple bag, a gray mug, and a
red chair. Colors: mug gray, bag purple, chair red."; eval recaps end at the queried object,
listed anywhere), outside it the question form the evals use ("... What color is the mug?
The mug is gray"). Each step's batch holds `colored` of these texts and `others` texts of
the other short tasks (IOI, greater-than, successor, factual, arithmetic, repeated), as in
the zoo's mixture. The loss is on every token. Every `every` steps (the config's
`eval_every`) the probe records the top-1 accuracy on 256 eval prompts of each form (the
zoo's eval seed; chance for the question is 1/3 of a model that names a color of the scene;
for the recap, 0.61 of one that names the scene's colors the recap has not listed yet).

`build(config) -> Task` for `configs/zoo/probe_colored.py` (the zoo task dispatches on
`config.task.probe`):

    mechjax run configs/zoo/probe_colored.py:switch=2000,steps=4500,colored=64 --workdir DIR
    mechjax run configs/zoo/probe_colored.py:switch=2500,steps=3500,colored=40,others=24 \
        --workdir DIR

See experiments/zoo/README.md ("Colored objects").
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import mechjax as mj
from mechjax import zoo
from mechjax.analysis.metrics import next_token_loss
from mechjax.data import tasks as T
from mechjax.train import ConfigError, ModelSpec, Task
from mechjax.zoo import config as ZC
from mechjax.zoo import data as D

OTHERS = ("ioi", "greater_than", "successor", "factual", "arithmetic", "repeated")
N_TEXTS = 20000  # distinct training texts per form (and for the other tasks together)
FORMS = ("question", "recap")
DATA_KEYS = {"form": "the colored-objects texts during the phase: 'question' or 'recap'"}


def encode_texts(texts: list[str], tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """`<|endoftext|>` + each text, right-padded: `(tokens [N, L], loss mask [N, L - 1])`."""
    bos = tokenizer.token_to_id(D.BOS)
    ids = [[bos] + tokenizer.encode(t).ids for t in texts]
    length = max(map(len, ids))
    toks = np.full((len(ids), length), bos, np.int32)
    mask = np.zeros((len(ids), length - 1), np.float32)
    for i, r in enumerate(ids):
        toks[i, : len(r)] = r
        mask[i, : len(r) - 1] = 1  # predicting tokens 1 .. len(r) - 1
    return toks, mask


def training_texts(form: str, n: int, seed: int) -> list[str]:
    """`n` colored-objects training texts (prompt + answer) of `form`."""
    return T.generate("colored_objects", n, seed=seed, form=form).training_texts()


def build(config) -> Task:
    t = config.task
    if t.form not in FORMS:
        raise ConfigError(f"colored probe: form={t.form!r}; valid forms: {', '.join(FORMS)}.")
    if t.colored < 1 or t.others < 0 or config.batch_size != t.colored + t.others:
        raise ConfigError(
            f"colored probe: colored={t.colored} must be >= 1, others={t.others} >= 0, and "
            f"config.batch_size={config.batch_size} their sum (the rows of a step)."
        )
    phases = ZC.check_phases(t.get("phases", ()), config.total_steps, DATA_KEYS)
    for i, p in enumerate(phases):
        if p.get("form", "question") not in FORMS:
            raise ConfigError(f"config.task.phases[{i}]: form={p['form']!r}; valid: {FORMS}.")
    base, _, tok = zoo.load("gpt4l_mix")  # its tokenizer; the model is trained from scratch
    texts = {
        "recap": training_texts("recap", t.n_texts, D.TRAIN_SEED),
        "question": training_texts("question", t.n_texts, D.TRAIN_SEED + 1),
        "others": D.task_texts(max(1, t.n_texts // len(OTHERS)), D.TRAIN_SEED, tasks=OTHERS),
    }
    enc = {k: encode_texts(v, tok) for k, v in texts.items()}
    n = max(x.shape[1] for x, _ in enc.values())
    data = {}
    for k, (x, m) in enc.items():  # pad every stream to one length
        pad = n - x.shape[1]
        x = np.pad(x, ((0, 0), (0, pad)), constant_values=tok.token_to_id(D.BOS))
        data[k] = (jnp.asarray(x), jnp.asarray(np.pad(m, ((0, 0), (0, pad)))))
    cfg = dataclasses.replace(
        base.cfg, n_layers=t.layers, d_model=t.d_model, n_heads=t.d_model // 32, d_head=32,
        d_mlp=4 * t.d_model, n_ctx=n, name="colored_probe",
    )  # fmt: skip
    model = mj.Transformer(cfg)
    ZC.check_phase_sites(phases, model)
    evals = {
        form: T.encode(D.task_prompts("colored_objects", 256, D.EVAL_SEED, {
            "colored_objects": {"form": form}}), tok)
        for form in FORMS
    }  # fmt: skip

    def rows(key, stream, count):
        x, m = data[stream]
        i = jax.random.randint(key, (count,), 0, x.shape[0])
        return x[i], m[i]

    def init(key):
        return mj.init(model, key, jnp.zeros((1, n), jnp.int32))

    def batch(key, step):
        toks, mask = rows(key, t.form, t.colored)
        for p in phases:
            if p.get("form", t.form) != t.form:  # the same rows of the phase's form
                on = ZC.in_phase(p, step)
                pt, pm = rows(key, p["form"], t.colored)
                toks, mask = jnp.where(on, pt, toks), jnp.where(on, pm, mask)
        if t.others:
            ot, om = rows(jax.random.fold_in(key, 1), "others", t.others)
            toks, mask = jnp.concatenate([toks, ot]), jnp.concatenate([mask, om])
        return {"tokens": toks, "mask": mask}

    def loss(params, batch, ivs):
        logits, _ = mj.run(model, params, batch["tokens"], interventions=tuple(ivs))
        nll = next_token_loss(logits, batch["tokens"])
        return (nll * batch["mask"]).sum() / batch["mask"].sum(), {}

    def evaluate(params, cond, key, ivs):
        out = {}
        for form, b in evals.items():
            logits, _ = mj.run(model, params, b.tokens, interventions=ivs)
            out[f"acc/{form}"] = T.accuracy(logits, b).mean()
        return out

    def form_at(step: int) -> str:
        return next((p["form"] for p in phases if "form" in p and p["start"] <= step < p["end"]),
                    t.form)  # fmt: skip

    def report(records, workdir):
        return table(records, form_at)

    return Task(
        model=model, init=init, batch=batch, loss=loss,
        interventions=ZC.phase_interventions(phases), evaluate=evaluate,
        models=(ModelSpec("model", seed=0),), report=report,
    )  # fmt: skip


def table(records, form_at) -> dict:
    """The probe's table (one row per eval after step 0; `phase`: the form of the step
    before it) and headline numbers."""
    train = {r["step"]: r for r in records if r.get("split") == "train"}
    evals = [r for r in records if r.get("split") == "eval" and r["step"] > 0]
    lines = ["| step | phase | loss | question accuracy (chance 0.33) | recap accuracy |",
             "|---|---|---|---|---|"]  # fmt: skip
    summary = {}
    for r in evals:
        loss = train.get(r["step"], {}).get("loss", float("nan"))
        q, c = float(r["acc/question"]), float(r["acc/recap"])
        lines.append(f"| {r['step']} | {form_at(r['step'] - 1)} | {loss:.3f} | {q:.2f} | {c:.2f} |")
        summary = {"step": r["step"], "loss": loss, "acc/question": q, "acc/recap": c}
    summary["_markdown"] = "\n".join(lines)
    return summary
