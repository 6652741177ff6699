"""Colored Objects (Merullo, Eickhoff & Pavlick 2024, "Circuit component reuse across tasks";
a simplified form of BIG-bench "reasoning about colored objects").

Clean: "On the table, I see a red pen, a blue book, and a green cup. What color is the book?
The book is" -> answer " blue"; contrasts: the other colors in the scene (" red", " green").

Corrupted: the same scene with the colors rotated by one place among the objects ("a green
pen, a red book, and a blue cup"), so the queried object has another mentioned color and the
clean answer becomes a contrast. A permutation of the same color words keeps the token count
equal with any tokenizer; the other obvious choice (asking about an object not on the table)
would change the token count whenever object names differ in length, and leaves no correct
answer to measure against.

Differences from the paper: Merullo et al. use BIG-bench's multiple-choice format with a
"Q: ... A:" frame; we keep the answer as the color word right after "The <object> is", with
2-5 objects per scene (default 3), 10 consonant-initial colors (so the article "a" never
depends on the color) and 20 objects, all distinct within a scene.

Option `form="recap"` (for training curricula, not for the paper's evaluation): the scene is
followed by a recap that lists some of the other objects in a random order, each with its
color, and then the queried object: "... and a green cup. Colors: cup green, book" -> " blue".
The queried object's place in the recap is uniform (first, ..., last): listed first, its color
can only be found by looking its name up in the scene; listed last, it is also the one color
the recap has not named yet (an earlier version always listed it last, and models learned that
shortcut instead of the lookup). Training texts go on to list the remaining objects and end
with "." (meta "continuation"), so each text trains every object's lookup. Here the color
comes right after the object's name; in the question form the answer follows " is", one token
after the name. Models trained on the question form alone stayed at chance (see
experiments/zoo/README.md, "Colored objects"). Corrupted recaps rotate the colors in the scene
and in the recap alike.

Spans: "obj0", "color0", "obj1", "color1", ... (each listed object and its color, in order),
"query" (the object named in the question "What color is the book?"; in the recap form the last
object), "end" (the final " is"; in the recap form the last object).
Meta: colors (tuple, in scene order), objects (tuple), query (index of the queried object),
surface, continuation (what training texts add after the answer: "" in the question form).
"""

from __future__ import annotations

import random

from mechjax.data.tasks._text import check_choice, check_int, check_options, end_span, fill
from mechjax.data.tasks.base import Prompts, register

COLORS = ("red", "blue", "green", "yellow", "black", "white", "purple", "pink", "brown", "gray")
OBJECTS = (
    "pen", "book", "cup", "ball", "hat", "key", "phone", "box", "bag", "plate",
    "bowl", "shoe", "sock", "lamp", "clock", "chair", "mug", "card", "bottle", "pencil",
)  # fmt: skip
SURFACES = ("table", "floor", "desk", "shelf", "bed", "counter")


def _template(k: int) -> str:
    items = [f"a {{color{i}}} {{obj{i}}}" for i in range(k)]
    scene = f"{items[0]} and {items[1]}" if k == 2 else ", ".join(items[:-1]) + ", and " + items[-1]
    return "On the {surface}, I see " + scene + ". What color is the {query}? The {query2} is"


_TEMPLATES = {k: _template(k) for k in range(2, 6)}
FORMS = ("question", "recap")


def _recap_template(k: int, j: int) -> str:
    """The scene, then "Colors:" with j listed objects (fields r0, rc0, ...) and the query."""
    scene = _template(k).split(". What color")[0]
    listed = "".join(f" {{r{i}}} {{rc{i}}}," for i in range(j))
    return scene + ". Colors:" + listed + " {query}"


@register("colored_objects")
def colored_objects(n: int, seed: int = 0, split: str | None = None, **options) -> Prompts:
    """`n` colored-objects prompts. Options: n_objects, an int in [2, 5] (default 3), objects
    per scene; form, "question" (default, the paper's) or "recap". See the module docstring.

    `split` ("train" / "val" / "test") uses the split grammar at the end of this module (the
    meta "objects" etc. as above, plus "template"; n_objects may be "mixed", the default
    there: 2-5 per example); None the legacy single template."""
    default_k = 3 if split is None else "mixed"
    opts = check_options("colored_objects", options, {"n_objects": default_k, "form": "question"})
    k = opts["n_objects"]
    if not (split is not None and k == "mixed"):
        check_int("colored_objects", "n_objects", k, 2, 5)
    check_choice("colored_objects", "form", opts["form"], FORMS)
    recap = opts["form"] == "recap"
    if split is not None:
        return _colored_objects_split(n, seed, split, k, recap)
    rng = random.Random(seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {"colors": [], "objects": [], "query": [], "surface": [], "continuation": []}
    for _ in range(n):
        colors, objects = rng.sample(COLORS, k), rng.sample(OBJECTS, k)
        q, surface = rng.randrange(k), rng.choice(SURFACES)
        base = {"surface": surface, "query": objects[q], "query2": objects[q]}
        base.update({f"obj{i}": o for i, o in enumerate(objects)})
        # rotate: object i gets color i-1, so every object (the queried one too) changes color
        rotated = colors[-1:] + colors[:-1]
        template = _TEMPLATES[k]
        if recap:  # drawn after the question form's draws, so that form's prompts stay the same
            # the query's place in the recap is uniform: listed first it can only be looked up
            # in the scene, listed last it is also the one color the recap has not yet named
            order = rng.sample([i for i in range(k) if i != q], rng.randrange(k))
            template = _recap_template(k, len(order))
            rest = rng.sample(
                [i for i in range(k) if i != q and i not in order], k - 1 - len(order)
            )
            continuation = "".join(f", {objects[i]} {colors[i]}" for i in rest) + "."
            base.update({f"r{j}": objects[i] for j, i in enumerate(order)})
            listed = {"clean": colors, "bad": rotated}
            for which in listed:
                cs = listed[which]
                listed[which] = {f"rc{j}": cs[i] for j, i in enumerate(order)}
        else:
            listed, continuation = {"clean": {}, "bad": {}}, ""
        text, sp = fill(
            template, {**base, **listed["clean"], **{f"color{i}": c for i, c in enumerate(colors)}}
        )
        bad, _ = fill(
            template, {**base, **listed["bad"], **{f"color{i}": c for i, c in enumerate(rotated)}}
        )
        clean.append(text)
        corrupted.append(bad)
        answers.append((" " + colors[q],))
        contrasts.append(tuple(" " + c for i, c in enumerate(colors) if i != q))
        roles = [f"{r}{i}" for i in range(k) for r in ("obj", "color")]
        spans.append({**{r: sp[r] for r in roles}, "query": sp["query"], "end": end_span(text)})
        for key, v in (
            ("colors", tuple(colors)),
            ("objects", tuple(objects)),
            ("query", q),
            ("surface", surface),
            ("continuation", continuation),
        ):
            meta[key].append(v)
    return Prompts.from_lists("colored_objects", clean, corrupted, answers, contrasts, spans, meta)


# ---- split mode (`split=` "train" / "val" / "test"; see mechjax.data.tasks.splits) --------
# A template is scene intro x item form x list joiners x question (x 2-5 objects); every
# slot is split, so a held-out template words the scene, each item, the list and the
# question differently (e.g. "a book that is blue" instead of "a blue book"). Objects and
# surfaces are split; the colors (the answers) are shared.

V2_COLORS = COLORS + ("silver", "golden")
V2_OBJECTS = OBJECTS + (
    "pot", "fork", "spoon", "knife", "vase", "comb", "brush", "ruler", "towel", "wallet",
    "watch", "candle", "kite", "belt", "scarf", "glove", "jar", "basket", "pillow", "teapot",
    "notebook", "magnet", "marker", "tray", "coin", "ribbon", "balloon", "bucket", "candle",
    "dice", "folder", "helmet", "jacket", "mask", "necklace", "puzzle", "rope", "shirt",
    "stapler", "tablet",
)  # fmt: skip
V2_OBJECTS = tuple(dict.fromkeys(V2_OBJECTS))
V2_SURFACES = SURFACES + (
    "bench", "carpet", "dresser", "stool", "windowsill", "tray", "nightstand", "cabinet",
    "sofa", "ground", "rug", "porch", "car seat", "workbench",
)  # fmt: skip
V2_INTROS = (
    "On the {surface}, I see", "On the {surface}, there is", "On the {surface}, you can see",
    "Lying on the {surface} are", "I put on the {surface}", "Sitting on the {surface} are",
    "Look at the {surface}: there is", "On top of the {surface} I found",
    "Someone left on the {surface}", "Today on the {surface} we have",
    "Near the {surface}, I notice", "Across the {surface} are", "In front of me on the {surface}:",
    "On the {surface} lie", "Here on the {surface} is", "Placed on the {surface} are",
    "On my {surface} there is", "Spread over the {surface} are", "On the {surface} sits",
    "Left on the {surface}:",
)  # fmt: skip
V2_ITEMS = (
    "a {c} {o}", "one {c} {o}", "a single {c} {o}", "the {c} {o}", "a {o} that is {c}",
    "a {o} colored {c}", "a {o} in {c}", "a nice {c} {o}", "an old {c} {o}", "a {o} painted {c}",
    "a small {c} {o}", "my {c} {o}",
)  # fmt: skip
# (between items, before the last item)
V2_JOINERS = (
    ", |, and ", ", | and ", "; |; and ", " and | and ", ", |, plus ", ", then |, then ",
    ", |, as well as ", " beside | and ", ", |, along with ", " next to | and ",
)  # fmt: skip
V2_QUESTIONS = (
    "What color is the {q}? The {q} is", "What is the color of the {q}? The {q} is",
    "Which color does the {q} have? The {q} is", "Tell me the color of the {q}. The {q} is",
    "What color is the {q}? It is", "And the {q}? The {q} is", "The color of the {q} is",
    "So the {q} is", "Question: what color is the {q}? Answer: the {q} is",
    "What color was the {q}? The {q} was", "Do you know the color of the {q}? It is",
    "Name the color of the {q}: it is",
)  # fmt: skip
V2_RECAPS = (
    "Colors:", "In short:", "Summary:", "Recap:", "By color:", "Listing them:", "To sum up:",
    "Noted:", "Colors again:", "The list:",
)  # fmt: skip


def _grammar():
    from mechjax.data.tasks.splits import Grammar

    return Grammar.of(
        "colored_objects",
        intro=V2_INTROS,
        item=V2_ITEMS,
        joiner=V2_JOINERS,
        question=V2_QUESTIONS,
        recap=V2_RECAPS,
    )


def split_sets(split: str) -> dict[str, tuple]:
    """The split's template pieces, objects and surfaces."""
    from mechjax.data.tasks.splits import part

    return {
        **_grammar().options(split),
        # by rank: a 5-object scene needs 5 distinct objects in every split
        "object": part(V2_OBJECTS, "colored_objects/object", split, rank=True),
        "surface": part(V2_SURFACES, "colored_objects/surface", split),
    }


def _scene_template(intro: str, item: str, joiner: str, k: int) -> str:
    sep, last = joiner.split("|")
    items = [item.replace("{c}", f"{{color{i}}}").replace("{o}", f"{{obj{i}}}") for i in range(k)]
    return intro + " " + sep.join(items[:-1]) + last + items[-1] + "."


def _colored_objects_split(n: int, seed: int, split: str, k: int, recap: bool) -> Prompts:
    from mechjax.data.tasks.splits import rng as split_rng

    sets = split_sets(split)
    rng = split_rng("colored_objects", split, seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {"colors": [], "objects": [], "query": [], "surface": [], "continuation": []}
    meta.update(template=[], object=[])
    k_opt = k
    for _ in range(n):
        k = rng.randint(2, 5) if k_opt == "mixed" else k_opt
        intro, item, joiner = (rng.choice(sets[s]) for s in ("intro", "item", "joiner"))
        question, cue = rng.choice(sets["question"]), rng.choice(sets["recap"])
        colors, objects = rng.sample(V2_COLORS, k), rng.sample(sets["object"], k)
        q, surface = rng.randrange(k), rng.choice(sets["surface"])
        base = {"surface": surface, "query": objects[q]}
        base.update({f"obj{i}": o for i, o in enumerate(objects)})
        rotated = colors[-1:] + colors[:-1]
        scene = _scene_template(intro, item, joiner, k)
        listed = {"clean": {}, "bad": {}}
        continuation = ""
        if recap:
            order = rng.sample([i for i in range(k) if i != q], rng.randrange(k))
            template = (
                scene + " " + cue + "".join(f" {{r{j}}} {{rc{j}}}," for j in range(len(order)))
            )
            template += " {query}"
            rest = rng.sample(
                [i for i in range(k) if i != q and i not in order], k - 1 - len(order)
            )
            continuation = "".join(f", {objects[i]} {colors[i]}" for i in rest) + "."
            base.update({f"r{j}": objects[i] for j, i in enumerate(order)})
            for which, cs in (("clean", colors), ("bad", rotated)):
                listed[which] = {f"rc{j}": cs[i] for j, i in enumerate(order)}
            tid = "|".join((intro, item, joiner, cue, str(k)))
        else:
            template = (
                scene + " " + question.replace("{q}", "{query}", 1).replace("{q}", "{query2}")
            )
            base["query2"] = objects[q]
            tid = "|".join((intro, item, joiner, question, str(k)))
        text, sp = fill(
            template, {**base, **listed["clean"], **{f"color{i}": c for i, c in enumerate(colors)}}
        )
        bad, _ = fill(
            template, {**base, **listed["bad"], **{f"color{i}": c for i, c in enumerate(rotated)}}
        )
        clean.append(text)
        corrupted.append(bad)
        answers.append((" " + colors[q],))
        contrasts.append(tuple(" " + c for i, c in enumerate(colors) if i != q))
        roles = [f"{r}{i}" for i in range(k) for r in ("obj", "color")]
        spans.append({**{r: sp[r] for r in roles}, "query": sp["query"], "end": end_span(text)})
        vals = (tuple(colors), tuple(objects), q, surface, continuation, tid, tuple(objects))
        for key, v in zip(meta, vals):
            meta[key].append(v)
    return Prompts.from_lists("colored_objects", clean, corrupted, answers, contrasts, spans, meta)


def _register_splits():
    from mechjax.data.tasks.base import register_splits

    def count(split):
        o = _grammar().options(split)
        return len(o["intro"]) * len(o["item"]) * len(o["joiner"]) * len(o["question"]) * 4

    register_splits(
        "colored_objects", count, split_sets, lambda: V2_COLORS + V2_OBJECTS + V2_SURFACES
    )


_register_splits()
