"""Factual recall from a synthetic knowledge base: subject + relation -> attribute.

Source: Lv et al. 2024, "Interpreting Key Mechanisms of Factual Recall in Transformer-Based
Language Models", which studies prompts like "The capital of France is" -> " Paris" in GPT-2
and OPT: heads move the subject to the last position, MLPs add the attribute direction.
We cannot rely on world knowledge a small model never saw, so the facts come from a fixed
invented knowledge base (:func:`knowledge_base`): 60 invented country names, 5 relations
(capital, language, flag color, sport, national animal), each with a fixed vocabulary of
common single-token attribute words and 4 templates. The KB depends only on `kb_seed`, not
on the example seed, so a model trained on the mixture and the evaluation share it.

    "The capital of Veloria is" -> " Paris"

  clean:     a template of the relation filled with a subject.
  answer:    the subject's attribute in the KB.
  contrast:  the attribute of the corrupting subject (another attribute of the same relation).
  corrupted: the same template with another subject whose attribute differs. All subjects
             are invented 6-letter words, frequent in the training texts, so a tokenizer
             trained on them makes each one token (`encode` checks the equal length).
  spans:     "subject", "relation" (the template's relation word, e.g. "capital"), "end".
  meta:      subject, relation, template (index into the relation's templates), attribute,
             corrupt_subject.

Templates: `templates="train"` uses all but the last template of each relation,
`"heldout"` only the last one (for testing generalisation to an unseen phrasing), `"all"` all.
Differences from the paper: synthetic facts instead of real ones; one-token subjects.
"""

from __future__ import annotations

import functools
import random

from mechjax.data.tasks._text import check_options
from mechjax.data.tasks.base import Prompts, register

SUBJECTS = tuple(
    """Aldora Belmar Cadria Dorvia Elmara Fenmor Galdor Harvia Istora Jorvik Kelmar Lorvia
    Mardon Norvia Oskara Pelora Quenta Rondia Solmar Tarvia Ulmora Valdor Wenmar Xandia
    Yormia Zelmar Armora Brenta Corvia Delmar Estara Farvia Gorlan Helmar Ilvora Jandor
    Korvia Lemora Menvar Nalora Orvana Pardia Ravona Selvar Torvan Urlana Vasmor Wilmar
    Yelvia Zorana Balvia Carmor Dravia Elvora Fandor Gelmar Halora Kandia Lumora Morvia""".split()
)

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "capital": tuple(
        " " + w
        for w in "Paris Rome London Berlin Madrid Tokyo Cairo Lima Oslo Dublin Vienna Athens".split()
    ),
    "language": tuple(
        " " + w
        for w in "French German Spanish Italian Greek Dutch Polish Swedish Russian Chinese".split()
    ),
    "color": tuple(" " + w for w in "red blue green yellow white black orange purple".split()),
    "sport": tuple(
        " " + w for w in "football tennis golf cricket hockey rugby baseball chess".split()
    ),
    "animal": tuple(" " + w for w in "lion eagle bear wolf tiger horse owl fox deer snake".split()),
}

# "{s}" is the subject (always after a space); "[...]" marks the relation word (span
# "relation"). The last template of each relation is the held-out one.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "capital": (
        "The [capital] of {s} is",
        "In {s}, the [capital] is",
        "The [capital] city of {s} is called",
        "Everyone knows that the [capital] of {s} is",
    ),
    "language": (
        "The official [language] of {s} is",
        "People in {s} [speak]",
        "In {s}, the main [language] is",
        "Most people who live in {s} [speak]",
    ),
    "color": (
        "The [flag] of {s} is",
        "In {s}, the [flag] is colored",
        "The national [flag] of {s} is mostly",
        "Children in {s} paint their [flag]",
    ),
    "sport": (
        "The national [sport] of {s} is",
        "In {s}, the most popular [sport] is",
        "People in {s} love to [play]",
        "The favorite [sport] in {s} is",
    ),
    "animal": (
        "The national [animal] of {s} is the",
        "In {s}, the sacred [animal] is the",
        "The [animal] that stands for {s} is the",
        "On the coat of arms of {s}, the [animal] shown is the",
    ),
}
RELATIONS = tuple(ATTRIBUTES)
TEMPLATE_SETS = ("all", "train", "heldout")


@functools.lru_cache(maxsize=8)
def _kb(kb_seed: int) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    rng = random.Random(f"factual-kb-{kb_seed}")
    cols = {}
    for rel, attrs in ATTRIBUTES.items():
        # balanced: every attribute is used by about the same number of subjects
        col = [attrs[i % len(attrs)] for i in range(len(SUBJECTS))]
        rng.shuffle(col)
        cols[rel] = col
    return tuple(
        (s, tuple((rel, cols[rel][i]) for rel in RELATIONS)) for i, s in enumerate(SUBJECTS)
    )


def knowledge_base(kb_seed: int = 0) -> dict[str, dict[str, str]]:
    """The synthetic KB: subject -> relation -> attribute (attribute with its leading space).

    Deterministic from `kb_seed` alone (independent of the example seed); a fresh dict each
    call, so callers may modify it.
    """
    if not isinstance(kb_seed, int):
        raise ValueError(f"factual: kb_seed must be an int, got {kb_seed!r}.")
    return {s: dict(rels) for s, rels in _kb(kb_seed)}


def _render(template: str, subject: str) -> tuple[str, dict[str, tuple[int, int]]]:
    """Fills a template; returns the text and the "subject"/"relation"/"end" spans."""
    a, b = template.index("["), template.index("]")
    # the relation marker comes before or after the subject; compute offsets on the final text
    text_no_brackets = template[:a] + template[a + 1 : b] + template[b + 1 :]
    rel = (a, b - 1)
    s_at = text_no_brackets.index("{s}")
    text = text_no_brackets.replace("{s}", subject)
    shift = len(subject) - len("{s}")
    if rel[0] > s_at:
        rel = (rel[0] + shift, rel[1] + shift)
    return text, {
        "subject": (s_at, s_at + len(subject)),
        "relation": rel,
        "end": (text.rindex(" ") + 1, len(text)),  # the last word
    }


@register("factual")
def factual(n: int, seed: int = 0, **options) -> Prompts:
    """`n` factual-recall prompts over :func:`knowledge_base` (`kb_seed`).

    Args:
      n: number of examples.
      seed: the examples (subject, relation, template, corruption) depend on it.
      kb_seed: which knowledge base; keep it equal between training and evaluation.
      templates: "all", "train" (all but the last template per relation) or "heldout"
        (only the last one).
      relations: a relation or a subset of RELATIONS to draw from (default None: all).

    Returns:
      :class:`Prompts` with spans "subject", "relation", "end".
    """
    opts = check_options("factual", options, {"kb_seed": 0, "templates": "all", "relations": None})
    kb_seed, templates, relations = opts["kb_seed"], opts["templates"], opts["relations"]
    if templates not in TEMPLATE_SETS:
        raise ValueError(
            f"factual: templates={templates!r} is not valid; use one of {TEMPLATE_SETS}."
        )
    if relations is None:
        rels = RELATIONS
    else:
        rels = (relations,) if isinstance(relations, str) else tuple(relations)
    bad = [r for r in rels if r not in RELATIONS]
    if bad or not rels:
        raise ValueError(
            f"factual: relations={relations!r} is not valid; use a non-empty subset of {RELATIONS}."
        )
    kb = knowledge_base(kb_seed)
    rng = random.Random(seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {k: [] for k in ("subject", "relation", "template", "attribute", "corrupt_subject")}
    for _ in range(n):
        rel = rng.choice(rels)
        n_t = len(TEMPLATES[rel])
        t_ids = {"all": range(n_t), "train": range(n_t - 1), "heldout": (n_t - 1,)}[templates]
        t = rng.choice(list(t_ids))
        subj = rng.choice(SUBJECTS)
        attr = kb[subj][rel]
        other = rng.choice([s for s in SUBJECTS if kb[s][rel] != attr])
        text, span = _render(TEMPLATES[rel][t], subj)
        clean.append(text)
        corrupted.append(_render(TEMPLATES[rel][t], other)[0])
        answers.append((attr,))
        contrasts.append((kb[other][rel],))
        spans.append(span)
        for k, v in zip(meta, (subj, rel, t, attr, other)):
            meta[k].append(v)
    return Prompts.from_lists("factual", clean, corrupted, answers, contrasts, spans, meta)
