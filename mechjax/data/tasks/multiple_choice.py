"""Multiple-choice questions answered by their label: "... D. pig\\nAnswer:" -> " B".

Source: Lieberum et al. 2023, "Does Circuit Analysis Interpretability Scale? Evidence from
Multiple Choice Capabilities in Chinchilla": the model knows the answer text and must map it
to its label; "correct letter" heads attend from the final position to the correct label.
The paper also randomises the label set (random letters) to test whether the heads encode
"the Nth item" rather than the letter. We write our own small fact list (animal sounds,
colors, opposites, plurals, ...) with one correct option and three distractors.

    "Question: Which animal says moo?\\nA. dog\\nB. cow\\nC. cat\\nD. pig\\nAnswer:" -> " B"

  clean:     a question and its 4 options in a random order, one per line, labelled.
  answer:    the correct option's label with a leading space (" B", " 2").
  contrasts: the other three labels.
  corrupted: the same question and labels with the options permuted so that the correct
             option sits under another label (same tokens, so the same token count).
  labels:    "letters" (A B C D), "random_letters" (4 distinct random uppercase letters in a
             random order, the paper's randomised-label variant) or "numbers" (1 2 3 4).
  spans:     "label0".."label3" (each option's label), "option0".."option3" (each option's
             text), "correct_option" (the correct option's text), "end".
  meta:      correct (index of the correct option in the clean prompt), corrupt_correct,
             labels (the 4 labels), question (index into QUESTIONS).

Differences from the paper: a fixed synthetic question set instead of MMLU-style questions.
"""

from __future__ import annotations

import functools
import random
import string

from mechjax.data.tasks._text import check_options
from mechjax.data.tasks.base import Prompts, register

# (question, correct option, three distractors)
QUESTIONS: tuple[tuple[str, str, tuple[str, str, str]], ...] = (
    ("Which animal says moo?", "cow", ("dog", "cat", "pig")),
    ("Which animal says woof?", "dog", ("cow", "duck", "sheep")),
    ("Which animal says meow?", "cat", ("horse", "dog", "bird")),
    ("Which animal says quack?", "duck", ("cat", "lion", "cow")),
    ("Which animal says baa?", "sheep", ("pig", "dog", "fish")),
    ("Which animal says oink?", "pig", ("cow", "duck", "horse")),
    ("Which animal can fly?", "bird", ("fish", "cow", "pig")),
    ("Which animal lives in water?", "fish", ("horse", "cat", "sheep")),
    ("Which animal is the largest?", "whale", ("mouse", "cat", "dog")),
    ("Which animal is the smallest?", "mouse", ("horse", "whale", "cow")),
    ("What color is the sky on a clear day?", "blue", ("green", "red", "black")),
    ("What color is grass?", "green", ("blue", "white", "red")),
    ("What color is snow?", "white", ("black", "green", "blue")),
    ("What color is a ripe banana?", "yellow", ("blue", "black", "green")),
    ("What color is coal?", "black", ("white", "yellow", "pink")),
    ("What color is blood?", "red", ("green", "blue", "white")),
    ("What is the opposite of hot?", "cold", ("warm", "big", "fast")),
    ("What is the opposite of big?", "small", ("large", "tall", "old")),
    ("What is the opposite of fast?", "slow", ("quick", "loud", "hot")),
    ("What is the opposite of up?", "down", ("left", "over", "high")),
    ("What is the opposite of day?", "night", ("sun", "week", "light")),
    ("What is the opposite of old?", "young", ("slow", "tall", "cold")),
    ("What is the opposite of open?", "closed", ("empty", "full", "wide")),
    ("What is the opposite of happy?", "sad", ("glad", "tired", "loud")),
    ("What is the plural of mouse?", "mice", ("mouses", "mouse", "meese")),
    ("What is the plural of child?", "children", ("childs", "child", "kids")),
    ("What is the plural of foot?", "feet", ("foots", "foot", "feets")),
    ("What is the plural of tooth?", "teeth", ("tooths", "tooth", "teeths")),
    ("How many legs does a dog have?", "four", ("two", "six", "eight")),
    ("How many legs does a spider have?", "eight", ("four", "six", "two")),
    ("How many days are in a week?", "seven", ("five", "ten", "three")),
    ("How many months are in a year?", "twelve", ("ten", "seven", "four")),
    ("What do bees make?", "honey", ("milk", "bread", "silk")),
    ("What do cows give us?", "milk", ("honey", "wool", "eggs")),
    ("What do hens lay?", "eggs", ("milk", "honey", "wool")),
    ("What do we use to see?", "eyes", ("ears", "hands", "feet")),
    ("What do we use to hear?", "ears", ("eyes", "nose", "hands")),
    ("What do we use to smell?", "nose", ("ears", "eyes", "feet")),
    ("Which season is the coldest?", "winter", ("summer", "spring", "autumn")),
    ("Which season is the hottest?", "summer", ("winter", "autumn", "spring")),
    ("What falls from clouds?", "rain", ("sand", "stone", "fire")),
    ("What do we drink when thirsty?", "water", ("sand", "paper", "stone")),
)
LABEL_SETS = ("letters", "random_letters", "numbers")


def _render(question, labs, opts) -> tuple[str, dict[str, tuple[int, int]]]:
    """The prompt text and its label / option / end spans."""
    text, span = f"Question: {question}\n", {}
    for j, (lab, opt) in enumerate(zip(labs, opts)):
        span[f"label{j}"] = (len(text), len(text) + len(lab))
        text += f"{lab}. "
        span[f"option{j}"] = (len(text), len(text) + len(opt))
        text += f"{opt}\n"
    text += "Answer:"
    span["end"] = (len(text) - 1, len(text))
    return text, span


@register("multiple_choice")
def multiple_choice(n: int, seed: int = 0, split: str | None = None, **options) -> Prompts:
    """`n` four-option multiple-choice prompts.

    Args:
      n: number of examples.
      seed: the examples are a deterministic function of it.
      labels: "letters", "random_letters" or "numbers" (see module docstring); with `split`
        also "mixed" (the default there: one label set drawn per example).
      split: "train" / "val" / "test" for the generated question bank and split format at
        the end of this module; None for the legacy 42 questions.

    Returns:
      :class:`Prompts` with spans "label0".."label3", "option0".."option3",
      "correct_option", "end".
    """
    if split is not None:
        labels = check_options("multiple_choice", options, {"labels": "mixed"})["labels"]
        if labels not in V2_LABELS:
            raise ValueError(
                f"multiple_choice: labels={labels!r} is not valid; use one of {V2_LABELS}."
            )
        return _multiple_choice_split(n, seed, split, labels)
    labels = check_options("multiple_choice", options, {"labels": "letters"})["labels"]
    if labels not in LABEL_SETS:
        raise ValueError(
            f"multiple_choice: labels={labels!r} is not valid; use one of {LABEL_SETS}."
        )
    rng = random.Random(seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {k: [] for k in ("correct", "corrupt_correct", "labels", "question")}
    for _ in range(n):
        q = rng.randrange(len(QUESTIONS))
        question, right, wrong = QUESTIONS[q]
        if labels == "letters":
            labs = ("A", "B", "C", "D")
        elif labels == "numbers":
            labs = ("1", "2", "3", "4")
        else:
            labs = tuple(rng.sample(string.ascii_uppercase, 4))
        options = [right, *wrong]
        rng.shuffle(options)
        correct = options.index(right)
        # another order in which the correct option moves to a different label
        perm = list(options)
        while perm.index(right) == correct:
            rng.shuffle(perm)
        text, span = _render(question, labs, options)
        span["correct_option"] = span[f"option{correct}"]
        clean.append(text)
        corrupted.append(_render(question, labs, perm)[0])
        answers.append((" " + labs[correct],))
        contrasts.append(tuple(" " + lab for j, lab in enumerate(labs) if j != correct))
        spans.append(span)
        for k, v in zip(meta, (correct, perm.index(right), labs, q)):
            meta[k].append(v)
    return Prompts.from_lists("multiple_choice", clean, corrupted, answers, contrasts, spans, meta)


# ---- split mode (`split=` "train" / "val" / "test"; see mechjax.data.tasks.splits) --------
# A generated question bank. Context questions state one to three facts about people and ask
# about one of them ("Tom has a cat. Anna has a dog. What pet does Tom have?"), so the
# answer is in the prompt but only for the right person; computed questions ask a sum or
# the next item of a sequence ("What is 3 plus 4?", "What comes after Tuesday?"). The
# question line (what is asked) is split by hash, so no question of `test` is asked in
# `train`. The format is split too: header x label style x option layout x answer cue. The
# label sets are the Chinchilla study's controls: letters, random letters, numbers
# (`labels="mixed"`, the split-mode default, draws one per example).

V2_PEOPLE = (
    "Mary", "John", "Tom", "James", "Paul", "Mark", "David", "Sarah", "Anna", "Laura", "Emma",
    "Kate", "Lisa", "Jane", "Alice", "Bob", "Peter", "Chris", "Adam", "Ben", "Sam", "Max",
    "Jack", "Luke", "Ryan", "Eric", "Alex", "Rachel", "Amy", "Emily", "Grace", "Helen", "Susan",
    "Linda", "Karen", "Steve", "Tim", "Anne", "Bill", "Carl", "Dan", "Frank", "Fred", "George",
    "Harry", "Henry", "Jim", "Joe", "Ken", "Leo", "Matt", "Mike", "Nick", "Noah", "Oscar",
    "Phil", "Ray", "Ron", "Ted", "Tony", "Zoe", "Beth", "Claire", "Diana", "Eva", "Holly",
    "Iris", "Julia", "Lucy", "Maria", "Nina", "Nora", "Rose", "Ruth", "Sophie",
)  # fmt: skip
# relation: (statement, question, values)
V2_RELATIONS = {
    "pet": ("{n} has a {v}.", "What pet does {n} have?",
            "dog cat fish bird rabbit hamster turtle horse parrot snake"),
    "city": ("{n} lives in {v}.", "Where does {n} live?",
             "Paris Rome London Berlin Madrid Tokyo Cairo Lima Oslo Dublin"),
    "color": ("{n}'s favorite color is {v}.", "What is {n}'s favorite color?",
              "red blue green yellow white black purple pink brown gray"),
    "sport": ("{n} plays {v}.", "Which sport does {n} play?",
              "football tennis golf cricket hockey rugby baseball chess"),
    "drink": ("{n} drinks {v} every morning.", "What does {n} drink every morning?",
              "tea coffee milk water juice soda cocoa"),
    "job": ("{n} works as a {v}.", "What is {n}'s job?",
            "teacher doctor baker farmer pilot nurse driver painter lawyer chef"),
    "food": ("{n} ate {v} for lunch.", "What did {n} eat for lunch?",
             "soup pizza rice salad bread pasta cake eggs"),
    "instrument": ("{n} plays the {v}.", "Which instrument does {n} play?",
                   "piano guitar violin drum flute trumpet harp cello"),
    "day": ("{n} was born on a {v}.", "On which day was {n} born?",
            "Monday Tuesday Wednesday Thursday Friday Saturday Sunday"),
    "transport": ("{n} goes to work by {v}.", "How does {n} get to work?",
                  "bus car train bike boat taxi tram"),
}  # fmt: skip
V2_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen twenty").split()  # fmt: skip
V2_HEADERS = (
    "Question: ", "Q: ", "Quiz: ", "", "Test: ", "Problem: ", "Read and answer. ",
    "Exercise: ", "Pick one. ", "Task: ", "Trivia: ", "Puzzle: ", "Try this. ", "Check: ",
    "Exam: ", "Riddle: ", "Choose. ", "Now: ", "Round one. ", "Homework: ",
)  # fmt: skip
V2_LABEL_STYLES = ("{L}. ", "{L}) ", "({L}) ", "{L}: ", "{L} - ", "[{L}] ")
V2_LAYOUTS = ("\n", " ", "; ")
V2_CUES = (
    "Answer:", "The answer is", "Correct option:", "Your choice:", "Answer: option", "Reply:",
    "Solution:", "I choose", "Pick:", "The right one is", "Correct:", "My answer:",
    "Final answer:", "It is option", "Choice:", "The correct label is", "Best option:",
    "Selected:", "Result:", "Response:",
)  # fmt: skip
V2_LABELS = (*LABEL_SETS, "mixed")


def _grammar():
    from mechjax.data.tasks.splits import Grammar

    return Grammar.of(
        "multiple_choice", header=V2_HEADERS, label_style=V2_LABEL_STYLES, layout=V2_LAYOUTS,
        cue=V2_CUES,
    )  # fmt: skip


@functools.lru_cache(maxsize=1)
def _question_lines() -> tuple[str, ...]:
    """Every question line of the bank (what is asked)."""
    lines = [q.format(n=n) for _, q, _ in V2_RELATIONS.values() for n in V2_PEOPLE]
    lines += [f"What is {V2_WORDS[a]} plus {V2_WORDS[b]}?" for a in range(11) for b in range(11)
              if a + b <= 20]  # fmt: skip
    from mechjax.data.tasks.successor import SEQUENCES

    for kind in ("number_words", "ordinals", "days", "months", "letters"):
        items = SEQUENCES[kind]
        lines += [f"What comes after{w}?" for w in items[:-1]]
    return tuple(lines)


def split_sets(split: str) -> dict[str, tuple]:
    """The split's format pieces and question lines ("question")."""
    from mechjax.data.tasks.splits import part

    return {
        **_grammar().options(split),
        "question": part(_question_lines(), "multiple_choice/question", split),
    }


def _answer_of(line: str, rng: random.Random, people: tuple[str, ...]):
    """(context, correct, distractor pool, kind) for a question line."""
    from mechjax.data.tasks.successor import SEQUENCES

    if line.startswith("What is ") and " plus " in line:
        a, b = line[len("What is ") : -1].split(" plus ")
        r = V2_WORDS.index(a) + V2_WORDS.index(b)
        pool = [w for w in V2_WORDS if w != V2_WORDS[r]]
        return "", V2_WORDS[r], pool, "sum"
    if line.startswith("What comes after"):
        w = line[len("What comes after") : -1]
        for items in SEQUENCES.values():
            if w in items and items.index(w) + 1 < len(items):
                nxt = items[items.index(w) + 1]
                return "", nxt.strip(), [x.strip() for x in items if x != nxt], "successor"
        raise AssertionError(line)
    for rel, (statement, question, values) in V2_RELATIONS.items():
        pre, post = question.split("{n}")
        if line.startswith(pre) and line.endswith(post):
            name = line[len(pre) : len(line) - len(post)]
            values = values.split()
            v = rng.choice(values)
            others = rng.sample([p for p in people if p != name], rng.randint(0, 2))
            facts = [(name, v)] + [(o, rng.choice([x for x in values if x != v])) for o in others]
            rng.shuffle(facts)
            context = " ".join(statement.format(n=n, v=x) for n, x in facts) + " "
            pool = [x for x in values if x != v]
            # the other people's values come first among the distractors (read, not guessed)
            seen = list(dict.fromkeys(x for n, x in facts if n != name))
            pool = seen + [x for x in pool if x not in seen]
            return context, v, pool, rel
    raise AssertionError(line)


def _render_v2(header, context, line, labs, opts, style, layout, cue):
    text, span = header + context + line, {}
    for j, (lab, opt) in enumerate(zip(labs, opts)):
        text += layout
        pre, post = style.split("{L}")
        text += pre
        span[f"label{j}"] = (len(text), len(text) + len(lab))
        text += lab + post
        span[f"option{j}"] = (len(text), len(text) + len(opt))
        text += opt
    text += layout + cue
    span["end"] = _end(text)
    return text, span


def _end(text):
    from mechjax.data.tasks._text import end_span

    return end_span(text)


def _multiple_choice_split(n: int, seed: int, split: str, labels: str) -> Prompts:
    from mechjax.data.tasks.splits import rng as split_rng

    sets = split_sets(split)
    rng = split_rng("multiple_choice", split, seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    keys = ("correct", "corrupt_correct", "labels", "question", "kind", "options", "template")
    meta = {k: [] for k in keys}
    for _ in range(n):
        header, style, layout, cue = (rng.choice(sets[s]) for s in ("header", "label_style",
                                                                     "layout", "cue"))  # fmt: skip
        line = rng.choice(sets["question"])
        context, right, pool, kind = _answer_of(line, rng, V2_PEOPLE)
        n_seen = sum(1 for x in pool[:2] if x in context)
        wrong = pool[:n_seen] + rng.sample(pool[n_seen:], 3 - n_seen)
        lab_set = rng.choice(LABEL_SETS) if labels == "mixed" else labels
        if lab_set == "letters":
            labs = ("A", "B", "C", "D")
        elif lab_set == "numbers":
            labs = ("1", "2", "3", "4")
        else:
            labs = tuple(rng.sample(string.ascii_uppercase, 4))
        options = [right, *wrong]
        rng.shuffle(options)
        correct = options.index(right)
        perm = list(options)
        while perm.index(right) == correct:
            rng.shuffle(perm)
        text, span = _render_v2(header, context, line, labs, options, style, layout, cue)
        span["correct_option"] = span[f"option{correct}"]
        clean.append(text)
        corrupted.append(_render_v2(header, context, line, labs, perm, style, layout, cue)[0])
        answers.append((" " + labs[correct],))
        contrasts.append(tuple(" " + lab for j, lab in enumerate(labs) if j != correct))
        spans.append(span)
        tid = "|".join((header, style, layout, cue, kind))
        vals = (correct, perm.index(right), labs, line, kind, tuple(options), tid)
        for k, v in zip(meta, vals):
            meta[k].append(v)
    return Prompts.from_lists("multiple_choice", clean, corrupted, answers, contrasts, spans, meta)


def _register_splits():
    from mechjax.data.tasks.base import register_splits

    n_kinds = len(V2_RELATIONS) + 2  # the context relations, sums, successors
    register_splits(
        "multiple_choice",
        lambda split: _grammar().count(split) * n_kinds,
        split_sets,
        lambda: (
            V2_PEOPLE
            + tuple(w for *_, v in V2_RELATIONS.values() for w in v.split())
            + tuple(V2_WORDS)
        ),
    )


_register_splits()
