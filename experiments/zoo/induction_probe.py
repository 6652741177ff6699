"""Does an induction head form? A quick probe on repeated random tokens.

Trains one `mj.Transformer` on windows of `context` uniformly random tokens, each repeating
its first m ~ U[min_rep, max_rep] tokens once (positions 1..m, then m+1..2m copy them;
position 0 is token 0, like the zoo's `<|endoftext|>`): `mechjax.data.repeated_tokens.sample`
with `bos=0` and `context=context - 1`. Only copying from the context lowers the loss below
ln(vocab). Every `every` steps (the config's `eval_every`) it records the training loss, the
best induction score (and its layer) and the best previous-token score of each layer,
measured on `eval_len` random tokens shown twice; the report's table lists them.

`build(config) -> Task` for `configs/zoo/probe_induction.py` (the zoo task dispatches on
`config.task.probe`). The config's `phases` may switch sites off for some steps
(`interventions`; this probe has no data phases).

This is how we found that the zoo's 2-layer attention-only model forms an induction head at
~1,400 steps when its context is 48 tokens but not in 2,000 steps when it is 128
(experiments/zoo/README.md).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import mechjax as mj
from mechjax.analysis import detectors
from mechjax.analysis.metrics import next_token_loss
from mechjax.data import repeated_tokens
from mechjax.train import ConfigError, ModelSpec, Task
from mechjax.zoo import config as ZC

DATA_KEYS: dict = {}  # phase keys of this probe beyond PHASE_KEYS: none


def model_config(t) -> mj.TransformerConfig:
    """The probe's model: attention-only when `d_mlp == 0`, RoPE."""
    return mj.TransformerConfig(
        d_model=t.d_model, n_layers=t.layers, n_heads=t.heads, d_head=t.d_model // t.heads,
        attn_only=not t.d_mlp, d_mlp=t.d_mlp or None, d_vocab=t.vocab, n_ctx=t.context,
        positional_embedding_type="rotary", name="induction_probe",
    )  # fmt: skip


def check(t) -> None:
    """ConfigError for repeat lengths or an eval length that do not fit the context."""
    if not 1 <= t.min_rep <= t.max_rep or 2 * t.max_rep >= t.context:
        raise ConfigError(
            f"induction probe: need 1 <= min_rep <= max_rep and 2 * max_rep < context, got "
            f"min_rep={t.min_rep}, max_rep={t.max_rep}, context={t.context}."
        )
    if 2 * t.eval_len + 1 > t.context:
        raise ConfigError(
            f"induction probe: eval_len={t.eval_len}: 2 * eval_len + 1 must fit "
            f"context={t.context}."
        )


def sample(key, t, batch_size: int):
    """`[batch, context]` training windows (random tokens, one repeat of random length)."""
    return repeated_tokens.sample(
        key, batch_size, t.max_rep, t.vocab, bos=0, min_length=t.min_rep, context=t.context - 1
    )


def build(config) -> Task:
    t = config.task
    check(t)
    phases = ZC.check_phases(t.get("phases", ()), config.total_steps, DATA_KEYS)
    model = mj.Transformer(model_config(t))
    ZC.check_phase_sites(phases, model)
    rep = jnp.asarray(repeated_tokens.fixed(0, 16, t.eval_len, t.vocab, bos=0))
    batch_size = config.batch_size

    def init(key):
        return mj.init(model, key, jnp.zeros((1, t.context), jnp.int32))

    def batch(key, step):
        return {"tokens": sample(key, t, batch_size)}

    def loss(params, batch, ivs):
        logits, _ = mj.run(model, params, batch["tokens"], interventions=tuple(ivs))
        return next_token_loss(logits, batch["tokens"]).mean(), {}

    def evaluate(params, cond, key, ivs):
        return {
            "induction_score": detectors.induction_score(model, params, rep),
            "prev_token_score": detectors.previous_token_score(model, params, rep),
        }

    def report(records, workdir):
        return table(records, t.vocab)

    return Task(
        model=model, init=init, batch=batch, loss=loss,
        interventions=ZC.phase_interventions(phases), evaluate=evaluate,
        models=(ModelSpec("model", seed=0),), report=report,
    )  # fmt: skip


def table(records, vocab: int) -> dict:
    """The probe's table (one row per eval after step 0) and headline numbers."""
    train = {r["step"]: r for r in records if r.get("split") == "train"}
    evals = [r for r in records if r.get("split") == "eval" and r["step"] > 0]
    lines = [
        f"| step | loss (ln vocab = {np.log(vocab - 1):.2f}) | best induction (layer) | "
        "best previous-token per layer |",
        "|---|---|---|---|",
    ]
    summary = {}
    for r in evals:
        ind = np.asarray(r["induction_score"])
        prev = np.asarray(r["prev_token_score"]).max(1)
        layer = int(ind.max(1).argmax())
        loss = train.get(r["step"], {}).get("loss", float("nan"))
        lines.append(
            f"| {r['step']} | {loss:.3f} | {ind.max():.2f} (L{layer}) | "
            f"{' '.join(f'{x:.2f}' for x in prev)} |"
        )
        summary = {
            "step": r["step"],
            "loss": loss,
            "max_induction_score": float(ind.max()),
            "induction_layer": layer,
            "max_prev_token_score_layer0": float(prev[0]),
        }
    summary["_markdown"] = "\n".join(lines)
    return summary
