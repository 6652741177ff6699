"""Successor sequences: continue an ordered list by one item.

Source: Gould, Ong, Ogden & Conmy, "Successor Heads" (ICLR 2024), which studies heads that
map a token of an ordinal sequence (numbers, number words, ordinals, days, months, letters)
to its successor ("Monday" -> "Tuesday"). The paper scores heads on single tokens through the
effective OV circuit; here we need prompts a small model is trained and evaluated on, so a
prompt is a run of 3-5 consecutive items and the model predicts the next one:

    " 3 4 5 6" -> " 7"        " Monday Tuesday Wednesday" -> " Thursday"

  clean:      3-5 consecutive items of one kind, each with its leading space.
  answer:     the successor of the last item.
  contrasts:  the last item itself and the item two steps after it (the two nearest wrong
              guesses: "repeat" and "skip one"); when the answer is the list's final item
              (" Sunday") there is no item two steps on, and the second contrast is the
              item before the last one instead.
  corrupted:  the same items in a shuffled order whose last item is not the clean last item,
              so the run no longer ends in a succession; it is a permutation of the same
              item tokens, hence exactly the same token count.
  spans:      "item0" .. "item{L-1}" (each item), "end" (the last item).
  meta:       kind, start (index of the first item in its list), length.

Differences from the paper: we use prompts rather than single-token OV scores; ranges stop
before the end of each list (no wrap-around from Sunday to Monday), and numbers are 1-98 so
every item and answer is one token under the pair-chunking digit tokenizer.
Every item of every list occurs in some prompt or answer, so a model trained on the
texts sees each contrast token too.
"""

from __future__ import annotations

import functools
import random

from mechjax.data.tasks._text import check_options
from mechjax.data.tasks.base import Prompts, register

SEQUENCES: dict[str, tuple[str, ...]] = {
    "numbers": tuple(f" {i}" for i in range(1, 99)),
    "number_words": tuple(
        " " + w for w in "one two three four five six seven eight nine ten eleven twelve".split()
    ),
    "ordinals": tuple(
        " " + w for w in "first second third fourth fifth sixth seventh eighth ninth tenth".split()
    ),
    "days": tuple(
        " " + w for w in "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
    ),
    "months": tuple(
        " " + w
        for w in (
            "January February March April May June July August September October November December"
        ).split()
    ),
    "letters": tuple(" " + chr(c) for c in range(ord("A"), ord("Z") + 1)),
}
KINDS = (*SEQUENCES, "mixed")
MIN_LEN, MAX_LEN = 3, 5


@register("successor")
def successor(n: int, seed: int = 0, split: str | None = None, **options) -> Prompts:
    """`n` successor-sequence prompts.

    Args:
      n: number of examples.
      seed: the examples are a deterministic function of it.
      kind: one of "numbers", "number_words", "ordinals", "days", "months", "letters", or
        "mixed" (a kind drawn uniformly per example).

      split: "train" / "val" / "test" for the split grammar at the end of this module (runs
        and template pieces split by hash); None for the legacy form (" 3 4 5" -> " 6").

    Returns:
      :class:`Prompts` with spans "item0".."item{L-1}", "end" and meta kind/start/length.
    """
    kind = check_options("successor", options, {"kind": "mixed"})["kind"]
    if kind not in KINDS:
        raise ValueError(f"successor: kind={kind!r} is not valid; use one of {KINDS}.")
    if split is not None:
        return _successor_split(n, seed, split, kind)
    rng = random.Random(seed)
    kinds = tuple(SEQUENCES)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {"kind": [], "start": [], "length": []}
    for _ in range(n):
        k = rng.choice(kinds) if kind == "mixed" else kind
        items = SEQUENCES[k]
        length = rng.randint(MIN_LEN, MAX_LEN)
        # the answer may be the list's final item (so every item is seen in training text)
        start = rng.randint(0, len(items) - length - 1)
        run = list(items[start : start + length])
        order = list(range(length))
        # shuffled so the last item differs from the clean last item (so also not increasing)
        while order[-1] == length - 1:
            rng.shuffle(order)
        text, span = "", {}
        for j, w in enumerate(run):
            span[f"item{j}"] = (len(text), len(text) + len(w))
            text += w
        span["end"] = span[f"item{length - 1}"]
        clean.append(text)
        corrupted.append("".join(run[j] for j in order))
        answers.append((items[start + length],))
        after = start + length + 1  # two steps past the last item, if the list goes on
        contrasts.append((run[-1], items[after] if after < len(items) else run[-2]))
        spans.append(span)
        meta["kind"].append(k)
        meta["start"].append(start)
        meta["length"].append(length)
    return Prompts.from_lists("successor", clean, corrupted, answers, contrasts, spans, meta)


# ---- split mode (`split=` "train" / "val" / "test"; see mechjax.data.tasks.splits) --------
# A template is intro x separator x ending (x run length 3-5): " Count: 3, 4, 5, so next is"
# -> " 6". Every slot is split, and so are the runs themselves: (kind, start, length) by a
# hash of the run's text, per kind, so a test run never appears in training (its items and
# transitions do, in other runs).

V2_INTROS = (
    "", "Count:", "Next:", "Sequence:", "Keep going:", "List:", "Continue the list:",
    "In order:", "Here is a list:", "Let us count:", "The series goes", "Say them in order:",
    "Go on:", "Order:", "One after another:", "Step by step:", "Counting up:", "Read it out:",
    "Try this:", "Onwards:", "Recite:", "From the start:", "We had", "She said", "Notes:",
    "The pattern is", "Line up:", "Check this:", "Ordered:", "Running list:",
)  # fmt: skip
V2_SEPARATORS = ("", ",", ";", " then", " and", " ->", ".", " /", " |", " ...", ":", " -", " >",
                 " next", " after")  # fmt: skip
V2_ENDINGS = (
    "", " so next is", " and next comes", " then comes", " What comes next? It is",
    " and after that", " followed by", " the next one is", " Next up:", " Then:",
    " which is followed by", " and then", " Continue:", " After that comes", " Now:",
)  # fmt: skip


def _grammar():
    from mechjax.data.tasks.splits import Grammar

    return Grammar.of("successor", intro=V2_INTROS, separator=V2_SEPARATORS, ending=V2_ENDINGS)


def _runs(kind: str) -> tuple[str, ...]:
    items = SEQUENCES[kind]
    return tuple(
        "".join(items[s : s + L])
        for L in range(MIN_LEN, MAX_LEN + 1)
        for s in range(len(items) - L)  # the answer may be the list's final item
    )


def split_sets(split: str) -> dict[str, tuple]:
    """The split's template pieces and runs ("run" holds "kind:text" of each run)."""
    from mechjax.data.tasks.splits import part

    runs = tuple(f"{k}:{r}" for k in SEQUENCES for r in part(_runs(k), f"successor/run/{k}", split))
    return {**_grammar().options(split), "run": runs}


def _split_runs(split: str) -> dict[str, tuple[tuple[int, int], ...]]:
    """{kind: ((start, length), ...)} of the split's runs."""
    from mechjax.data.tasks.splits import draw_key

    return _split_runs_cached(split, draw_key())


@functools.lru_cache(maxsize=8)
def _split_runs_cached(split: str, _draw: tuple) -> dict[str, tuple[tuple[int, int], ...]]:
    from mechjax.data.tasks.splits import part

    out = {}
    for k, items in SEQUENCES.items():
        keep = set(part(_runs(k), f"successor/run/{k}", split))
        out[k] = tuple(
            (s, L)
            for L in range(MIN_LEN, MAX_LEN + 1)
            for s in range(len(items) - L)
            if "".join(items[s : s + L]) in keep
        )
    return out


def _successor_split(n: int, seed: int, split: str, kind: str) -> Prompts:
    from mechjax.data.tasks.splits import rng as split_rng

    sets, runs = split_sets(split), _split_runs(split)
    rng = split_rng("successor", split, seed)
    kinds = tuple(SEQUENCES)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {"kind": [], "start": [], "length": [], "template": [], "run": []}
    for _ in range(n):
        k = rng.choice(kinds) if kind == "mixed" else kind
        items = SEQUENCES[k]
        start, length = rng.choice(runs[k])
        intro, sep, ending = (rng.choice(sets[s]) for s in ("intro", "separator", "ending"))
        run = list(items[start : start + length])
        order = list(range(length))
        while order[-1] == length - 1:
            rng.shuffle(order)
        text, span = intro, {}
        for j, w in enumerate(run):
            span[f"item{j}"] = (len(text), len(text) + len(w))
            text += w + sep
        text += ending
        span["end"] = span[f"item{length - 1}"] if not (sep or ending) else _last_word(text)
        clean.append(text)
        corrupted.append(intro + "".join(run[j] + sep for j in order) + ending)
        answers.append((items[start + length],))
        after = start + length + 1
        contrasts.append((run[-1], items[after] if after < len(items) else run[-2]))
        spans.append(span)
        tid = "|".join((intro, sep, ending, str(length)))
        for key, v in zip(meta, (k, start, length, tid, f"{k}:{''.join(run)}")):
            meta[key].append(v)
    return Prompts.from_lists("successor", clean, corrupted, answers, contrasts, spans, meta)


def _last_word(text: str) -> tuple[int, int]:
    from mechjax.data.tasks._text import end_span

    s, e = end_span(text)
    if s == e or not text[s:e].strip():  # e.g. a trailing "," after a space-less item
        return len(text) - 1, len(text)
    return s, e


def _register_splits():
    from mechjax.data.tasks.base import register_splits

    n_len = MAX_LEN - MIN_LEN + 1
    register_splits(
        "successor",
        lambda split: _grammar().count(split) * n_len,
        split_sets,
        lambda: tuple(w.strip() for v in SEQUENCES.values() for w in v),
    )


_register_splits()
