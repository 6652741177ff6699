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
def needle(n: int, seed: int = 0, split: str | None = None, **options) -> Prompts:
    """`n` needle-in-a-haystack prompts.

    Args:
      n: number of examples.
      seed: the examples are a deterministic function of it.
      n_filler: number of filler sentences (>= 1); the default 12 gives about 130 tokens.
        Beyond len(FILLER) sentences repeat.
      depth: where the needle goes, as the fraction of filler sentences before it, in
        [0, 1]; None draws it uniformly per example.

      split: "train" / "val" / "test" for the split grammar at the end of this module, which
        also takes n_values (numbers in the value, default 3) and n_distractors (other
        needles, default 2), and whose n_filler defaults to 30; None for the legacy form.

    Returns:
      :class:`Prompts` with spans "needle", "key", "value", "question_key", "end".
    """
    if split is not None:
        opts = check_options(
            "needle",
            options,
            {"n_filler": V2_N_FILLER, "depth": None, "n_values": 3, "n_distractors": 2},
        )
        nv, nd = opts["n_values"], opts["n_distractors"]
        if not isinstance(nv, int) or not 1 <= nv <= 8:
            raise ValueError(f"needle: n_values={nv!r} is not valid; use an int in [1, 8].")
        if not isinstance(nd, int) or not 0 <= nd <= 5:
            raise ValueError(f"needle: n_distractors={nd!r} is not valid; use an int in [0, 5].")
    else:
        opts = check_options("needle", options, {"n_filler": 12, "depth": None})
    n_filler, depth = opts["n_filler"], opts["depth"]
    if not isinstance(n_filler, int) or n_filler < 1:
        raise ValueError(f"needle: n_filler={n_filler!r} is not valid; use an int >= 1.")
    if depth is not None and not (isinstance(depth, int | float) and 0.0 <= depth <= 1.0):
        raise ValueError(f"needle: depth={depth!r} is not valid; use None or a float in [0, 1].")
    if split is not None:
        return _needle_split(n, seed, split, n_filler, depth, nv, nd)
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


# ---- split mode (`split=` "train" / "val" / "test"; see mechjax.data.tasks.splits) --------
# Multi-token needles in long haystacks. The value is `n_values` two-digit numbers ("47 21
# 93"): the answer is the first, training texts continue with the rest (meta
# "continuation"), and spans "value0".. name each one, so a retrieval-head score (Wu et al.:
# copy the needle token by token) has several tokens to score. `n_distractors` other needles
# (other keys, same relation) make "the only number in the text" a wrong strategy. The
# haystack is `n_filler` sentences from a grammar (subject x action x tail, each split);
# the default 30 gives >= 256 tokens with the zoo's tokenizer. A template is relation noun x
# needle frame x question lead-in x question frame, every slot split; keys are split too.

V2_KEYS = (
    "Anna", "Ben", "Carl", "Dora", "Emma", "Frank", "Grace", "Hugo", "Ivan", "Julia", "Kate",
    "Leo", "Maria", "Nina", "Oscar", "Paul", "Rosa", "Sam", "Tom", "Vera", "Adam", "Beth",
    "Chris", "Diana", "Eric", "Fiona", "George", "Helen", "Iris", "Jack", "Karl", "Lucy",
    "Mark", "Nora", "Olga", "Peter", "Ruth", "Simon", "Tina", "Victor", "Walter", "Zoe",
    "Alice", "Bruno", "Clara", "Dean", "Elsa", "Felix", "Gina", "Henry",
)  # fmt: skip
V2_RELATIONS = (
    "secret number", "code", "password", "pin", "lucky number", "room number",
    "ticket number", "locker number", "bus number", "badge number", "seat number",
    "access code", "account number", "phone extension", "favorite number", "order number",
    "table number", "gate number", "license number", "safe code", "door code", "house number",
    "team number", "file number", "box number",
)  # fmt: skip
V2_NEEDLES = (
    "The {rel} of {key} is {value}.", "{key}'s {rel} is {value}.",
    "Remember: the {rel} for {key} is {value}.", "Note that {key} has the {rel} {value}.",
    "For {key}, the {rel} is {value}.", "Write down the {rel} of {key}: {value}.",
    "{key} said the {rel} is {value}.", "Keep in mind that the {rel} of {key} is {value}.",
    "The {rel} that belongs to {key} is {value}.", "We gave {key} the {rel} {value}.",
    "{key} was told the {rel} {value}.", "Officially, the {rel} of {key} is {value}.",
    "By the way, {key}'s {rel} is {value}.", "It turns out the {rel} of {key} is {value}.",
    "A card says the {rel} of {key} is {value}.",
)  # fmt: skip
V2_LEADS = (
    "", "Now a question.", "Let us check.", "Here is a question.", "Time to test your memory.",
    "Think back.", "One more thing.", "Pay attention.", "Last part.", "Answer this.",
    "Memory test.", "A quick quiz.", "Now recall.", "Question time.", "Try to remember.",
)  # fmt: skip
V2_QUESTIONS = (
    "What is the {rel} of {key}? It is", "What is {key}'s {rel}? The {rel} is",
    "Tell me the {rel} of {key}. It is", "Question: the {rel} of {key}? Answer:",
    "Recall the {rel} of {key}:", "The {rel} of {key} was", "So, {key}'s {rel} is",
    "Which {rel} does {key} have? It is", "Do you remember the {rel} of {key}? It is",
    "Quick check: {key}'s {rel} is", "Earlier we saw the {rel} of {key}. It is",
    "Now, the {rel} for {key} is", "{key}'s {rel}? It was",
    "Finally, what was the {rel} of {key}? It was", "Please repeat the {rel} of {key}:",
)  # fmt: skip
V2_SUBJECTS = (
    "The old man", "A small dog", "The teacher", "My neighbor", "The children", "A tall woman",
    "The farmer", "Two students", "The baker", "A young girl", "The doctor", "Our uncle",
    "The tourists", "A quiet boy", "The painter", "The sailors", "My cousin", "The workers",
    "A gray cat", "The mayor",
)  # fmt: skip
V2_ACTIONS = (
    "walked slowly", "sang a song", "read a book", "painted the fence", "cooked dinner",
    "fed the birds", "fixed the bike", "watched the rain", "planted flowers", "wrote a letter",
    "took a long nap", "cleaned the windows", "carried the boxes", "played the piano",
    "told a story", "drank some tea", "looked at the clouds", "waited for the bus",
    "sold fresh bread", "climbed the hill",
)  # fmt: skip
V2_TAILS = (
    "in the park", "by the river", "after lunch", "near the station", "in the morning",
    "at the market", "under the bridge", "before sunset", "on a cold day", "in the garden",
    "at the old mill", "during the storm", "on the porch", "in the village square",
    "next to the lake", "in the evening", "behind the school", "at the harbor",
    "on the way home", "in the quiet street",
)  # fmt: skip
V2_N_FILLER = 30


def _grammar():
    from mechjax.data.tasks.splits import Grammar

    return Grammar.of(
        "needle", relation=V2_RELATIONS, needle=V2_NEEDLES, lead=V2_LEADS, question=V2_QUESTIONS
    )


def _filler_grammar():
    from mechjax.data.tasks.splits import Grammar

    return Grammar.of("needle_filler", subject=V2_SUBJECTS, action=V2_ACTIONS, tail=V2_TAILS)


def split_sets(split: str) -> dict[str, tuple]:
    """The split's template pieces, keys and filler pieces (filler_subject, ...)."""
    from mechjax.data.tasks.splits import part

    f = {f"filler_{k}": v for k, v in _filler_grammar().options(split).items()}
    return {**_grammar().options(split), **f, "key": part(V2_KEYS, "needle/key", split)}


def _sentence(template: str, rel: str, key: str, values) -> tuple[str, dict]:
    """A needle sentence, with the char spans of the key and of each value."""
    from mechjax.data.tasks._text import fill

    v = " ".join(f"{x}" for x in values)
    text, sp = fill(template, {"rel": rel, "key": key, "value": v})
    start = sp["value"][0] + (1 if text[sp["value"][0]] == " " else 0)
    spans, pos = {}, start
    for i, x in enumerate(values):
        spans[f"value{i}"] = (pos, pos + len(str(x)))
        pos += len(str(x)) + 1
    key_span = sp["key"]
    if text[key_span[0]] == " ":
        key_span = (key_span[0] + 1, key_span[1])
    return text, {"key": key_span, **spans}


def _needle_split(n, seed, split, n_filler, depth, n_values, n_distractors) -> Prompts:
    from mechjax.data.tasks._text import fill
    from mechjax.data.tasks.splits import rng as split_rng

    sets = split_sets(split)
    if n_distractors + 1 > len(sets["key"]):
        raise ValueError(
            f"needle: n_distractors={n_distractors} needs more keys than the split has."
        )
    rng = split_rng("needle", split, seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    keys = ("key", "value", "depth", "n_filler", "corrupt_value", "template", "values",
            "distractor_keys", "continuation")  # fmt: skip
    meta = {k: [] for k in keys}
    for _ in range(n):
        rel, tmpl = rng.choice(sets["relation"]), rng.choice(sets["needle"])
        lead, question = rng.choice(sets["lead"]), rng.choice(sets["question"])
        fill_s = [
            f"{rng.choice(sets['filler_subject'])} {rng.choice(sets['filler_action'])} "
            f"{rng.choice(sets['filler_tail'])}."
            for _ in range(n_filler)
        ]
        key, *others = rng.sample(sets["key"], 1 + n_distractors)
        values = [rng.randint(10, 99) for _ in range(n_values)]
        bad_values = [rng.choice([v for v in range(10, 100) if v != x]) for x in values]
        k = rng.randint(0, n_filler) if depth is None else round(depth * n_filler)
        d_vals = [[rng.randint(10, 99) for _ in range(n_values)] for _ in others]
        d_pos = [rng.randint(0, n_filler) for _ in others]
        texts = {}
        for which, vals in (("clean", values), ("bad", bad_values)):
            # sentences in order: fillers with the needle after k of them, distractors after
            # d_pos[i] of them (a distractor at the needle's place goes after the needle)
            parts, sp = [], {}
            inserts = sorted(
                [(k, 0, key, vals)]
                + [
                    (p, 1 + i, o, v) for i, (p, o, v) in enumerate(zip(d_pos, others, d_vals))
                ]  # fmt: skip
            )
            j = 0
            for pos in range(n_filler + 1):
                while j < len(inserts) and inserts[j][0] == pos:
                    _, tag, kk, vv = inserts[j]
                    s_text, s_sp = _sentence(tmpl, rel, kk, vv)
                    off = sum(len(x) + 1 for x in parts)
                    if tag == 0:
                        sp["needle"] = (off, off + len(s_text))
                        sp.update({r: (a + off, b + off) for r, (a, b) in s_sp.items()})
                    parts.append(s_text)
                    j += 1
                if pos < n_filler:
                    parts.append(fill_s[pos])
            body = " ".join(parts)
            tail, qsp = fill(
                (" " + lead if lead else "") + " " + question, {"rel": rel, "key": key}
            )
            text = body + tail
            sp["question_key"] = (qsp["key"][0] + len(body), qsp["key"][1] + len(body))
            if text[sp["question_key"][0]] == " ":
                sp["question_key"] = (sp["question_key"][0] + 1, sp["question_key"][1])
            end = text.rfind(" ") + 1
            sp["end"] = (end - 1, len(text))
            sp["value"] = sp["value0"]
            texts[which] = (text, sp)
        text, sp = texts["clean"]
        clean.append(text)
        corrupted.append(texts["bad"][0])
        answers.append((f" {values[0]}",))
        contrasts.append(
            (f" {bad_values[0]}", *dict.fromkeys(f" {v[0]}" for v in d_vals if v[0] != values[0]))
        )
        spans.append(sp)
        tid = "|".join((rel, tmpl, lead, question))
        cont = "".join(f" {v}" for v in values[1:]) + "."
        vals = (key, values[0], k / n_filler, n_filler, bad_values[0], tid, tuple(values),
                tuple(others), cont)  # fmt: skip
        for name, v in zip(meta, vals):
            meta[name].append(v)
    return Prompts.from_lists("needle", clean, corrupted, answers, contrasts, spans, meta)


def _register_splits():
    from mechjax.data.tasks.base import register_splits

    register_splits(
        "needle",
        lambda split: _grammar().count(split),
        split_sets,
        lambda: V2_KEYS + tuple(w for r in V2_RELATIONS for w in r.split()),
    )


_register_splits()
