"""Needle in a haystack: retrieve a key's value from a needle hidden in filler text.

Source: Wu et al. 2024, "Retrieval Head Mechanistically Explains Long-Context Factuality":
a needle sentence is inserted at some depth into a long haystack and the model is asked for
it; "retrieval heads" attend to the needle token the model is copying (score > 0.1).
Ours is a short key-value version (a 2-digit secret number of a person) so that a small model
can be trained on it and each answer is one token:

    "<filler> ... The secret number of Anna is 42. <filler> ... What is the secret number
    of Anna? It is" -> " 42"

  clean:     `n_filler` filler sentences (from FILLER, without repeats while they last), the
             needle inserted between them at `depth` (fraction of the fillers before it), then
             the question.
  answer:    the needle's value (10..99) with its leading space.
  contrast:  the corrupted needle's value (another 2-digit number).
  corrupted: the same text with the needle's value replaced by that other 2-digit number
             (so the same token count; the answer changes).
  spans:     "needle" (the whole needle sentence), "key" (the key in the needle), "value"
             (the value in the needle), "question_key" (the key in the question), "end".
  meta:      key, value, depth (the depth used: needle index / n_filler), n_filler,
             corrupt_value.

Differences from the paper: a short haystack of simple sentences (default about 130 tokens)
instead of thousands of tokens of essays; the answer is one token, not a sentence.
"""

from __future__ import annotations

import random

from mechjax.data.tasks._text import check_options
from mechjax.data.tasks.base import Prompts, register

KEYS = tuple(
    "Anna Ben Carl Dora Emma Frank Grace Hugo Ivan Julia Kate Leo Maria Nina Oscar Paul Rosa "
    "Sam Tom Vera".split()
)

FILLER = (
    "The sun rose slowly over the quiet hills.",
    "A small boat drifted along the river.",
    "The children played in the park all afternoon.",
    "Fresh bread was baking in the kitchen.",
    "The old man read his newspaper on the bench.",
    "Birds sang in the tall trees by the road.",
    "The train arrived at the station on time.",
    "A cold wind blew across the empty field.",
    "She planted roses in the garden last spring.",
    "The library was full of students reading books.",
    "Rain fell gently on the roof all night.",
    "The market sold apples, pears and cheese.",
    "A dog barked at the mailman in the street.",
    "The teacher wrote a long sentence on the board.",
    "The mountains were covered in white snow.",
    "He walked to work along the busy avenue.",
    "The museum opened a new room for paintings.",
    "A cat slept in the warm sunlight by the window.",
    "The farmer fed the horses early in the morning.",
    "The lake was calm and the water was clear.",
    "Music played softly in the small cafe.",
    "The workers built a bridge over the canal.",
    "The moon shone brightly above the town.",
    "They cooked soup with carrots and onions.",
    "The bus was crowded with people going home.",
    "A young girl painted a picture of the sea.",
    "The forest was dark and full of tall pines.",
    "The shop on the corner sold warm coffee.",
    "The river flowed past the old stone mill.",
    "Leaves fell from the trees in the autumn wind.",
    "The doctor visited the village once a week.",
    "A group of friends went hiking in the valley.",
    "The clock in the hall struck the hour.",
    "The ship sailed north along the rocky coast.",
    "The baker sold fresh cakes every morning.",
    "Snow covered the roads after the long storm.",
    "The students listened to the lecture in silence.",
    "A fisherman waited patiently by the pier.",
    "The garden was full of bright yellow flowers.",
    "The city lights glowed in the evening fog.",
    "The postman delivered letters to every house.",
    "A gentle breeze moved the curtains in the room.",
    "The family ate dinner together at the table.",
    "The road wound slowly up the green hill.",
    "The scientist wrote notes in her small book.",
    "The boys kicked a ball across the yard.",
    "A bell rang in the tower of the church.",
    "The kettle whistled on the stove in the kitchen.",
    "The stars filled the sky above the desert.",
    "The painter cleaned his brushes after work.",
)


def _build(fill: list[str], k: int, key: str, val: int) -> tuple[str, dict[str, tuple[int, int]]]:
    """The prompt with the needle after `k` filler sentences, and its spans."""
    before = " ".join(fill[:k])
    text = before + (" " if before else "")
    n0 = len(text)
    text += f"The secret number of {key} is {val}."
    span = {"needle": (n0, len(text))}
    span["key"] = (n0 + len("The secret number of "), n0 + len("The secret number of ") + len(key))
    span["value"] = (len(text) - 3, len(text) - 1)  # the 2 digits before the period
    after = " ".join(fill[k:])
    text += (" " + after if after else "") + f" What is the secret number of {key}?"
    span["question_key"] = (len(text) - 1 - len(key), len(text) - 1)
    text += " It is"
    span["end"] = (len(text) - 2, len(text))
    return text, span


@register("needle")
def needle(n: int, seed: int = 0, **options) -> Prompts:
    """`n` needle-in-a-haystack prompts.

    Args:
      n: number of examples.
      seed: the examples are a deterministic function of it.
      n_filler: number of filler sentences (>= 1); the default 12 gives about 130 tokens.
        Beyond len(FILLER) sentences repeat.
      depth: where the needle goes, as the fraction of filler sentences before it, in
        [0, 1]; None draws it uniformly per example.

    Returns:
      :class:`Prompts` with spans "needle", "key", "value", "question_key", "end".
    """
    opts = check_options("needle", options, {"n_filler": 12, "depth": None})
    n_filler, depth = opts["n_filler"], opts["depth"]
    if not isinstance(n_filler, int) or n_filler < 1:
        raise ValueError(f"needle: n_filler={n_filler!r} is not valid; use an int >= 1.")
    if depth is not None and not (isinstance(depth, int | float) and 0.0 <= depth <= 1.0):
        raise ValueError(f"needle: depth={depth!r} is not valid; use None or a float in [0, 1].")
    rng = random.Random(seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {k: [] for k in ("key", "value", "depth", "n_filler", "corrupt_value")}
    for _ in range(n):
        if n_filler <= len(FILLER):
            fill = rng.sample(FILLER, n_filler)
        else:
            fill = [rng.choice(FILLER) for _ in range(n_filler)]
        k = rng.randint(0, n_filler) if depth is None else round(depth * n_filler)
        key = rng.choice(KEYS)
        value = rng.randint(10, 99)
        other = rng.choice([v for v in range(10, 100) if v != value])

        text, span = _build(fill, k, key, value)
        clean.append(text)
        corrupted.append(_build(fill, k, key, other)[0])
        answers.append((f" {value}",))
        contrasts.append((f" {other}",))
        spans.append(span)
        for name, v in zip(meta, (key, value, k / n_filler, n_filler, other)):
            meta[name].append(v)
    return Prompts.from_lists("needle", clean, corrupted, answers, contrasts, spans, meta)
