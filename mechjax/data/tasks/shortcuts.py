"""Shortcut baselines for every task: what a model that never did the task's algorithm scores.

`baselines(name, split="test")` returns {baseline: {metric: value}} on `n` prompts of the
split, with any statistics fitted on `split="train"` prompts (as a model would be). Metrics
are the cards': "accuracy" (top-1), and where the baseline gives a distribution,
"logit_diff" (mean answer log-probability minus mean contrast log-probability, the
counterpart of the logit difference) and "prob_diff" (answer minus contrast probability,
Hanna et al.'s greater-than metric), on clean and, with the suffix "_corrupted", on
corrupted prompts (scored against the clean answers, as `zoo.evaluate.task_table` does).

Every task has:
  * "chance": the format-only guess, uniform over the answers the format allows (IOI: the two
    names; greater-than: the 100 two-digit years; multiple choice: the four labels; ...);
  * "unigram", "bigram", "trigram": n-gram models of the training texts (prompt + answer +
    continuation) with interpolated backoff, over a word / digit-pair tokenization like the
    zoo tokenizer's (" 1732" -> " 17", "32");
plus the task's own heuristics (see `_HEURISTICS`): e.g. always-the-largest year for
greater-than, first / last / most-frequent name for IOI, a question-blind option prior for
multiple choice, most-common answer per template for factual recall. A task counts as solved
only well above its strongest baseline (:func:`strongest`).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

import numpy as np

from mechjax.data.tasks.base import Prompts, generate

_TOKEN = re.compile(r" ?[^\W\d]+| ?\d{1,2}| ?[^\w\s]|\s")
TRAIN_SEED_OFFSET = 10_000  # train prompts for fitting use seed + this


def tokenize(text: str) -> list[str]:
    """Words with their leading space, digit pairs (" 17", "32"), punctuation, whitespace."""
    return _TOKEN.findall(text)


class NGram:
    """An n-gram model with interpolated backoff:
    p_n(w | c) = (count(c, w) + k * p_{n-1}(w | c[1:])) / (count(c) + k), p_0 uniform."""

    def __init__(self, texts, order: int, k: float = 1.0):
        self.order, self.k = order, k
        self.counts = [defaultdict(Counter) for _ in range(order)]  # [n][ctx tuple] -> Counter
        vocab = set()
        for t in texts:
            toks = tokenize(t)
            vocab.update(toks)
            for i, w in enumerate(toks):
                for n in range(order):
                    if i - n < 0:
                        break
                    self.counts[n][tuple(toks[i - n : i])][w] += 1
        self.vocab = vocab
        self.totals = [{c: sum(v.values()) for c, v in d.items()} for d in self.counts]

    def prob(self, ctx: tuple, w: str, n: int | None = None) -> float:
        n = self.order - 1 if n is None else n
        if n < 0:
            return 1.0 / max(len(self.vocab), 1)
        c = ctx[len(ctx) - n :] if n else ()
        lower = self.prob(ctx, w, n - 1)
        tot = self.totals[n].get(c)
        if len(c) < n or not tot:
            return lower
        return (self.counts[n][c][w] + self.k * lower) / (tot + self.k)

    def top(self, ctx: tuple) -> str:
        cands = set()
        for n in range(self.order):
            c = ctx[len(ctx) - n :] if n else ()
            if len(c) == n and c in self.counts[n]:
                cands.update(w for w, _ in self.counts[n][c].most_common(20))
        return max(sorted(cands), key=lambda w: self.prob(ctx, w)) if cands else ""


def _dist_metrics(prompts: Prompts, probs_clean, probs_bad) -> dict[str, float]:
    """Card metrics from per-example probability lookups `probs(i, word)`."""
    out = {}
    for suffix, probs in (("", probs_clean), ("_corrupted", probs_bad)):
        ld, pd = [], []
        for i, (ans, con) in enumerate(zip(prompts.answers, prompts.contrasts)):
            pa = [max(probs(i, a), 1e-12) for a in ans]
            pc = [max(probs(i, c), 1e-12) for c in con]
            ld.append(np.mean(np.log(pa)) - np.mean(np.log(pc)))
            pd.append(sum(pa) - sum(pc))
        out["logit_diff" + suffix] = float(np.mean(ld))
        out["prob_diff" + suffix] = float(np.mean(pd))
    return out


def _ngram(prompts: Prompts, train: Prompts, order: int) -> dict[str, float]:
    m = NGram(train.training_texts(), order)
    ctx_c = [tuple(tokenize(t)[-(order - 1) :]) if order > 1 else () for t in prompts.clean]
    ctx_b = [tuple(tokenize(t)[-(order - 1) :]) if order > 1 else () for t in prompts.corrupted]
    acc = [m.top(c) in a for c, a in zip(ctx_c, prompts.answers)]
    out = {"accuracy": float(np.mean(acc))}
    out.update(
        _dist_metrics(prompts, lambda i, w: m.prob(ctx_c[i], w), lambda i, w: m.prob(ctx_b[i], w))
    )
    return out


def _acc(hits) -> dict[str, float]:
    return {"accuracy": float(np.mean(np.asarray(hits, dtype=float)))}


def _uniform(prompts: Prompts, candidates) -> dict[str, float]:
    """Chance: uniform over `candidates(i)`, the format's possible answers of example i."""
    acc, ld, pd = [], [], []
    for i, (ans, con) in enumerate(zip(prompts.answers, prompts.contrasts)):
        c = set(candidates(i))
        acc.append(sum(a in c for a in set(ans)) / len(c))
        pd.append((sum(a in c for a in ans) - sum(x in c for x in con)) / len(c))
        ld.append(0.0)
    return {"accuracy": float(np.mean(acc)), "logit_diff": 0.0, "prob_diff": float(np.mean(pd))}


def _most_common(values):
    return Counter(values).most_common(1)[0][0] if values else None


# ---- per-task heuristics: fn(test, train) -> {baseline: metrics} ---------------------------


def _ioi(p: Prompts, tr: Prompts):
    io_first = [s["IO"][0] < s["S1"][0] for s in p.spans]
    top_io = " " + _most_common(tr.meta["io"])
    return {
        "chance": _uniform(p, lambda i: (p.answers[i][0], p.contrasts[i][0])),
        "first_name": _acc(io_first),  # the first name of the prompt
        "last_name": _acc([False] * len(p)),  # the most recent name is S2, the subject
        "most_frequent_train_io": _acc([a[0] == top_io for a in p.answers]),
    }


def _greater_than(p: Prompts, tr: Prompts):
    pairs = [f"{k:02d}" for k in range(100)]
    prior = Counter(a[0] for a in tr.answers)
    tot = sum(prior.values())
    prior_p = {k: prior[k] / tot for k in pairs}
    top = max(pairs, key=prior_p.get)
    always = {"accuracy": float(np.mean([("99" in a) for a in p.answers]))}
    point = _dist_metrics(p, lambda i, w: float(w == "99"), lambda i, w: float(w == "99"))
    always.update({k: v for k, v in point.items() if k.startswith("prob_diff")})  # (a point
    # mass has no meaningful log-probability difference)
    pr = {"accuracy": float(np.mean([top in a for a in p.answers]))}
    pr.update(_dist_metrics(p, lambda i, w: prior_p.get(w, 0.0), lambda i, w: prior_p.get(w, 0.0)))
    return {
        "chance": _uniform(p, lambda i: pairs),
        "always_largest": always,  # always "99": every start year's answer set holds it
        "end_year_prior": pr,  # the training answers' distribution, blind to the start year
    }


def _docstring(p: Prompts, tr: Prompts):
    k, j = p.meta["n_params"], p.meta.get("n_doc", (2,) * len(p))
    top = " " + _most_common([x for ps in tr.meta["params"] for x in ps])
    return {
        "chance": _uniform(p, lambda i: (*p.answers[i], *p.contrasts[i])),
        "random_undocumented": {"accuracy": float(np.mean([1 / (a - b) for a, b in zip(k, j)]))},
        "last_def_param": _acc([a == b + 1 for a, b in zip(k, j)]),
        "most_frequent_train_name": _acc([a[0] == top for a in p.answers]),
    }


def _colored_objects(p: Prompts, tr: Prompts):
    by_obj = defaultdict(list)
    for cs, os_ in zip(tr.meta["colors"], tr.meta["objects"]):
        for c, o in zip(cs, os_):
            by_obj[o].append(c)
    overall = _most_common([c for cs in tr.meta["colors"] for c in cs])
    guess = [_most_common(by_obj.get(os_[q], [])) or overall
             for os_, q in zip(p.meta["objects"], p.meta["query"])]  # fmt: skip
    cs, q = p.meta["colors"], p.meta["query"]
    return {
        "chance": _uniform(p, lambda i: (*p.answers[i], *p.contrasts[i])),
        "first_color": _acc([x == 0 for x in q]),
        "last_color": _acc([x == len(c) - 1 for x, c in zip(q, cs)]),
        "object_color_prior": _acc([g == c[x] for g, c, x in zip(guess, cs, q)]),
    }


def _successor(p: Prompts, tr: Prompts):
    from mechjax.data.tasks.successor import SEQUENCES

    return {
        "chance": _uniform(p, lambda i: SEQUENCES[p.meta["kind"][i]]),
        "repeat_last": _acc([False] * len(p)),
    }


def _factual(p: Prompts, tr: Prompts):
    from mechjax.data.tasks.factual import ATTRIBUTES

    per_t, per_r = defaultdict(list), defaultdict(list)
    for t, r, a in zip(tr.meta["template"], tr.meta["relation"], tr.meta["attribute"]):
        per_t[t].append(a)
        per_r[r].append(a)
    g_t = [
        _most_common(per_t.get(t, per_r[r])) for t, r in zip(p.meta["template"], p.meta["relation"])
    ]
    g_r = [_most_common(per_r[r]) for r in p.meta["relation"]]
    return {
        "chance": _uniform(p, lambda i: ATTRIBUTES[p.meta["relation"][i]]),
        "most_common_per_template": _acc([g == a[0] for g, a in zip(g_t, p.answers)]),
        "most_common_per_relation": _acc([g == a[0] for g, a in zip(g_r, p.answers)]),
    }


def _arithmetic(p: Prompts, tr: Prompts):
    top = max(max(tr.meta["result"]), max(p.meta["result"]), 1)
    per_op = {op: _most_common([r for r, o in zip(tr.meta["result"], tr.meta["op"]) if o == op])
              for op in set(tr.meta["op"])}  # fmt: skip
    a, b, op, r = (p.meta[k] for k in ("a", "b", "op", "result"))
    return {
        "chance": _uniform(p, lambda i: [f" {x}" for x in range(top + 1)]),
        "copy_a": _acc([x == y for x, y in zip(a, r)]),
        "copy_b": _acc([x == y for x, y in zip(b, r)]),
        "add_ignoring_op": _acc([x + y == z for x, y, z in zip(a, b, r)]),
        "most_common_result_per_op": _acc([per_op.get(o) == z for o, z in zip(op, r)]),
    }


def _multiple_choice(p: Prompts, tr: Prompts):
    def options(q: Prompts, i: int) -> tuple[str, ...]:
        return tuple(q.clean[i][slice(*q.spans[i][f"option{j}"])] for j in range(4))

    seen, right = Counter(), Counter()
    for i, c in enumerate(tr.meta["correct"]):
        opts = options(tr, i)
        seen.update(opts)
        right[opts[c]] += 1
    score = {w: right[w] / seen[w] for w in seen}
    pos = _most_common(tr.meta["correct"])
    lab = _most_common([a[0] for a in tr.answers])
    out = {"chance": _uniform(p, lambda i: (*p.answers[i], *p.contrasts[i]))}
    hits, ctx_hits = [], []
    for i, c in enumerate(p.meta["correct"]):
        opts = options(p, i)
        best = max(range(4), key=lambda j: (score.get(opts[j], 0.0), -j))
        hits.append(best == c)
        q = p.meta["question"][i]
        if isinstance(q, str):  # the options the prompt names before the question (context)
            ctx = p.clean[i][: p.clean[i].index(q)]
            named = [j for j in range(4) if re.search(rf"\b{re.escape(opts[j])}\b", ctx)]
            ctx_hits.append((c in named) / len(named) if named else 0.25)
    out["option_prior"] = _acc(hits)  # question-blind: the option most often correct
    if ctx_hits:
        out["mentioned_in_context"] = {"accuracy": float(np.mean(ctx_hits))}
    out["position_prior"] = _acc([c == pos for c in p.meta["correct"]])
    out["label_prior"] = _acc([a[0] == lab for a in p.answers])
    return out


_NUM = re.compile(r"(?<![\d])(\d\d)(?![\d])")


def _needle(p: Prompts, tr: Prompts):
    first, last = [], []
    for t, a in zip(p.clean, p.answers):
        nums = _NUM.findall(t)
        first.append(bool(nums) and f" {nums[0]}" == a[0])
        # the first number of the last needle (values come in runs)
        starts = [
            m.start()
            for m in _NUM.finditer(t)
            if not t[: m.start()].rstrip().endswith(tuple("0123456789"))
        ]
        last.append(bool(starts) and f" {t[starts[-1] : starts[-1] + 2]}" == a[0])
    return {
        "chance": _uniform(p, lambda i: [f" {x}" for x in range(10, 100)]),
        "first_number": _acc(first),
        "last_needle": _acc(last),
    }


def _repeated(p: Prompts, tr: Prompts):
    words = sorted({w for ws in p.meta["words"] for w in ws}) if "words" in p.meta else []
    return {"chance": _uniform(p, lambda i: words or (*p.answers[i], *p.contrasts[i]))}


_HEURISTICS = {
    "ioi": _ioi,
    "greater_than": _greater_than,
    "docstring": _docstring,
    "colored_objects": _colored_objects,
    "successor": _successor,
    "factual": _factual,
    "arithmetic": _arithmetic,
    "multiple_choice": _multiple_choice,
    "needle": _needle,
    "repeated": _repeated,
}
NGRAM_N_TRAIN = {"needle": 600, "repeated": 2000}


def baselines(
    name: str,
    split: str | None = "test",
    n: int = 512,
    seed: int = 0,
    n_train: int | None = None,
    options: dict | None = None,
    ngrams: tuple[int, ...] = (1, 2, 3),
) -> dict[str, dict[str, float]]:
    """{baseline: {metric: value}} for task `name` on `n` prompts of `split` (generated with
    `options`), fitted on `n_train` prompts of "train" (default 4,000; 600 for needle, 2,000
    for repeated). `split=None` scores the legacy generator against legacy training prompts
    of another seed (the setting the shipped zoo models were evaluated in)."""
    if name not in _HEURISTICS:
        raise ValueError(f"baselines: unknown task {name!r}; valid: {sorted(_HEURISTICS)}.")
    options = options or {}
    n_train = n_train or NGRAM_N_TRAIN.get(name, 4000)
    test = generate(name, n, seed=seed, split=split, **options)
    train_split = None if split is None else "train"
    train = generate(name, n_train, seed=seed + TRAIN_SEED_OFFSET, split=train_split, **options)
    out = dict(_HEURISTICS[name](test, train))
    names = {1: "unigram", 2: "bigram", 3: "trigram"}
    for k in ngrams:
        out[names.get(k, f"{k}gram")] = _ngram(test, train, k)
    return out


def strongest(table: dict[str, dict[str, float]], metric: str = "accuracy") -> tuple[str, float]:
    """The baseline with the highest `metric` (chance included) and its value."""
    best = max((k for k in table if metric in table[k]), key=lambda k: table[k][metric])
    return best, table[best][metric]


def all_baselines(split: str = "test", n: int = 512, options: dict | None = None) -> dict:
    """{task: baselines(task, split, n, options=options[task])} for every task."""
    options = options or {}
    return {t: baselines(t, split, n, options=options.get(t)) for t in _HEURISTICS}


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.3f}"


def markdown(tables: dict) -> str:
    """One line per task and baseline: accuracy (and logit / prob diff where defined)."""
    lines = ["| task | baseline | top-1 | logit diff | prob diff |", "|---|---|---|---|---|"]
    for task, tab in tables.items():
        for b, m in tab.items():
            ld, pd = m.get("logit_diff", float("nan")), m.get("prob_diff", float("nan"))
            lines.append(f"| {task} | {b} | {_fmt(m['accuracy'])} | {_fmt(ld)} | {_fmt(pd)} |")
    return "\n".join(lines)
