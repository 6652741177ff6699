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
def greater_than(n: int, seed: int = 0, split: str | None = None, **options) -> Prompts:
    """`n` greater-than prompts. Option min_yy: int in [1, 2] (default 2), the smallest start
    YY. See the module docstring. `split` ("train" / "val" / "test") uses the split grammar
    at the end of this module; None the legacy 5 templates."""
    lo = check_options("greater_than", options, {"min_yy": YY_RANGE[0]})["min_yy"]
    check_int("greater_than", "min_yy", lo, 1, YY_RANGE[0])
    if split is not None:
        return _greater_than_split(n, seed, split, lo)
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


# ---- split mode (`split=` "train" / "val" / "test"; see mechjax.data.tasks.splits) --------
# A template is frame x span x (start-year marker, end-year marker); every slot is split.
# Nouns and start years (century + YY, e.g. "1732") are split too, so a test prompt's start
# year never starts a training prompt.

V2_NOUNS = NOUNS + (
    "festival", "exhibition", "blockade", "truce", "migration", "boom", "recession",
    "monarchy", "republic", "council", "crusade", "uprising", "mission", "survey",
    "partnership", "feud", "contest", "league", "fair", "reform", "movement", "schism",
    "boycott", "embargo", "settlement", "colony", "school", "era", "craze", "winter",
)  # fmt: skip
V2_FRAMES = (
    "The {noun} {span}", "Historians agree that the {noun} {span}",
    "Records show that the {noun} {span}", "According to the chronicle, the {noun} {span}",
    "It is known that the {noun} {span}", "In the old books, the {noun} {span}",
    "Most sources say the {noun} {span}", "Our teacher said the {noun} {span}",
    "As the archive shows, the {noun} {span}", "Legend has it that the {noun} {span}",
    "Experts believe the {noun} {span}", "The museum notes that the {noun} {span}",
    "Few people know that the {noun} {span}", "We read that the {noun} {span}",
    "The report says that the {noun} {span}", "In short, the {noun} {span}",
    "Scholars wrote that the {noun} {span}", "By all accounts the {noun} {span}",
    "The guide explained that the {noun} {span}", "Back then, the {noun} {span}",
    "The letters suggest that the {noun} {span}", "My grandfather told me the {noun} {span}",
    "The plaque says the {noun} {span}", "Everyone in town knew the {noun} {span}",
    "The textbook claims the {noun} {span}",
)  # fmt: skip
V2_SPANS = (
    "lasted from {Y1} to {Y2}", "started in {Y1} and ended in {Y2}",
    "went on from {Y1} to {Y2}", "began in {Y1} and finished in {Y2}",
    "ran from {Y1} until {Y2}", "was active from {Y1} to {Y2}",
    "began in {Y1} and was over by {Y2}", "started in {Y1} and lasted until {Y2}",
    "took place between {Y1} and {Y2}", "continued from {Y1} through {Y2}",
    "opened in {Y1} and closed in {Y2}", "was founded in {Y1} and dissolved in {Y2}",
    "first appeared in {Y1} and faded in {Y2}", "kicked off in {Y1} and wrapped up in {Y2}",
    "was planned in {Y1} and completed in {Y2}", "was announced in {Y1} and done in {Y2}",
    "spanned the years {Y1} to {Y2}", "stretched from {Y1} to {Y2}",
    "held from {Y1} until {Y2}", "existed from {Y1} to {Y2}",
)  # fmt: skip
V2_MARKERS = (
    "the year {X}", "{X}", "the spring of {X}", "the summer of {X}", "the autumn of {X}",
    "the winter of {X}", "early {X}", "late {X}", "about {X}", "roughly {X}", "AD {X}",
    "the fall of {X}", "around {X}", "the year AD {X}", "mid {X}",
)  # fmt: skip


def _grammar():
    from mechjax.data.tasks.splits import Grammar

    return Grammar.of("greater_than", frame=V2_FRAMES, span=V2_SPANS, marker=V2_MARKERS)


def _start_years(lo: int = 1) -> tuple[str, ...]:
    return tuple(f"{c}{yy:02d}" for c in CENTURIES for yy in range(lo, YY_RANGE[1] + 1))


def split_sets(split: str) -> dict[str, tuple]:
    """The split's template pieces, nouns and start years ("1732", ...)."""
    from mechjax.data.tasks.splits import part

    return {
        **_grammar().options(split),
        "noun": part(V2_NOUNS, "greater_than/noun", split),
        "start_year": part(_start_years(), "greater_than/start_year", split),
    }


def _greater_than_split(n: int, seed: int, split: str, lo: int) -> Prompts:
    from mechjax.data.tasks.splits import rng as split_rng

    sets = split_sets(split)
    years = tuple(y for y in sets["start_year"] if int(y[2:]) >= lo)
    rng = split_rng("greater_than", split, seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {k: [] for k in ("template", "yy", "century", "noun", "start_year")}
    for _ in range(n):
        frame, span = rng.choice(sets["frame"]), rng.choice(sets["span"])
        m1, m2 = rng.choice(sets["marker"]), rng.choice(sets["marker"])
        template = frame.replace("{span}", span)
        template = template.replace("{Y1}", m1.replace("{X}", "{C}{YY}"))
        template = template.replace("{Y2}", m2.replace("{X}", "{C2}"))
        noun, year = rng.choice(sets["noun"]), rng.choice(years)
        c, yy = year[:2], int(year[2:])
        text, sp = fill(template, {"noun": noun, "C": c, "YY": f"{yy:02d}", "C2": c})
        bad, _ = fill(template, {"noun": noun, "C": c, "YY": CORRUPT_YY, "C2": c})
        first = rng.randint(yy + 1, 99)
        clean.append(text)
        corrupted.append(bad)
        answers.append((_PAIRS[first], *_PAIRS[yy + 1 : first], *_PAIRS[first + 1 :]))
        contrasts.append(_PAIRS[: yy + 1])
        spans.append({"YY": sp["YY"], "century": sp["C"], "end": end_span(text)})
        for k, v in zip(meta, (template, yy, int(c), noun, year)):
            meta[k].append(v)
    return Prompts.from_lists("greater_than", clean, corrupted, answers, contrasts, spans, meta)


def _register_splits():
    from mechjax.data.tasks.base import register_splits

    def count(split):
        o = _grammar().options(split)
        return len(o["frame"]) * len(o["span"]) * len(o["marker"]) ** 2

    register_splits("greater_than", count, split_sets, lambda: V2_NOUNS)


_register_splits()
