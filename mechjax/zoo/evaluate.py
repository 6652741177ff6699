"""The numbers of a zoo model card, computed from the weights with `mj.run`.

* :func:`task_table`: per task, top-1 accuracy and the logit difference on clean and corrupted
  prompts, beside the format-only chance and the strongest cheap shortcut
  (`mechjax.data.tasks.shortcuts`). A split-data model is evaluated on its tasks' "test"
  split (templates, names and items no training text used); a legacy model on prompts of a
  seed disjoint from the training examples'. The column `seen` gives the fraction of eval
  prompts that nonetheless appear verbatim among the training prompts.
* :func:`code_loss`: next-token loss on held-out standard-library files vs the unigram
  baseline (the train files' token frequencies).
* :func:`head_scores`: induction and previous-token scores of every head on repeated random
  tokens (TransformerLens' definitions, `mechjax.analysis.detectors`).
"""

from __future__ import annotations

import collections

import numpy as np

from mechjax.analysis import detectors
from mechjax.analysis.metrics import next_token_loss
from mechjax.data import repeated_tokens
from mechjax.data import tasks as T
from mechjax.run import run
from mechjax.zoo import data as D


def _batched_logits_metrics(model, params, batch, chunk: int = 64, in_prompt: bool = False):
    """Per-example accuracy, logit differences and probability differences (each clean,
    corrupted), in chunks of `chunk`; with `in_prompt`, also whether the clean top-1 token
    at the answer position occurs among the prompt's tokens (a copy from the context rather
    than an answer from a prior) and whether it is a contrast token (IOI's subject: a copy
    of the wrong name), and the top-1 token ids."""
    acc, ld, lx, pd, px, ip, ic, tp = [], [], [], [], [], [], [], []
    for i in range(0, len(batch), chunk):
        b = batch.take(np.arange(i, min(i + chunk, len(batch))))
        lc, _ = run(model, params, b.tokens)
        lr, _ = run(model, params, b.corrupted)
        acc.append(np.asarray(T.accuracy(lc, b)))
        ld.append(np.asarray(T.logit_diff(lc, b)))
        lx.append(np.asarray(T.logit_diff(lr, b)))
        pd.append(np.asarray(T.prob_diff(lc, b)))
        px.append(np.asarray(T.prob_diff(lr, b)))
        if in_prompt:
            last = np.asarray(b.last)
            top = np.asarray(lc)[np.arange(len(last)), last].argmax(-1)
            toks = np.asarray(b.tokens)
            pos = np.arange(toks.shape[1])[None, :] <= last[:, None]
            ip.append(((toks == top[:, None]) & pos).any(-1))
            ic.append((np.asarray(b.contrasts) == top[:, None]).any(-1))
            tp.append(top)
    out = tuple(np.concatenate(x) for x in (acc, ld, lx, pd, px))
    if not in_prompt:
        return out
    return (*out, np.concatenate(ip), np.concatenate(ic), np.concatenate(tp))


def docstring_names(tokenizer) -> tuple[str, ...]:
    """The docstring task's parameter names that are single tokens (with their space)."""
    from mechjax.data.tasks import docstring

    return tuple(w for w in docstring.NAMES if T.single_token_id(tokenizer, " " + w) is not None)


def task_table(
    model,
    params,
    tokenizer,
    tasks=D.MIXTURE_TASKS,
    n: int = 256,
    seed=D.EVAL_SEED,
    mixture=True,
    options: dict | None = None,
    weights: dict | None = None,
    n_per_task: int = 20000,
    split: str | None = None,
    baselines: bool = False,
    encodable_only: bool = False,
):
    """Per-task metrics on `n` eval prompts.

    Returns {task: {n, accuracy, logit_diff, logit_diff_corrupted, ld_positive, prob_diff,
    prob_diff_corrupted, seen}} and, with `baselines=True`, also `chance` (format-only top-1)
    and `shortcut` / `shortcut_accuracy` (the strongest cheap shortcut of
    `mechjax.data.tasks.shortcuts`, scored on the same prompts, fitted on "train").

    `split`: the tasks' split to evaluate ("test" for a card of a split-data model; "val" is
    what its training-time evals use); None = the legacy generators at `seed`. `seen` is the
    fraction of eval prompts that appear verbatim among the mixture's training prompts
    (`n_per_task`, `weights` as in `zoo.data.build`, drawn from "train" when `split` is set;
    0 when `mixture=False`). `options` maps a task to generator options (a mixture model's
    own are in its card: see :func:`mixture_args`). Tasks the tokenizer cannot encode (an
    answer that is not one token) are left out with a note under the key "_skipped"; with
    `encodable_only`, only the prompts the tokenizer cannot encode are (`n` then counts the
    rest; the baselines still score all `n` prompts of the split)."""
    from mechjax.data.tasks import shortcuts

    train = {}
    if mixture:
        train_split = D.TRAIN_SPLIT if split is not None else None
        ps = D.training_prompts(n_per_task, D.TRAIN_SEED, tasks, weights, options, train_split)
        train = {name: set(p.clean) for name, p in ps.items()}
    out, skipped = {}, {}
    for name in tasks:
        prompts = D.task_prompts(name, n, seed, options, split)
        if encodable_only:  # e.g. a legacy tokenizer on test-split names it never merged
            prompts = prompts.take(np.flatnonzero(T.encodable(prompts, tokenizer)))
            if not len(prompts.clean):
                skipped[name] = f"none of the {n} prompts is encodable by this tokenizer"
                continue
        try:
            batch = T.encode(prompts, tokenizer)
        except ValueError as e:
            skipped[name] = str(e)[:200]
            continue
        acc, ld, lx, pd, px = _batched_logits_metrics(model, params, batch)
        out[name] = {
            "n": len(batch),
            "accuracy": float(acc.mean()),
            "logit_diff": float(ld.mean()),
            "logit_diff_corrupted": float(lx.mean()),
            "ld_positive": float((ld > 0).mean()),
            "prob_diff": float(pd.mean()),
            "prob_diff_corrupted": float(px.mean()),
            "seen": float(np.mean([c in train.get(name, ()) for c in prompts.clean])),
        }
        if baselines:
            # the same prompts: `baselines` generates them from the same seed and options
            table = shortcuts.baselines(
                name,
                split,
                n=n,
                seed=D.task_seed(name, seed, split),
                options=(options or {}).get(name),
            )
            best, value = shortcuts.strongest(
                {k: v for k, v in table.items() if k != "chance"}, "accuracy"
            )
            out[name].update(
                chance=table["chance"]["accuracy"], shortcut=best, shortcut_accuracy=value
            )
    if skipped:
        out["_skipped"] = skipped
    return out


def default_factors(task: str, options=None) -> tuple[tuple[str, ...], ...]:
    """(), each kind of `task`'s split sets alone (under the generator `options`), and all of
    them (= the held-out split)."""
    kinds = tuple(T.split_set(task, "train", options))
    return ((), *((k,) for k in kinds), kinds)


def factor_table(
    model,
    params,
    tokenizer,
    task: str = "docstring",
    factors=None,
    n: int = 256,
    options=None,
    split: str = "test",
):
    """Which held-out part of a task's prompts a model fails on: for each tuple of kinds in
    `factors` (default :func:`default_factors`), `n` prompts with those kinds from `split`
    ("test" to report; "val" while choosing a recipe, so no choice is tuned on test) and
    the rest from "train" (`mechjax.data.tasks.splits.factor_prompts`, the generator
    `options`); () is all-train (new combinations of training pieces), all kinds is the
    `split` itself. Returns [{held_out, n, accuracy, logit_diff, ld_positive, top1_in_prompt,
    top1_contrast, wrong}] (the shares whose top-1 token occurs in the prompt, and whose top-1
    is a contrast token, e.g. IOI's subject; `wrong`: the three commonest wrong top-1 tokens
    with their counts); prompts the tokenizer
    cannot encode, or longer than the model's context, are left out."""
    from mechjax.data.tasks import splits

    if split not in ("val", "test"):
        raise ValueError(f"factor_table: split={split!r}; valid: 'val', 'test'.")
    rows = []
    for kinds in default_factors(task, options) if factors is None else factors:
        p = splits.factor_prompts(
            task, n, tuple(kinds), seed=D.EVAL_SEED, split=split, **(options or {})
        )
        p = p.take(np.flatnonzero(T.encodable(p, tokenizer)))
        b = T.encode(p, tokenizer)
        b = b.take(np.flatnonzero(np.asarray(b.last) < model.cfg.n_ctx))
        acc, ld, *_, ip, ic, top = _batched_logits_metrics(model, params, b, in_prompt=True)
        wrong = collections.Counter(int(t) for t, ok in zip(top, acc) if not ok)
        rows.append(
            {
                "held_out": tuple(kinds),
                "n": len(acc),
                "accuracy": float(acc.mean()),
                "logit_diff": float(ld.mean()),
                "ld_positive": float((ld > 0).mean()),
                "top1_in_prompt": float(ip.mean()),
                "top1_contrast": float(ic.mean()),
                "wrong": [(tokenizer.decode([t]), c) for t, c in wrong.most_common(3)],
            }
        )
    return rows


def factor_markdown(rows, split: str = "test") -> str:
    """`factor_table` rows (held-out kinds from `split`) as a markdown table."""
    lines = [
        f"| {split}-split kinds (the rest from train) | n | top-1 | logit diff | P(logit diff > 0) "
        "| top-1 in prompt | top-1 a contrast | commonest wrong top-1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kinds = ", ".join(r["held_out"]) or "none (train pieces, new combinations)"
        wrong = ", ".join(f"{t!r} {c}" for t, c in r.get("wrong", ())) or "-"
        wrong = wrong.replace("|", "\\|")
        lines.append(
            f"| {kinds} | {r['n']} | {r['accuracy']:.3f} | {r['logit_diff']:.2f} "
            f"| {r['ld_positive']:.3f} | {r['top1_in_prompt']:.3f} | {r['top1_contrast']:.3f} "
            f"| {wrong} |"
        )
    return "\n".join(lines)


def mixture_args(card: dict) -> dict:
    """`task_table` keyword arguments that match how a mixture model (its `zoo.card`) was
    trained: its generator options, task weights, examples per task and, for a split-data
    model, `split="test"` (the card reports held-out templates, names and items only)."""
    d = card["data"]
    return {
        "options": d.get("task_options") or {},
        "weights": d.get("task_weights") or {},
        "n_per_task": d.get("n_per_task", 20000),
        "split": D.TABLE_SPLIT if d.get("split_data") else None,
    }


def code_loss(model, params, tokenizer, n_windows: int = 128, heldout_every: int = 20):
    """Held-out code loss and the unigram baseline (nats/token), on `n_windows` windows of
    `n_ctx` tokens spread evenly over the held-out standard-library files."""
    from mechjax.data import corpus

    L = model.cfg.n_ctx
    held = corpus.tokenize_texts(
        corpus.read_texts(corpus.python_files("heldout", heldout_every=heldout_every)), tokenizer
    )
    train = corpus.tokenize_texts(
        corpus.read_texts(corpus.python_files("train", heldout_every=heldout_every)), tokenizer
    )
    starts = np.linspace(0, len(held) - L - 1, n_windows).astype(np.int64)
    windows = np.stack([held[s : s + L] for s in starts]).astype(np.int32)
    losses = []
    for i in range(0, n_windows, 16):
        w = windows[i : i + 16]
        logits, _ = run(model, params, w)
        losses.append(np.asarray(next_token_loss(logits, w)))
    counts = np.bincount(train, minlength=tokenizer.get_vocab_size()).astype(np.float64) + 1.0
    logq = np.log(counts / counts.sum())
    targets = windows[:, 1:]
    return {
        "loss": float(np.concatenate(losses).mean()),
        "unigram_loss": float(-logq[targets].mean()),
        "tokens": int(targets.size),
    }


def head_scores(model, params, tokenizer, n: int = 32, length: int = 50, seed: int = 0):
    """`{"induction": [layer, head], "previous_token": [layer, head]}` on `n` sequences of
    BOS + `length` random tokens repeated once."""
    bos = tokenizer.token_to_id(D.BOS)
    toks = repeated_tokens.fixed(seed, n, length, tokenizer.get_vocab_size(), bos)  # numpy
    return {
        "induction": np.asarray(detectors.induction_score(model, params, toks)),
        "previous_token": np.asarray(detectors.previous_token_score(model, params, toks)),
    }


def copy_distances(n_ctx: int) -> tuple[int, ...]:
    """Repeat distances 4, 8, 16, ... up to the longest a context of `n_ctx` allows (BOS +
    d tokens + their repeat fit: d <= (n_ctx - 1) // 2)."""
    top = (n_ctx - 1) // 2
    ds = [d for d in (4, 8, 16, 32, 64, 128, 256, 512, 1024) if d <= top]
    return tuple(ds + ([top] if ds and ds[-1] != top else []))


def copying(model, params, tokenizer, distances=None, n: int = 16, seed: int = 0):
    """Does the model copy at every repeat distance its context allows? For each distance d
    (default :func:`copy_distances`), `n` sequences of BOS + d random tokens + the same d
    again (ids from [1, vocab)). Returns {d: {first, second, gain, accuracy}}: the mean
    next-token loss on the first showing and on the repeat (its first token excluded, which
    cannot be predicted), their difference (nats; ln vocab is a uniform guess), and top-1
    accuracy on the repeat (chance 1 / vocab)."""
    from mechjax.analysis.metrics import next_token_loss as ntl

    vocab = tokenizer.get_vocab_size()
    bos = tokenizer.token_to_id(D.BOS)
    rng = np.random.default_rng(seed)
    out = {}
    for d in distances or copy_distances(model.cfg.n_ctx):
        r = rng.integers(1, vocab, (n, d))
        toks = np.concatenate([np.full((n, 1), bos), r, r], axis=1).astype(np.int32)
        logits, _ = run(model, params, toks)
        nll = np.asarray(ntl(logits, toks))  # [n, 2d]: loss of predicting token t + 1
        pred = np.asarray(logits[:, :-1].argmax(-1))
        first, second = nll[:, 1:d], nll[:, d + 1 :]
        acc = (pred[:, d + 1 :] == toks[:, d + 2 :]).mean()
        out[int(d)] = {
            "first": float(first.mean()),
            "second": float(second.mean()),
            "gain": float(first.mean() - second.mean()),
            "accuracy": float(acc),
        }
    return out


def copying_markdown(rows: dict) -> str:
    """:func:`copying` as a markdown table."""
    lines = [
        "| repeat distance (tokens) | loss, first showing | loss, repeat | copy gain (nats) "
        "| top-1 on the repeat |",
        "|---|---|---|---|---|",
    ]
    for d, r in rows.items():
        lines.append(
            f"| {d} | {r['first']:.2f} | {r['second']:.2f} | {r['gain']:.2f} "
            f"| {r['accuracy']:.3f} |"
        )
    return "\n".join(lines)


def markdown(
    name: str,
    tasks: dict | None,
    code: dict | None,
    heads: dict | None,
    copy: dict | None = None,
) -> str:
    """The model-card tables as markdown (`copy`: :func:`copying` rows)."""
    lines = []
    if code:
        lines += [
            "| held-out code loss (nats/token) | unigram baseline | tokens |",
            "|---|---|---|",
            f"| {code['loss']:.3f} | {code['unigram_loss']:.3f} | {code['tokens']} |",
            "",
        ]
    if heads:
        ind, pt = heads["induction"], heads["previous_token"]
        top = lambda s: (
            ", ".join(  # noqa: E731
                f"L{i}H{j} {s[i, j]:.2f}"
                for i, j in zip(*np.unravel_index(np.argsort(-s, None), s.shape))
                if s[i, j] > 0.3
            )
            or f"none > 0.3 (max {s.max():.2f})"
        )
        lines += [
            "| heads (score > 0.3, repeated random tokens) | |",
            "|---|---|",
            f"| induction | {top(ind)} |",
            f"| previous token | {top(pt)} |",
            "",
        ]
    if copy:
        lines += [copying_markdown(copy), ""]
    rows = {t: r for t, r in (tasks or {}).items() if not t.startswith("_")}
    if rows:
        base = all("shortcut" in r for r in rows.values())
        head = (
            "| task | n | top-1 accuracy | logit diff (clean) | logit diff (corrupted) "
            "| P(logit diff > 0) | prob diff (clean -> corrupted) | eval prompts seen in training |"
        )
        lines += [
            head + (" format-only chance | strongest shortcut (top-1) |" if base else ""),
            "|---|---|---|---|---|---|---|---|" + ("---|---|" if base else ""),
        ]
        for t, r in rows.items():
            line = (
                f"| {t} | {r['n']} | {r['accuracy']:.3f} | {r['logit_diff']:.2f} | "
                f"{r['logit_diff_corrupted']:.2f} | {r['ld_positive']:.3f} | "
                f"{r['prob_diff']:.2f} -> {r['prob_diff_corrupted']:.2f} | {r['seen']:.2f} |"
            )
            if base:
                line += f" {r['chance']:.3f} | {r['shortcut']} {r['shortcut_accuracy']:.3f} |"
            lines.append(line)
    return "\n".join(lines)


def plot(name: str, tasks: dict | None, heads: dict, path: str) -> str:
    """One PNG: induction and previous-token scores per head (heatmaps) and, for models with
    tasks, the clean vs corrupted logit difference per task (bars). Returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [t for t in (tasks or {}) if not t.startswith("_")]
    n = 3 if rows else 2
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4))
    for ax, key in zip(axes, ("induction", "previous_token")):
        s = np.asarray(heads[key])
        im = ax.imshow(s, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set(title=f"{key.replace('_', '-')} score", xlabel="head", ylabel="layer")
        ax.set_xticks(range(s.shape[1]))
        ax.set_yticks(range(s.shape[0]))
        for i, j in np.ndindex(s.shape):
            ax.text(j, i, f"{s[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    if rows:
        ax = axes[2]
        y = np.arange(len(rows))
        ax.barh(y - 0.2, [tasks[t]["logit_diff"] for t in rows], 0.4, label="clean")
        ax.barh(y + 0.2, [tasks[t]["logit_diff_corrupted"] for t in rows], 0.4, label="corrupted")
        ax.set_yticks(y, rows)
        ax.invert_yaxis()
        ax.axvline(0, color="k", lw=0.5)
        ax.set(title="logit difference (answer - contrast)")
        ax.legend(fontsize=7)
    fig.suptitle(name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
