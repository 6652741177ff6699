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
def successor(n: int, seed: int = 0, **options) -> Prompts:
    """`n` successor-sequence prompts.

    Args:
      n: number of examples.
      seed: the examples are a deterministic function of it.
      kind: one of "numbers", "number_words", "ordinals", "days", "months", "letters", or
        "mixed" (a kind drawn uniformly per example).

    Returns:
      :class:`Prompts` with spans "item0".."item{L-1}", "end" and meta kind/start/length.
    """
    kind = check_options("successor", options, {"kind": "mixed"})["kind"]
    if kind not in KINDS:
        raise ValueError(f"successor: kind={kind!r} is not valid; use one of {KINDS}.")
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
