"""Draft heads (Medusa, Hydra, Hydra++) on a frozen zoo model, trained by the one loop.

`build(config) -> Task` for `mechjax run configs/hydra/<variant>.py`. The base is a shipped
zoo model (`mj.zoo.load(config.task.base)`, frozen: `Task.trainable` leaves its params
bit-identical); the heads (`mechjax.models.heads`) train on windows of the base's code
corpus, `mechjax.zoo.data.build` with the settings in the model's card (whose tokenizer
must equal the shipped one). With `max_files > 0` (the `runlocal` variants) the first
`max_files` train / held-out files are tokenized with the shipped tokenizer instead, since
`build` would train a new tokenizer on so few files.

Evals, all on held-out code files:
  * `acc/head{k}`: top-1 accuracy of head k at every position t against the true token
    x_{t+k+2} (teacher-forced: Hydra reads the true x_{t+1} .. x_{t+k+1});
  * `agree/head{k}`: agreement with the base model's own greedy continuation: prompts of
    `prompt_len` tokens, the base generates K + 1 tokens greedily (g_1 .. g_{K+1}); head k at
    the prompt's last position (Hydra reading g_1 .. g_{k+1}) against g_{k+2};
  * `accept/chain`, `accept/tree`: mean accepted draft length under greedy verification
    when drafting with `draft_tree` from the same prompts (a chain of K top-1 tokens, and
    the small tree `task.tree`): tokens per base forward = 1 + this.
Baselines in the report: the heads at step 0 (each = the base's unembedding of h_t, i.e.
"the next token again"), and two count-based shortcuts from the training stream: a skip-bigram
x_t -> x_{t+k+2} (what Medusa sees) and a bigram x_{t+k+1} -> x_{t+k+2} (the last token a
Hydra head is given).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import mechjax as mj
from mechjax.data import corpus
from mechjax.models import heads as H
from mechjax.train import ConfigError, ModelSpec, Task
from mechjax.zoo import data as D


def code_streams(name: str, tokenizer, max_files: int = 0):
    """`(train, heldout)` token streams (numpy) of zoo model `name`'s code corpus."""
    if max_files:
        train = corpus.python_files("train")[:max_files]
        held = corpus.python_files("heldout")[:max_files]
        return tuple(corpus.tokenize_texts(corpus.read_texts(f), tokenizer) for f in (train, held))
    info = mj.zoo.card(name)["data"]
    data = D.build(
        vocab_size=info["vocab_size"],
        task_share=info.get("task_share", 0.0),
        n_per_task=info.get("n_per_task", 0),
        task_weights=info.get("task_weights"),
        task_options=info.get("task_options"),
    )
    if data.tokenizer.to_str() != tokenizer.to_str():
        raise ConfigError(
            f"hydra: mechjax.zoo.data.build with {name}'s card settings gives a tokenizer that "
            f"differs from the shipped one; the corpus or the data code changed since {name} "
            "was trained. Use task.max_files > 0 (shipped tokenizer on the raw files)."
        )
    return data.train, data.heldout


def successor_counts(stream: np.ndarray, vocab: int, offset: int = 1) -> np.ndarray:
    """`[vocab, vocab]` counts: how often token j stands `offset` positions after token i."""
    t = np.asarray(stream).astype(np.int64)
    counts = np.bincount(t[:-offset] * vocab + t[offset:], minlength=vocab * vocab)
    return counts.reshape(vocab, vocab)


def ngram_baselines(train: np.ndarray, held: np.ndarray, n_heads: int, vocab: int) -> dict:
    """Per-head top-1 accuracy `[K]` on the windows `held` `[n, L]` of two count shortcuts:
    the most frequent x_{t+k+2} after x_t (skip-bigram) and after x_{t+k+1} (bigram)."""

    def table(offset):  # most frequent successor at `offset`, per token
        return successor_counts(train, vocab, offset).argmax(1)

    bigram = table(1)
    skip, last = [], []
    L = held.shape[1]
    for k in range(n_heads):
        n = L - k - 2
        target = held[:, k + 2 :]
        skip.append(float((table(k + 2)[held[:, :n]] == target).mean()))
        last.append(float((bigram[held[:, k + 1 : k + 1 + n]] == target).mean()))
    return {"skip_bigram": skip, "bigram": last}


def build(config) -> Task:
    t = config.task
    base, base_vars, tokenizer = mj.zoo.load(t.base)
    K, L = t.n_heads, base.cfg.n_ctx
    if t.loss not in ("ce", "distill"):
        raise ConfigError(f"hydra: task.loss={t.loss!r}; valid: 'ce' (true tokens), 'distill'.")
    if not 1 <= t.prompt_len <= L - K - 1:
        raise ConfigError(f"hydra: task.prompt_len={t.prompt_len} must be in 1..{L - K - 1}.")
    draft = H.DraftConfig(kind=t.kind, n_heads=K, n_layers=t.n_layers, prefix_layer=t.prefix_layer)
    model = H.DraftModel(base, draft)
    tree = H.Tree([tuple(p) for p in t.tree], max_depth=K)
    chain = H.Tree([(0,) * d for d in range(1, K + 1)])

    train, held_stream = code_streams(t.base, tokenizer, t.max_files)
    stream = jnp.asarray(train.astype(np.int32))
    starts = np.linspace(0, len(held_stream) - L - 1, t.eval_windows).astype(np.int64)
    held = np.stack([held_stream[s : s + L] for s in starts]).astype(np.int32)  # [n, L]
    baselines = ngram_baselines(train, held, K, base.cfg.d_vocab)
    # the frozen base's greedy continuations of held-out prompts, computed once
    starts = np.linspace(0, len(held_stream) - L - 1, t.greedy_prompts).astype(np.int64) + 7
    prompts = np.stack([held_stream[s : s + t.prompt_len] for s in starts]).astype(np.int32)
    greedy = np.asarray(mj.generate(base, base_vars, prompts, K + 1))  # [n, P + K + 1]
    P = t.prompt_len
    batch_size = config.batch_size

    def init(key):
        return H.init_from_base(model, key, base_vars)

    def batch(key, step):
        return {"tokens": D.windows(key, stream, batch_size, L)}

    def loss(params, batch, ivs):
        toks = batch["tokens"]
        logits, drafts = H.head_logits(model, params, toks)
        teacher = logits if t.loss == "distill" else None
        total, per = H.draft_loss(drafts, toks, teacher_logits=teacher)
        return total, {f"loss/head{k}": per[k] for k in range(K)}

    def evaluate(params, cond, key, ivs):
        _, drafts = H.head_logits(model, params, held)
        acc = H.head_accuracy(drafts, held)
        _, ce = H.draft_loss(drafts, held)
        _, dg = H.head_logits(model, params, greedy)  # teacher-forced on the greedy tokens
        agree = (dg[:, P - 1].argmax(-1) == greedy[:, P + 1 :]).mean(0)  # [K]
        _, hid = H.base_hidden(model, params, greedy[:, :P])  # [n, P, d_model]
        root, target = greedy[:, P], greedy[:, P + 1 :]
        out = {}
        for name, tr in (("chain", chain), ("tree", tree)):
            nodes = H.draft_tree(model, params, hid[:, -1], root, tr, hidden_seq=hid, seq_len=P)
            out[f"accept/{name}"] = H.accept_length(tr, nodes, target).mean()
        for k in range(K):
            out[f"acc/head{k}"] = acc[k]
            out[f"ce/head{k}"] = ce[k]
            out[f"agree/head{k}"] = agree[k]
        return out

    def report(records, workdir):
        evals = [r for r in records if r.get("split") == "eval"]
        if not evals:
            return {}
        first, last = evals[0], evals[-1]
        summary = {"step": last["step"], "variant": t.variant}
        for key in ("accept/chain", "accept/tree"):
            summary[key] = float(last[key])
            summary[f"{key}@init"] = float(first[key])
        lines = [
            f"## {t.variant} heads on {t.base}: step {last['step']}",
            "",
            "Top-1 accuracy on held-out code (head k at t vs the true x_{t+k+2}; Hydra "
            "teacher-forced), and agreement with the base's own greedy continuation.",
            "",
            "| head | top-1 | at init | skip-bigram x_t | bigram x_{t+k+1} | greedy agreement "
            "| agreement at init |",
            "|---|---|---|---|---|---|---|",
        ]
        for k in range(K):
            row = {
                "acc": float(last[f"acc/head{k}"]),
                "acc@init": float(first[f"acc/head{k}"]),
                "skip_bigram": baselines["skip_bigram"][k],
                "bigram": baselines["bigram"][k],
                "agree": float(last[f"agree/head{k}"]),
                "agree@init": float(first[f"agree/head{k}"]),
            }
            summary.update({f"{n}/head{k}": v for n, v in row.items()})
            lines.append(f"| {k} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")
        lines += [
            "",
            f"Mean accepted drafts per step under greedy verification ({t.greedy_prompts} "
            f"prompts of {P} tokens): chain of {K} top-1 drafts {summary['accept/chain']:.3f} "
            f"(at init {summary['accept/chain@init']:.3f}), tree of {tree.n_nodes} nodes "
            f"{summary['accept/tree']:.3f} (at init {summary['accept/tree@init']:.3f}).",
        ]
        summary["_markdown"] = "\n".join(lines)
        return summary

    return Task(
        model=model,
        init=init,
        batch=batch,
        loss=loss,
        evaluate=evaluate,
        models=(ModelSpec("heads", seed=0),),
        report=report,
        trainable=lambda path: path[1] != "base",  # ("params", "base", ...): the frozen base
    )
