"""Greater-than over years (Hanna, Liu & Variengien 2023, "How does GPT-2 compute greater-than?").

Clean: "The war lasted from the year 1732 to the year 17" -> the model should continue with a
two-digit end year greater than the start year's last two digits YY=32. Answers: every two-digit
string "33".."99" (no leading space: the tokenizer splits " 1732" into " 17", "32", so the
prompt ends mid-number); contrasts: "00".."32". The logit difference is mean(answer logits) -
mean(contrast logits), a stand-in for the paper's probability difference
sum p(YY' > YY) - sum p(YY' <= YY).

Corrupted: the paper's "01-dataset": the start year's YY is replaced by "01" ("from the year
1701"), which keeps the length and leaves (almost) every end year valid.

The first answer of each example is a random valid end year (the rest ascending), so
`Prompts.training_texts()` gives natural sentences ("... 1732 to the year 1758").

Option `min_yy` (1 or 2, default 2): the smallest start YY. The paper's 02..98 is the default.
With 1, start years ending in 01 occur too (the 01 prompts' corrupted text equals the clean
one). A model trained only on 02..98 has never seen a start year 01, so the 01 corruption is
off its training distribution: our mixture model trained that way put its corrupted-prompt
mass on late years (mean predicted YY 64 after "1701", 55 after "1702").

Differences from the paper: the paper uses a single template and ~120 nouns; we use 5
templates and 30 nouns; centuries 11..17 and YY in 02..98 as in the paper.

Spans: "YY" (the start year's last two digits), "century" (the start year's first two
digits, " 17"), "end" (the final " 17"). Meta: template, yy (int), century (int), noun.
"""

from __future__ import annotations

import random

from mechjax.data.tasks._text import check_int, check_options, end_span, fill
from mechjax.data.tasks.base import Prompts, register

NOUNS = (
    "war", "expedition", "reign", "siege", "voyage", "journey", "campaign", "dynasty",
    "plague", "conflict", "rebellion", "revolution", "famine", "crisis", "occupation",
    "trial", "treaty", "alliance", "pilgrimage", "construction", "drought", "empire",
    "marriage", "friendship", "rivalry", "tradition", "project", "study", "tour", "strike",
)  # fmt: skip
TEMPLATES = (
    "The {noun} lasted from the year {C}{YY} to the year {C2}",
    "The {noun} started in the year {C}{YY} and ended in the year {C2}",
    "The {noun} went on from the year {C}{YY} to the year {C2}",
    "The {noun} began in the year {C}{YY} and finished in the year {C2}",
    "The {noun} ran from the year {C}{YY} until the year {C2}",
)
CENTURIES = tuple(range(11, 18))
YY_RANGE = (2, 98)  # inclusive: leaves at least two answers and two contrasts
CORRUPT_YY = "01"
_PAIRS = tuple(f"{k:02d}" for k in range(100))


@register("greater_than")
def greater_than(n: int, seed: int = 0, **options) -> Prompts:
    """`n` greater-than prompts. Option min_yy: int in [1, 2] (default 2), the smallest start
    YY. See the module docstring."""
    lo = check_options("greater_than", options, {"min_yy": YY_RANGE[0]})["min_yy"]
    check_int("greater_than", "min_yy", lo, 1, YY_RANGE[0])
    rng = random.Random(seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {"template": [], "yy": [], "century": [], "noun": []}
    for _ in range(n):
        t = rng.randrange(len(TEMPLATES))
        noun = rng.choice(NOUNS)
        century = rng.choice(CENTURIES)
        yy = rng.randint(lo, YY_RANGE[1])
        c = f"{century}"
        text, sp = fill(TEMPLATES[t], {"noun": noun, "C": c, "YY": f"{yy:02d}", "C2": c})
        bad, _ = fill(TEMPLATES[t], {"noun": noun, "C": c, "YY": CORRUPT_YY, "C2": c})
        first = rng.randint(yy + 1, 99)
        clean.append(text)
        corrupted.append(bad)
        answers.append((_PAIRS[first], *_PAIRS[yy + 1 : first], *_PAIRS[first + 1 :]))
        contrasts.append(_PAIRS[: yy + 1])
        spans.append({"YY": sp["YY"], "century": sp["C"], "end": end_span(text)})
        for k, v in (("template", t), ("yy", yy), ("century", century), ("noun", noun)):
            meta[k].append(v)
    return Prompts.from_lists("greater_than", clean, corrupted, answers, contrasts, spans, meta)
