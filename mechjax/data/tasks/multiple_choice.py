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
def multiple_choice(n: int, seed: int = 0, **options) -> Prompts:
    """`n` four-option multiple-choice prompts.

    Args:
      n: number of examples.
      seed: the examples are a deterministic function of it.
      labels: "letters", "random_letters" or "numbers" (see module docstring).

    Returns:
      :class:`Prompts` with spans "label0".."label3", "option0".."option3",
      "correct_option", "end".
    """
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
