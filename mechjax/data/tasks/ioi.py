"""Indirect Object Identification (Wang et al. 2022, "Interpretability in the Wild").

Clean: "When Mary and John went to the store, John gave a drink to" -> answer " Mary" (the
indirect object, IO); contrast " John" (the subject, S). The first clause names IO and S in
either order: ABBA (IO first, "Mary and John ... John") or BABA (S first, "John and Mary ...
John"); the second clause repeats S (S2) and the prompt stops before the IO.

Corruptions (option `corruption`):
  * "abc" (default; the paper's ABC dataset): the three name occurrences are replaced by three
    fresh distinct names ("When Alice and Bob went ..., Carol gave a drink to"), so no name is
    repeated and nothing singles out an indirect object.
  * "flip": IO and S swap names at every occurrence ("When John and Mary went ..., Mary gave a
    drink to" -> the correct answer becomes " John"), so the clean logit difference changes
    sign. (Swapping them in the first clause only would just turn ABBA into BABA and keep the
    answer, so it would not corrupt anything.)

Differences from the paper: our own 16 templates in the style of the paper's (same structure,
not the same sentences), 40 names, 15 places and 17 objects; all names are common one-word
first names so that each is a single token with its leading space.

Spans (character ranges in the clean prompt, each word with its leading space): "IO" and "S1"
(the names in the first clause), "S2" (the repeated subject), "end" (the last word, " to" or
similar, where the answer is predicted). Meta: template (index), order ("ABBA"/"BABA"), io, s.
"""

from __future__ import annotations

import random

from mechjax.data.tasks._text import check_choice, check_options, end_span, fill
from mechjax.data.tasks.base import Prompts, register

NAMES = (
    "Mary", "John", "Tom", "James", "Paul", "Mark", "David", "Michael", "Robert", "Daniel",
    "Sarah", "Anna", "Laura", "Emma", "Kate", "Lisa", "Jane", "Alice", "Bob", "Peter",
    "Chris", "Adam", "Ben", "Sam", "Max", "Jack", "Luke", "Ryan", "Eric", "Alex",
    "Rachel", "Amy", "Emily", "Grace", "Helen", "Susan", "Linda", "Karen", "Steve", "Tim",
)  # fmt: skip
PLACES = (
    "store", "garden", "restaurant", "school", "hospital", "office", "station", "house",
    "park", "beach", "market", "library", "church", "airport", "cafe",
)  # fmt: skip
# consonant-initial, so "a {object}" stays grammatical
OBJECTS = (
    "drink", "book", "ring", "bone", "kiss", "snack", "necklace", "basketball", "computer",
    "ball", "letter", "key", "bag", "gift", "cake", "flower", "hat",
)  # fmt: skip

# {A} and {B} are the first-clause names (IO/S in ABBA order, S/IO in BABA), {S} the repeat
TEMPLATES = (
    "When {A} and {B} went to the {place}, {S} gave a {object} to",
    "Then, {A} and {B} went to the {place}. {S} gave a {object} to",
    "Then, {A} and {B} had a lot of fun at the {place}. {S} gave a {object} to",
    "Then, {A} and {B} were working at the {place}. {S} decided to give a {object} to",
    "Then, {A} and {B} were thinking about going to the {place}. {S} wanted to give a {object} to",
    "Then, {A} and {B} had a long argument, and afterwards {S} said to",
    "After {A} and {B} went to the {place}, {S} gave a {object} to",
    "When {A} and {B} got a {object} at the {place}, {S} decided to give it to",
    "When {A} and {B} got a {object} at the {place}, {S} decided to give the {object} to",
    "While {A} and {B} were working at the {place}, {S} gave a {object} to",
    "While {A} and {B} were commuting to the {place}, {S} gave a {object} to",
    "After the lunch, {A} and {B} went to the {place}. {S} gave a {object} to",
    "Afterwards, {A} and {B} went to the {place}. Then, {S} gave a {object} to",
    "Then, {A} and {B} had a long argument. Afterwards {S} said to",
    "The {place} {A} and {B} went to had a {object}. {S} gave it to",
    "Friends {A} and {B} found a {object} at the {place}. {S} gave it to",
)

ORDERS = ("ABBA", "BABA", "mixed")
CORRUPTIONS = ("abc", "flip")


def _text(template: str, io: str, s: str, s2: str, order: str, place: str, obj: str):
    a, b = (io, s) if order == "ABBA" else (s, io)
    values = {"A": a, "B": b, "S": s2, "place": place, "object": obj}
    return fill(template, values)


@register("ioi")
def ioi(n: int, seed: int = 0, **options) -> Prompts:
    """`n` IOI prompts. Options: order in ("ABBA", "BABA", "mixed"; default "mixed"),
    corruption in ("abc", "flip"; default "abc"). See the module docstring."""
    opts = check_options("ioi", options, {"order": "mixed", "corruption": "abc"})
    check_choice("ioi", "order", opts["order"], ORDERS)
    check_choice("ioi", "corruption", opts["corruption"], CORRUPTIONS)
    rng = random.Random(seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {"template": [], "order": [], "io": [], "s": []}
    for _ in range(n):
        t = rng.randrange(len(TEMPLATES))
        order = opts["order"] if opts["order"] != "mixed" else rng.choice(ORDERS[:2])
        io, s, x, y, z = rng.sample(NAMES, 5)
        place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
        text, sp = _text(TEMPLATES[t], io, s, s, order, place, obj)
        if opts["corruption"] == "abc":
            # fresh names for IO, S1 and S2 (all distinct, so S2 repeats nobody)
            bad, _ = _text(TEMPLATES[t], x, y, z, order, place, obj)
        else:
            bad, _ = _text(TEMPLATES[t], s, io, io, order, place, obj)
        a, b = (sp["A"], sp["B"]) if order == "ABBA" else (sp["B"], sp["A"])
        clean.append(text)
        corrupted.append(bad)
        answers.append((" " + io,))
        contrasts.append((" " + s,))
        spans.append({"IO": a, "S1": b, "S2": sp["S"], "end": end_span(text)})
        for k, v in (("template", t), ("order", order), ("io", io), ("s", s)):
            meta[k].append(v)
    return Prompts.from_lists("ioi", clean, corrupted, answers, contrasts, spans, meta)
