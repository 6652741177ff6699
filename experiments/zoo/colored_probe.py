"""Does the recap curriculum teach colored objects, and at what rate of examples?

A small model (2 layers, d_model 128, MLPs; the gpt4l_mix tokenizer) trains on
colored-objects texts from `mechjax.data.tasks`: before step `--switch`, recaps
("On the desk, I see a purple bag, a gray mug, and a red chair. Colors: mug gray, bag
purple, chair red."; eval recaps end at the queried object, listed anywhere), from then on the question form the evals use ("... What color is the mug?
The mug is gray"). Each step's batch holds `--colored` of these texts and `--others` texts of
the other short tasks (IOI, greater-than, successor, factual, arithmetic, repeated), as in
the zoo's mixture. The loss is on every token. Every `--every` steps the probe prints the
top-1 accuracy on 256 eval prompts of each form (the zoo's eval seed; chance for the
question is 1/3 of a model that names a color of the scene; for the recap, 0.61 of one that
names the scene's colors the recap has not listed yet).

    python experiments/zoo/colored_probe.py --switch 2000 --steps 4500 --colored 64
    python experiments/zoo/colored_probe.py --switch 2500 --steps 3500 --colored 40 --others 24

See experiments/zoo/README.md ("Colored objects").
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import mechjax as mj
from mechjax import zoo
from mechjax.analysis.metrics import next_token_loss
from mechjax.data import tasks as T
from mechjax.zoo import data as D
from mechjax.zoo.config import zoo_optimizer

OTHERS = ("ioi", "greater_than", "successor", "factual", "arithmetic", "repeated")
N_TEXTS = 20000  # distinct training texts per form (and for the other tasks together)


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--switch", type=int, default=2000, help="recaps before this step (0: none)")
    ap.add_argument("--steps", type=int, default=4500)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--colored", type=int, default=64, help="colored-objects texts per step")
    ap.add_argument("--others", type=int, default=0, help="other tasks' texts per step")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-texts", type=int, default=N_TEXTS, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.steps % a.every or a.switch % a.every or not 0 <= a.switch < a.steps:
        ap.error(f"--steps {a.steps} and --switch {a.switch} must be multiples of --every "
                 f"{a.every}, with 0 <= --switch < --steps")  # fmt: skip
    if a.colored < 1 or a.others < 0:
        ap.error(f"--colored {a.colored} must be >= 1 and --others {a.others} >= 0")

    base, _, tok = zoo.load("gpt4l_mix")  # its tokenizer; the model is trained from scratch
    texts = {
        "recap": training_texts("recap", a.n_texts, D.TRAIN_SEED),
        "question": training_texts("question", a.n_texts, D.TRAIN_SEED + 1),
        "others": D.task_texts(max(1, a.n_texts // len(OTHERS)), D.TRAIN_SEED, tasks=OTHERS),
    }
    enc = {k: encode_texts(v, tok) for k, v in texts.items()}
    length = max(t.shape[1] for t, _ in enc.values())
    data = {}
    for k, (t, m) in enc.items():  # pad every stream to one length
        pad = length - t.shape[1]
        t = np.pad(t, ((0, 0), (0, pad)), constant_values=tok.token_to_id(D.BOS))
        data[k] = (jnp.asarray(t), jnp.asarray(np.pad(m, ((0, 0), (0, pad)))))
    cfg = dataclasses.replace(
        base.cfg, n_layers=a.layers, d_model=a.d_model, n_heads=a.d_model // 32, d_head=32,
        d_mlp=4 * a.d_model, n_ctx=length, name="colored_probe",
    )  # fmt: skip
    model = mj.Transformer(cfg)
    params = mj.init(model, jax.random.key(a.seed), jnp.zeros((1, length), jnp.int32))
    tx = zoo_optimizer(a.lr, a.steps)
    state = tx.init(params)
    evals = {
        form: T.encode(D.task_prompts("colored_objects", 256, D.EVAL_SEED, {
            "colored_objects": {"form": form}}), tok)
        for form in ("question", "recap")
    }  # fmt: skip

    def rows(key, stream, n):
        t, m = data[stream]
        i = jax.random.randint(key, (n,), 0, t.shape[0])
        return t[i], m[i]

    def loss(p, toks, mask):
        logits, _ = mj.run(model, p, toks)
        return (next_token_loss(logits, toks) * mask).sum() / mask.sum()

    def trainer(form):
        @jax.jit
        def train(p, s, key):
            def one(carry, k):
                p, s = carry
                toks, mask = rows(k, form, a.colored)
                if a.others:
                    ot, om = rows(jax.random.fold_in(k, 1), "others", a.others)
                    toks, mask = jnp.concatenate([toks, ot]), jnp.concatenate([mask, om])
                value, g = jax.value_and_grad(loss)(p, toks, mask)
                u, s = tx.update(g, s, p)
                return (optax.apply_updates(p, u), s), value

            (p, s), values = jax.lax.scan(one, (p, s), jax.random.split(key, a.every))
            return p, s, values.mean()

        return train

    train = {"recap": trainer("recap"), "question": trainer("question")}
    print("| step | phase | loss | question accuracy (chance 0.33) | recap accuracy | s |")
    print("|---|---|---|---|---|---|")
    key, t0 = jax.random.key(a.seed + 1), time.time()
    for i in range(a.steps // a.every):
        phase = "recap" if i * a.every < a.switch else "question"
        params, state, value = train[phase](params, state, jax.random.fold_in(key, i))
        acc = {}
        for form, b in evals.items():
            logits, _ = mj.run(model, params, b.tokens)
            acc[form] = float(T.accuracy(logits, b).mean())
        print(f"| {(i + 1) * a.every} | {phase} | {float(value):.3f} | {acc['question']:.2f} | "
              f"{acc['recap']:.2f} | {time.time() - t0:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
