"""Repeated random words: continue the second copy of a random sequence (induction).

Source: the repeated-random-tokens probe of induction heads (Elhage et al. 2021, Olsson et
al. 2022): on a random sequence repeated twice, an induction head at a token of the second
copy attends to the token after that token's first occurrence and copies it. We use words
from a fixed list instead of random token ids so the prompts are text a model trains on.

    " cat river gold ... cat river" -> " gold"

  clean:     `length` distinct random words (from WORDS), then the same words again up to and
             including the word at index p-1 of the second copy (1 <= p <= length-1).
  answer:    the first copy's word at index p (what induction predicts).
  contrast:  the corrupted first copy's word at index p: a word not in the clean sequence.
  corrupted: the first copy replaced by other random words (none from the clean sequence)
             except at index p-1, which keeps the current word, so induction from the current
             word now points to a different next word (the contrast); the second copy is
             unchanged, so the token count is the same (all words are single tokens).
  spans:     "first_copy_match" (the current word's occurrence in the first copy, index p-1),
             "first_copy_answer" (the answer's occurrence in the first copy, index p: where
             an induction head attends), "end" (the current word).
  meta:      length, pos (p), words (the clean first copy).
"""

from __future__ import annotations

import random

from mechjax.data.tasks._text import check_options
from mechjax.data.tasks.base import Prompts, register

WORDS = tuple(
    " " + w
    for w in """
    time year people way day man thing woman life child world school state family student
    group country problem hand part place case week company system program question work
    government number night point home water room mother area money story fact month lot
    right study book eye job word business issue side kind head house service friend father
    power hour game line end member law car city name team minute idea kid body information
    back parent face others level office door health person art war history party result
    change morning reason research girl guy moment air teacher force education foot boy
    """.split()
)
MIN_LEN, MAX_LEN = 5, 15


@register("repeated")
def repeated(n: int, seed: int = 0, split: str | None = None, **options) -> Prompts:
    """`n` repeated-sequence prompts.

    Args:
      n: number of examples.
      seed: the examples are a deterministic function of it.
      length: words per copy, 2..len(WORDS)//2; None draws it uniformly from 5..15 per example.

      split: "train" / "val" / "test" for the split form at the end of this module (words
        and separators split by hash, lengths 3..24); None for the legacy form.

    Returns:
      :class:`Prompts` with spans "first_copy_match", "first_copy_answer", "end".
    """
    length = check_options("repeated", options, {"length": None})["length"]
    if split is not None:
        if length is not None and (not isinstance(length, int) or length < 2):
            raise ValueError(f"repeated: length={length!r} is not valid; use None or an int >= 2.")
        return _repeated_split(n, seed, split, length)
    max_len = len(WORDS) // 2  # the corrupted copy needs length - 1 fresh words
    if length is not None and (not isinstance(length, int) or not 2 <= length <= max_len):
        raise ValueError(
            f"repeated: length={length!r} is not valid; use None or an int in 2..{max_len}."
        )
    rng = random.Random(seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {k: [] for k in ("length", "pos", "words")}
    for _ in range(n):
        L = rng.randint(MIN_LEN, MAX_LEN) if length is None else length
        p = rng.randint(1, L - 1)
        words = rng.sample(WORDS, 2 * L)
        first, fresh = words[:L], words[L:]
        corrupt_first = list(fresh[:L])
        corrupt_first[p - 1] = first[p - 1]
        second = first[:p]
        text = "".join(first)
        starts = [sum(len(w) for w in first[:j]) for j in range(L)]
        clean.append(text + "".join(second))
        corrupted.append("".join(corrupt_first) + "".join(second))
        answers.append((first[p],))
        contrasts.append((corrupt_first[p],))
        full = clean[-1]
        spans.append(
            {
                "first_copy_match": (starts[p - 1], starts[p - 1] + len(first[p - 1])),
                "first_copy_answer": (starts[p], starts[p] + len(first[p])),
                "end": (len(full) - len(second[-1]), len(full)),
            }
        )
        for k, v in zip(meta, (L, p, tuple(first))):
            meta[k].append(v)
    return Prompts.from_lists("repeated", clean, corrupted, answers, contrasts, spans, meta)


# ---- split mode (`split=` "train" / "val" / "test"; see mechjax.data.tasks.splits) --------
# The words are split (a test sequence is made of words that no training sequence repeats),
# and so are the intro, the separator between the copies and the separator between words.
# Lengths are 3..24 per copy by default, so repeat distances vary widely.

V2_WORDS = WORDS + tuple(
    " " + w
    for w in """
    apple river stone glass paper music garden bread silver window forest bridge letter
    coffee engine ocean pencil rocket summer tiger valley wheel anchor basket candle desert
    feather harbor island jungle kettle ladder mirror needle planet rabbit saddle tunnel
    velvet wagon marble meadow copper shadow thunder pillow butter canvas dragon falcon
    castle cloud horse metal field winter column piece crime population light market north
    green yellow orange purple table chair spoon plate bottle shirt jacket pocket button
    ribbon blanket carpet curtain ticket camera piano guitar violin drum flute trumpet
    lemon cherry peach melon grape onion carrot potato tomato pepper honey sugar salt cream
    cheese butterfly eagle falcon owl wolf bear deer fox snake lion monkey zebra turtle
    """.split()
)
V2_WORDS = tuple(dict.fromkeys(V2_WORDS))
V2_INTROS = (
    "", "Words:", "List:", "Say:", "Copy this:", "Read:", "Echo:", "Sequence:", "Random words:",
    "Memorize:", "Here:", "Repeat after me:", "Chant:", "Items:", "Tokens:", "Listen:",
    "Write:", "Spell out:", "Recall:", "Note:",
)  # fmt: skip
V2_SEPARATORS = (
    "", "\n", ".", " |", " again:", " and again", " -", " ;", " repeat:", " ...", " //",
    " once more:", " then", " >>", " ::", "\n\n", " =", " now again:", " (again)", " ~",
)  # fmt: skip
V2_WORD_SEPS = ("", ",", " /", ";", " +", " -", " |", ".", " &", " >")
V2_MIN_LEN, V2_MAX_LEN = 3, 24


def _grammar():
    from mechjax.data.tasks.splits import Grammar

    return Grammar.of("repeated", intro=V2_INTROS, separator=V2_SEPARATORS, word_sep=V2_WORD_SEPS)


def split_sets(split: str) -> dict[str, tuple]:
    """The split's template pieces and words."""
    from mechjax.data.tasks.splits import part

    return {**_grammar().options(split), "word": part(V2_WORDS, "repeated/word", split)}


def _repeated_split(n: int, seed: int, split: str, length) -> Prompts:
    from mechjax.data.tasks.splits import rng as split_rng

    sets = split_sets(split)
    pool = sets["word"]
    hi = min(V2_MAX_LEN, len(pool) // 2)
    if length is not None and length > hi:
        raise ValueError(
            f"repeated: length={length} needs {2 * length} words; split {split!r} has {len(pool)}."
        )
    rng = split_rng("repeated", split, seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {k: [] for k in ("length", "pos", "words", "template", "word")}
    for _ in range(n):
        L = rng.randint(V2_MIN_LEN, hi) if length is None else length
        p = rng.randint(1, L - 1)
        intro, sep, wsep = (rng.choice(sets[s]) for s in ("intro", "separator", "word_sep"))
        words = rng.sample(pool, 2 * L)
        first, fresh = words[:L], words[L:]
        corrupt_first = list(fresh[:L])
        corrupt_first[p - 1] = first[p - 1]

        def copy(ws, wsep=wsep):  # each word followed by the word separator (as the answer)
            return "".join(w + wsep for w in ws)

        starts, pos = [], len(intro)
        for w in first:
            starts.append(pos)
            pos += len(w) + len(wsep)
        text = intro + copy(first) + sep + copy(first[:p])
        bad = intro + copy(corrupt_first) + sep + copy(first[:p])
        clean.append(text)
        corrupted.append(bad)
        answers.append((first[p],))
        contrasts.append((corrupt_first[p],))
        spans.append(
            {
                "first_copy_match": (starts[p - 1], starts[p - 1] + len(first[p - 1])),
                "first_copy_answer": (starts[p], starts[p] + len(first[p])),
                "end": (len(text) - len(wsep), len(text))
                if wsep
                else (len(text) - len(first[p - 1]), len(text)),
            }
        )
        meta_v = (L, p, tuple(first), "|".join((intro, sep, wsep)), tuple(words))
        for k, v in zip(meta, meta_v):
            meta[k].append(v)
    return Prompts.from_lists("repeated", clean, corrupted, answers, contrasts, spans, meta)


def _register_splits():
    from mechjax.data.tasks.base import register_splits

    register_splits(
        "repeated",
        lambda split: _grammar().count(split),
        split_sets,
        lambda: tuple(w.strip() for w in V2_WORDS),
    )


_register_splits()
