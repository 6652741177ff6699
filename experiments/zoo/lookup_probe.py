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
to see whether the easy form teaches the hard one; `--gap 1 --gap-from N` trains on the gap-0
form before step N and on the gap-1 form after (a curriculum). The loss is on the values
of the questions only. Every `--every` steps the probe prints the training loss and the
accuracy on 512 held-out sequences: for the first question (chance 1 / pairs), for all of
them (the last can be answered by elimination) and, with `--gap mix`, for the first question
when it has the gap; with `--gap-from`, also the first-question accuracy on the gap-0 form.

    python experiments/zoo/lookup_probe.py --order reverse --gap 1
    python experiments/zoo/lookup_probe.py --order forward --gap 0

See experiments/zoo/README.md ("Colored objects").
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import mechjax as mj
from mechjax.analysis.metrics import next_token_loss
from mechjax.zoo.config import zoo_optimizer

SEP, ASK, KEYS0, N_KEYS, VALUES0, N_VALUES = 1, 2, 10, 20, 40, 10  # token ids


def sample(key, batch: int, pairs: int, order: str, gap):
    """`[batch, 3 * pairs + (2 + gap) * pairs]` token ids (gap "mix" counts as 1), the
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--order", choices=("forward", "reverse"), default="reverse")
    ap.add_argument("--gap", type=lambda x: x if x == "mix" else int(x), choices=(0, 1, "mix"),
                    default=1)  # fmt: skip
    ap.add_argument("--gap-from", type=int, default=0, help="with --gap 1: gap 0 before this step")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-mlp", type=int, default=512, help="0 = attention only")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if not 2 <= a.pairs <= N_VALUES:
        ap.error(f"--pairs {a.pairs} must be in [2, {N_VALUES}]")
    if a.steps % a.every:
        ap.error(f"--steps {a.steps} must be a multiple of --every {a.every}")
    if a.gap_from and (a.gap != 1 or a.gap_from % a.every or not 0 < a.gap_from < a.steps):
        ap.error(f"--gap-from {a.gap_from} needs --gap 1 and a multiple of --every {a.every} "
                 f"below --steps {a.steps}")  # fmt: skip

    length = (5 + (a.gap != 0)) * a.pairs
    cfg = mj.TransformerConfig(
        d_model=a.d_model, n_layers=a.layers, n_heads=a.heads, d_head=a.d_model // a.heads,
        attn_only=not a.d_mlp, d_mlp=a.d_mlp or None, d_vocab=VALUES0 + N_VALUES, n_ctx=length,
        positional_embedding_type="rotary",
    )  # fmt: skip
    model = mj.Transformer(cfg)
    params = mj.init(model, jax.random.key(a.seed), jnp.zeros((1, length), jnp.int32))
    tx = zoo_optimizer(a.lr, a.steps)  # AdamW, warmup 100 + cosine, clip 1.0
    state = tx.init(params)

    def trainer(gap):
        """A jitted `--every`-step training block on `gap`-shaped sequences, and their answers."""
        _, answers, _ = sample(jax.random.key(0), 1, a.pairs, a.order, gap)
        n = (5 + (gap != 0)) * a.pairs
        mask = np.zeros(n - 1, np.float32)
        mask[answers - 1] = 1  # next_token_loss[:, t] is the loss of predicting token t + 1

        def loss(p, toks):
            logits, _ = mj.run(model, p, toks)
            return (next_token_loss(logits, toks) * mask).sum(1).mean() / mask.sum()

        @jax.jit
        def train(p, s, key):
            def one(carry, k):
                p, s = carry
                value, g = jax.value_and_grad(loss)(p, sample(k, a.batch, a.pairs, a.order, gap)[0])
                u, s = tx.update(g, s, p)
                return (optax.apply_updates(p, u), s), value

            (p, s), values = jax.lax.scan(one, (p, s), jax.random.split(key, a.every))
            return p, s, values.mean()

        return train, answers

    def first_hits(gap):
        held, answers, gapped = sample(jax.random.key(10**6 + a.seed), 512, a.pairs, a.order, gap)
        logits, _ = mj.run(model, params, held)
        return np.asarray(logits[:, answers - 1].argmax(-1) == held[:, answers]), gapped

    train, _ = trainer(a.gap)
    train0 = trainer(0)[0] if a.gap_from else None
    extra = {"mix": " first question, with the gap |", 0: ""}.get(a.gap, "")
    extra = " first question, gap-0 form |" if a.gap_from else extra
    print(f"| step | answer loss | first question (chance {1 / a.pairs:.2f}) | all questions |"
          f"{extra} s |")  # fmt: skip
    print("|---|---|---|---|" + ("---|" if extra else "") + "---|")
    key, t0 = jax.random.key(a.seed + 1), time.time()
    for i in range(a.steps // a.every):
        block = train0 if i * a.every < a.gap_from else train
        params, state, value = block(params, state, jax.random.fold_in(key, i))
        hit, gapped = first_hits(a.gap)
        cells = [f"{(i + 1) * a.every}", f"{float(value):.3f}", f"{hit[:, 0].mean():.2f}",
                 f"{hit.mean():.2f}"]  # fmt: skip
        if a.gap == "mix":
            cells.append(f"{hit[np.asarray(gapped[:, 0]), 0].mean():.2f}")
        if a.gap_from:
            cells.append(f"{first_hits(0)[0][:, 0].mean():.2f}")
        print(f"| {' | '.join(cells)} | {time.time() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
