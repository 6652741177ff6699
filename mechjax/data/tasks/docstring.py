'''Docstring parameter completion (Heimersheim & Janiak 2023, "A circuit for Python docstrings
in a 4-layer attention-only transformer").

Clean: a method definition with 3 or 4 parameters after `self` and a reST docstring that
documents the first two; the prompt stops at the next `:param`, so the answer is the third
parameter name in def order, with its leading space:

    def port(self, load, size, files):
        """oil column piece

        :param load: crime population
        :param size: unit dark
        :param

-> answer " files"; contrasts: the other parameter names of the def (" load", " size" and the
fourth one if present; the first two are also the documented ones).

Corrupted: the paper's "random def" variant: every parameter name in the def is replaced by a
fresh random name (distinct, none of the clean ones), the docstring is unchanged. The token
count is unchanged since all names come from one list of single-token words.

Differences from the paper: the paper's prompts have 6 parameters after `self` with 3 already
documented and random 1-2 word descriptions; ours have 3-4 (2 documented), 40 names, 30
description words and 20 function names, to keep prompts short (~50 tokens).

Spans: "A_def", "B_def", "C_def" ("D_def" with 4 parameters): the names in the def;
"A_doc", "B_doc": the documented names; "end" (the final `:param`). Meta: func, params
(tuple of names in def order), n_params.
'''

from __future__ import annotations

import random

from mechjax.data.tasks._text import check_choice, check_options, end_span, fill
from mechjax.data.tasks.base import Prompts, register

NAMES = (
    "size", "file", "name", "data", "path", "value", "key", "index", "count", "mode",
    "type", "text", "line", "item", "node", "user", "url", "token", "label", "model",
    "source", "target", "shape", "state", "config", "level", "limit", "offset", "format",
    "result", "prefix", "start", "step", "width", "height", "color", "port", "host",
    "table", "query",
)  # fmt: skip
WORDS = (
    "oil", "column", "piece", "crime", "population", "unit", "dark", "river", "glass",
    "stone", "light", "paper", "music", "story", "market", "north", "green", "cloud",
    "horse", "metal", "field", "winter", "garden", "bread", "silver", "window", "forest",
    "bridge", "letter", "coffee",
)  # fmt: skip
FUNCS = (
    "load", "parse", "update", "check", "build", "render", "fetch", "merge", "split",
    "apply", "write", "read", "send", "handle", "create", "compute", "convert", "reset",
    "scan", "draw",
)  # fmt: skip

ROLES = ("A", "B", "C", "D")


def _template(n_params: int) -> str:
    params = ", ".join("{" + r + "_def}" for r in ROLES[:n_params])
    return (
        "def {func}(self, " + params + "):\n"
        '    """{w0} {w1} {w2}\n'
        "\n"
        "    :param {A_doc}: {w3} {w4}\n"
        "    :param {B_doc}: {w5} {w6}\n"
        "    :param"
    )


_TEMPLATES = {k: _template(k) for k in (3, 4)}


@register("docstring")
def docstring(n: int, seed: int = 0, **options) -> Prompts:
    """`n` docstring prompts. Options: n_params in (3, 4, "mixed"; default "mixed"): parameters
    after `self`; names: the parameter-name words (default `NAMES`; pass the ones that are
    single tokens for your tokenizer, e.g. a code-only one). See the module docstring."""
    opts = check_options("docstring", options, {"n_params": "mixed", "names": NAMES})
    check_choice("docstring", "n_params", opts["n_params"], (3, 4, "mixed"))
    pool = tuple(opts["names"])
    if len(set(pool)) < 8 or not all(isinstance(x, str) and x.isidentifier() for x in pool):
        raise ValueError(
            f"docstring: names must hold >= 8 distinct identifiers (8 = two sets of 4 "
            f"parameters), got {len(set(pool))}: {pool[:10]}."
        )
    rng = random.Random(seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {"func": [], "params": [], "n_params": []}
    for _ in range(n):
        k = opts["n_params"] if opts["n_params"] != "mixed" else rng.choice((3, 4))
        names = rng.sample(pool, 2 * k)
        params, fresh = names[:k], names[k:]
        func = rng.choice(FUNCS)
        words = {f"w{i}": w for i, w in enumerate(rng.choices(WORDS, k=7))}
        values = {"func": func, "A_doc": params[0], "B_doc": params[1], **words}
        text, sp = fill(_TEMPLATES[k], {**values, **{f"{r}_def": p for r, p in zip(ROLES, params)}})
        bad, _ = fill(_TEMPLATES[k], {**values, **{f"{r}_def": p for r, p in zip(ROLES, fresh)}})
        clean.append(text)
        corrupted.append(bad)
        answers.append((" " + params[2],))
        contrasts.append(tuple(" " + p for i, p in enumerate(params) if i != 2))
        roles = [f"{r}_def" for r in ROLES[:k]] + ["A_doc", "B_doc"]
        spans.append({**{r: sp[r] for r in roles}, "end": end_span(text)})
        for key, v in (("func", func), ("params", tuple(params)), ("n_params", k)):
            meta[key].append(v)
    return Prompts.from_lists("docstring", clean, corrupted, answers, contrasts, spans, meta)
