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
def arithmetic(n: int, seed: int = 0, **options) -> Prompts:
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
