"""Does an induction head form? A quick probe on repeated random tokens.

Trains one `mj.Transformer` on windows of `--context` uniformly random tokens, each repeating
its first m ~ U[min_rep, max_rep] tokens once (positions 1..m, then m+1..2m copy them;
position 0 is token 0, like the zoo's `<|endoftext|>`): `mechjax.data.repeated_tokens.sample`
with `bos=0` and `context=--context - 1`. Only copying from the context lowers
the loss below ln(vocab). Every `--every` steps it prints the training loss, the best
induction score (and its layer) and the best previous-token score of each layer, measured on
`--eval-len` random tokens shown twice.

    python experiments/zoo/induction_probe.py --context 128 --min-rep 16 --max-rep 64
    python experiments/zoo/induction_probe.py --context 48 --min-rep 4 --max-rep 24 --eval-len 20

This is how we found that the zoo's 2-layer attention-only model forms an induction head at
~1,400 steps when its context is 48 tokens but not in 2,000 steps when it is 128
(experiments/zoo/README.md).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import mechjax as mj
from mechjax.analysis import detectors
from mechjax.analysis.metrics import next_token_loss
from mechjax.data import repeated_tokens
from mechjax.zoo.config import zoo_optimizer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--d-mlp", type=int, default=0, help="0 = attention only")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--min-rep", type=int, default=16)
    ap.add_argument("--max-rep", type=int, default=64)
    ap.add_argument("--eval-len", type=int, default=50)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if not 1 <= a.min_rep <= a.max_rep or 2 * a.max_rep >= a.context:
        ap.error(f"need 1 <= min-rep <= max-rep and 2 * max-rep < context, got {vars(a)}")
    if 2 * a.eval_len + 1 > a.context:
        ap.error(f"--eval-len {a.eval_len}: 2 * eval-len + 1 must fit --context {a.context}")
    if a.steps % a.every:
        ap.error(f"--steps {a.steps} must be a multiple of --every {a.every}")

    cfg = mj.TransformerConfig(
        d_model=a.d_model, n_layers=a.layers, n_heads=a.heads, d_head=a.d_model // a.heads,
        attn_only=not a.d_mlp, d_mlp=a.d_mlp or None, d_vocab=a.vocab, n_ctx=a.context,
        positional_embedding_type="rotary",
    )  # fmt: skip
    model = mj.Transformer(cfg)
    params = mj.init(model, jax.random.key(a.seed), jnp.zeros((1, a.context), jnp.int32))
    tx = zoo_optimizer(a.lr, a.steps)  # AdamW, warmup 100 + cosine, clip 1.0
    state = tx.init(params)

    def loss(p, toks):
        logits, _ = mj.run(model, p, toks)
        return next_token_loss(logits, toks).mean()

    @jax.jit
    def train(p, s, key):
        def one(carry, k):
            p, s = carry
            toks = repeated_tokens.sample(
                k, a.batch, a.max_rep, a.vocab, bos=0, min_length=a.min_rep, context=a.context - 1
            )
            value, g = jax.value_and_grad(loss)(p, toks)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), value

        (p, s), values = jax.lax.scan(one, (p, s), jax.random.split(key, a.every))
        return p, s, values.mean()

    rep = jnp.asarray(repeated_tokens.fixed(0, 16, a.eval_len, a.vocab, bos=0))
    print(f"| step | loss (ln vocab = {np.log(a.vocab - 1):.2f}) | best induction (layer) | "
          "best previous-token per layer | s |")  # fmt: skip
    print("|---|---|---|---|---|")
    key, t0 = jax.random.key(a.seed + 1), time.time()
    for i in range(a.steps // a.every):
        params, state, value = train(params, state, jax.random.fold_in(key, i))
        ind = np.asarray(detectors.induction_score(model, params, rep))
        prev = np.asarray(detectors.previous_token_score(model, params, rep)).max(1)
        layer = int(ind.max(1).argmax())
        print(
            f"| {(i + 1) * a.every} | {float(value):.3f} | {ind.max():.2f} (L{layer}) | "
            f"{' '.join(f'{x:.2f}' for x in prev)} | {time.time() - t0:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
