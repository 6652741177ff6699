"""Two-operand arithmetic: "12 + 7 =" -> " 19", "15 - 8 =" -> " 7".

Source: Zhang et al., "Interpreting and Improving Large Language Models in Arithmetic
Calculation" (ICML 2024): path patching finds a few heads that attend from the last position
to the operands and the operator, then MLPs compute the result. Their prompts are in the
same form ("{a} {op} {b} =", plus phrasings); we keep every operand and result in 0..99 so
each number is one token under the pair-chunking digit tokenizer.

  clean:     "{a} {op} {b} =" (template 0) or "Compute: {a} {op} {b} =" (template 1);
             op in `ops`, a, b in 0..M with a + b <= M or a - b >= 0 (uniform over the
             valid pairs of the chosen op); M = `max_value` (default 99).
  answer:    the result with its leading space.
  contrast:  `contrast="off_by_one"` (default): result + 1 or result - 1 (in 0..M);
             `"random"`: a uniformly random other number in 0..M.
  corrupted: the same template and operator with other operands, each with the same number
             of digits as the clean one (so the same token count), and a different result.
  spans:     "a", "op", "b", "eq" (the "="), "end" (the last token, also the "=").
  meta:      a, b, op, result, template, corrupt_a, corrupt_b.

Differences from the paper: results are limited to 0..99 (single tokens), two templates only.
"""

from __future__ import annotations

import random

from mechjax.data.tasks._text import check_int, check_options
from mechjax.data.tasks.base import Prompts, register

# the text before "{a} {op} {b} =" in each template
PREFIXES = ("", "Compute: ")
CONTRASTS = ("off_by_one", "random")


def _valid(a: int, b: int, op: str, top: int = 99) -> bool:
    return 0 <= a <= top and 0 <= b <= top and (a + b <= top if op == "+" else a >= b)


def _apply(a: int, b: int, op: str) -> int:
    return a + b if op == "+" else a - b


def _same_digits(rng: random.Random, x: int, top: int = 99) -> int:
    return rng.randint(0, min(9, top)) if x < 10 else rng.randint(10, top)


@register("arithmetic")
def arithmetic(n: int, seed: int = 0, split: str | None = None, **options) -> Prompts:
    """`n` addition / subtraction prompts.

    Args:
      n: number of examples.
      seed: the examples are a deterministic function of it.
      ops: the operators to draw from, a non-empty string over "+-" ("+", "-" or "+-").
      template: 0 or 1 to fix the template (see module docstring); None draws one per example.
      contrast: "off_by_one" or "random" (see module docstring).
      max_value: the largest operand and result, 21..99 (default 99; below 21 some prompts have
        no corrupted counterpart with the same digit counts). A smaller range is a
        smaller table to learn: `configs/zoo/gpt4l_mix.py` uses 39.

      split: "train" / "val" / "test" for the split grammar at the end of this module
        (operand pairs and template pieces split by hash; `template` must stay None); None
        for the legacy two templates.

    Returns:
      :class:`Prompts` with spans "a", "op", "b", "eq", "end".
    """
    opts = check_options(
        "arithmetic",
        options,
        {"ops": "+-", "template": None, "contrast": "off_by_one", "max_value": 99},
    )
    ops, template, contrast = opts["ops"], opts["template"], opts["contrast"]
    top = opts["max_value"]
    check_int("arithmetic", "max_value", top, 21, 99)
    if not isinstance(ops, str) or not ops or set(ops) - {"+", "-"}:
        raise ValueError(f"arithmetic: ops={ops!r} is not valid; use '+', '-' or '+-'.")
    if template is not None and template not in range(len(PREFIXES)):
        raise ValueError(
            f"arithmetic: template={template!r} is not valid; use None or 0..{len(PREFIXES) - 1}."
        )
    if contrast not in CONTRASTS:
        raise ValueError(f"arithmetic: contrast={contrast!r} is not valid; use one of {CONTRASTS}.")
    op_list = sorted(set(ops))
    if split is not None:
        if template is not None:
            raise ValueError(
                "arithmetic: template= picks a legacy template; with split= leave it None."
            )
        return _arithmetic_split(n, seed, split, op_list, contrast, top)
    rng = random.Random(seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {k: [] for k in ("a", "b", "op", "result", "template", "corrupt_a", "corrupt_b")}
    for _ in range(n):
        op = rng.choice(op_list)
        t = rng.randrange(len(PREFIXES)) if template is None else template
        while True:  # uniform over valid pairs (rejection: >= half of all pairs are valid)
            a, b = rng.randint(0, top), rng.randint(0, top)
            if _valid(a, b, op, top):
                break
        r = _apply(a, b, op)
        while True:  # every digit-count class has valid pairs with other results
            ca, cb = _same_digits(rng, a, top), _same_digits(rng, b, top)
            if _valid(ca, cb, op, top) and _apply(ca, cb, op) != r:
                break
        if contrast == "off_by_one":
            c = r + rng.choice((-1, 1)) if 0 < r < top else (1 if r == 0 else top - 1)
        else:
            c = rng.choice([x for x in range(top + 1) if x != r])
        prefix = PREFIXES[t]
        text = f"{prefix}{a} {op} {b} ="
        ia = len(prefix)
        ib = ia + len(str(a)) + 3
        clean.append(text)
        corrupted.append(f"{prefix}{ca} {op} {cb} =")
        answers.append((f" {r}",))
        contrasts.append((f" {c}",))
        spans.append(
            {
                "a": (ia, ia + len(str(a))),
                "op": (ib - 2, ib - 1),
                "b": (ib, ib + len(str(b))),
                "eq": (len(text) - 1, len(text)),
                "end": (len(text) - 1, len(text)),
            }
        )
        for k, v in zip(meta, (a, b, op, r, t, ca, cb)):
            meta[k].append(v)
    return Prompts.from_lists("arithmetic", clean, corrupted, answers, contrasts, spans, meta)


# ---- split mode (`split=` "train" / "val" / "test"; see mechjax.data.tasks.splits) --------
# A template is context x prefix x expression (an operator phrasing with its "=" word, per
# operator); every slot is split. The operand pairs are split too, by a hash of "a op b", so
# a test prompt asks a sum or difference that no training prompt states.


def _expressions(op: str) -> tuple[str, ...]:
    words = ("+", "plus", "and", "with") if op == "+" else ("-", "minus", "less", "take away")
    eqs = ("=", "is", "equals", "gives", "makes", "comes to")
    simple = tuple(f"{{a}} [{w}] {{b}} <{e}>" for w in words for e in eqs)
    if op == "+":
        phrases = (
            "the [sum] of {a} and {b} <is>",
            "{a} [added] to {b} <gives>",
            "[add] {a} and {b} to <get>",
            "if you [add] {b} to {a} you <get>",
            "the total of {a} [and] {b} <is>",
            "{a} and {b} [together] <make>",
        )
    else:
        phrases = (
            "the [difference] of {a} and {b} <is>",
            "{b} [subtracted] from {a} <gives>",
            "[subtract] {b} from {a} to <get>",
            "if you [subtract] {b} from {a} you <get>",
            "from {a} [remove] {b} and you <have>",
            "{a} with {b} [removed] <is>",
        )
    return simple + phrases


V2_CONTEXTS = (
    "", "Let's do sums. ", "Numbers again. ", "Here is one. ", "Time for math. ",
    "Listen carefully. ", "Think. ", "One more. ", "Ready? ", "Next question. ",
)  # fmt: skip
V2_PREFIXES = (
    "", "Compute: ", "Q: ", "Math: ", "Quick: ", "Solve: ", "Homework: ", "Easy one: ",
    "Mental math: ", "Calculate: ", "Answer this: ", "Check: ", "Note: ", "Problem: ", "Try: ",
    "Tom says ", "We know ", "Clearly ", "In class: ", "Recall: ", "Fact: ", "Exercise: ",
    "Drill: ", "Warm up: ", "Test: ",
)  # fmt: skip


def _grammar():
    from mechjax.data.tasks.splits import Grammar

    return Grammar.of(
        "arithmetic",
        context=V2_CONTEXTS,
        prefix=V2_PREFIXES,
        expr_plus=_expressions("+"),
        expr_minus=_expressions("-"),
    )


def _pairs(op: str) -> tuple[str, ...]:
    return tuple(f"{a} {op} {b}" for a in range(100) for b in range(100) if _valid(a, b, op))


def split_sets(split: str) -> dict[str, tuple]:
    """The split's template pieces and operand pairs ("pair" holds "a op b" strings)."""
    from mechjax.data.tasks.splits import part

    pairs = part(_pairs("+"), "arithmetic/pair/+", split)
    pairs += part(_pairs("-"), "arithmetic/pair/-", split)
    return {**_grammar().options(split), "pair": pairs}


_PAIR_CACHE: dict = {}


def _split_pairs(split: str, op: str, top: int):
    """[(a, b), ...] of the split with operands and result in 0..top, and by digit class."""
    from mechjax.data.tasks.splits import draw_key

    key = (split, op, top, draw_key())
    if key not in _PAIR_CACHE:
        from mechjax.data.tasks.splits import part

        out = []
        for s in part(_pairs(op), f"arithmetic/pair/{op}", split):
            a, _, b = s.split(" ")
            if _valid(int(a), int(b), op, top):
                out.append((int(a), int(b)))
        by_class: dict = {}
        for a, b in out:
            by_class.setdefault((a >= 10, b >= 10), []).append((a, b))
        _PAIR_CACHE[key] = (tuple(out), {k: tuple(v) for k, v in by_class.items()})
    return _PAIR_CACHE[key]


def _render_expr(context: str, prefix: str, expr: str, a: int, b: int):
    """The prompt and its a / op / b / eq / end spans."""
    from mechjax.data.tasks._text import fill

    op_w = expr[expr.index("[") + 1 : expr.index("]")]
    eq_w = expr[expr.index("<") + 1 : expr.index(">")]
    t = expr.replace(f"[{op_w}]", "{OP}").replace(f"<{eq_w}>", "{EQ}")
    body, sp = fill(t, {"a": str(a), "b": str(b), "OP": op_w, "EQ": eq_w})
    if body[0].islower() and (not prefix or prefix.endswith((". ", ": ", "? "))):
        body = body[0].upper() + body[1:]
    head = context + prefix
    text = head + body
    span = {k: (sp[f][0] + len(head), sp[f][1] + len(head)) for k, f in
            (("a", "a"), ("op", "OP"), ("b", "b"), ("eq", "EQ"))}  # fmt: skip
    # fields preceded by a space include it: spans name the word's token (" plus")
    span["end"] = span["eq"]
    return text, span


def _arithmetic_split(n, seed, split, op_list, contrast, top) -> Prompts:
    from mechjax.data.tasks.splits import rng as split_rng

    sets = split_sets(split)
    rng = split_rng("arithmetic", split, seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {k: [] for k in ("a", "b", "op", "result", "template", "corrupt_a", "corrupt_b")}
    meta["pair"] = []
    for _ in range(n):
        op = rng.choice(op_list)
        pairs, by_class = _split_pairs(split, op, top)
        if not pairs:
            raise ValueError(f"arithmetic: split {split!r} has no {op!r} pairs within {top}.")
        context, prefix = rng.choice(sets["context"]), rng.choice(sets["prefix"])
        expr = rng.choice(sets["expr_plus" if op == "+" else "expr_minus"])
        a, b = rng.choice(pairs)
        r = _apply(a, b, op)
        cands = by_class[(a >= 10, b >= 10)]
        for _ in range(100):
            ca, cb = rng.choice(cands)
            if _apply(ca, cb, op) != r:
                break
        else:  # a digit class whose split pairs all share the result: any valid pair
            while True:
                ca, cb = _same_digits(rng, a, top), _same_digits(rng, b, top)
                if _valid(ca, cb, op, top) and _apply(ca, cb, op) != r:
                    break
        if contrast == "off_by_one":
            c = r + rng.choice((-1, 1)) if 0 < r < top else (1 if r == 0 else top - 1)
        else:
            c = rng.choice([x for x in range(top + 1) if x != r])
        text, span = _render_expr(context, prefix, expr, a, b)
        clean.append(text)
        corrupted.append(_render_expr(context, prefix, expr, ca, cb)[0])
        answers.append((f" {r}",))
        contrasts.append((f" {c}",))
        spans.append(span)
        tid = "|".join((context, prefix, expr))
        for k, v in zip(meta, (a, b, op, r, tid, ca, cb, f"{a} {op} {b}")):
            meta[k].append(v)
    return Prompts.from_lists("arithmetic", clean, corrupted, answers, contrasts, spans, meta)


def _register_splits():
    from mechjax.data.tasks.base import register_splits

    def count(split):
        o = _grammar().options(split)
        return len(o["context"]) * len(o["prefix"]) * (len(o["expr_plus"]) + len(o["expr_minus"]))

    register_splits("arithmetic", count, split_sets, lambda: tuple(str(i) for i in range(100)))


_register_splits()
