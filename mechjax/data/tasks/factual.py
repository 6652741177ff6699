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
def factual(n: int, seed: int = 0, split: str | None = None, **options) -> Prompts:
    """`n` factual-recall prompts over :func:`knowledge_base` (`kb_seed`).

    Args:
      n: number of examples.
      seed: the examples (subject, relation, template, corruption) depend on it.
      kb_seed: which knowledge base; keep it equal between training and evaluation.
      templates: "all", "train" (all but the last template per relation) or "heldout"
        (only the last one).
      relations: a relation or a subset of RELATIONS to draw from (default None: all).
      split: "train" / "val" / "test" for the split grammar at the end of this module (the
        option `templates` must then stay "all"); None for the legacy templates.

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
    if split is not None:
        if templates != "all":
            raise ValueError(
                f"factual: templates={templates!r} selects legacy templates; with split= the "
                f"split chooses the templates, so leave templates='all'."
            )
        return _factual_split(n, seed, split, kb_seed, rels)
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


# ---- split mode (`split=` "train" / "val" / "test"; see mechjax.data.tasks.splits) --------
# The knowledge base is shared by every split (a fact can only be recalled if training states
# it); what is split is how it is asked: a template is opener x prefix x the relation's
# phrasing, every slot split, so a test prompt asks a known fact in words no training prompt
# uses ("Quiz time. Travelers say that Veloria's capital is" vs "The capital of Veloria is").

# (no empty opener: a subject that opened the prompt would have no leading space)
V2_OPENERS = (
    "Hey. ", "Listen. ", "Here is one. ", "Quiz time. ", "Okay. ", "Fact check. ", "True story. ",
    "Good to know. ", "Next one. ", "A note. ",
)  # fmt: skip
V2_PREFIXES = (
    "", "everyone knows that ", "as far as I know, ", "it is said that ",
    "in school we learned that ", "according to the atlas, ", "fun fact: ",
    "my teacher told me that ", "travelers say that ", "the guidebook says that ",
    "remember that ", "of course, ", "locals will tell you that ", "it is true that ",
    "the encyclopedia states that ", "note that ", "historically, ", "officially, ",
    "we all know that ", "surprisingly, ", "people often forget that ",
    "the report confirms that ", "trivia: ", "in fact, ", "experts agree that ",
    "the map shows that ", "back home we say that ", "needless to say, ", "by law, ",
    "for the record, ",
)  # fmt: skip
V2_PHRASINGS: dict[str, tuple[str, ...]] = {
    "capital": (
        "the [capital] of {s} is",
        "the [capital] city of {s} is",
        "{s} has its [capital] in",
        "the [capital] of the country {s} is",
        "{s}'s [capital] is",
        "in {s}, the [capital] is",
        "the main city and [capital] of {s} is",
        "the [capital] city of {s} is called",
        "the largest city and [capital] of {s} is",
        "the [capital] of {s} has always been",
        "{s} chose as its [capital]",
        "the [capital] that {s} governs from is",
        "visitors to the [capital] of {s} land in",
        "the [capital] of {s} is the city of",
        "the royal [capital] of {s} is",
    ),
    "language": (
        "the official [language] of {s} is",
        "people in {s} [speak]",
        "in {s}, the main [language] is",
        "most people who live in {s} [speak]",
        "the [language] spoken in {s} is",
        "children in {s} learn to [speak]",
        "{s}'s national [language] is",
        "the [language] of {s} is",
        "in {s} everyone [speaks]",
        "the first [language] of {s} is",
        "the [language] you hear in {s} is",
        "families in {s} [speak]",
        "the people of {s} [speak]",
        "signs in {s} use the [language]",
        "the state [language] of {s} is",
    ),
    "color": (
        "the [flag] of {s} is",
        "in {s}, the [flag] is colored",
        "the national [flag] of {s} is mostly",
        "children in {s} paint their [flag]",
        "{s}'s [flag] is",
        "the [flag] of {s} is colored",
        "the color of the [flag] of {s} is",
        "the main [flag] color of {s} is",
        "on the [flag] of {s} you see mostly",
        "fans of {s} wave a [flag] that is",
        "the [flag] over {s} is",
        "the state [flag] of {s} is",
        "the [flag] flown in {s} is",
        "{s} has a [flag] that is",
        "the old [flag] of {s} was",
    ),
    "sport": (
        "the national [sport] of {s} is",
        "in {s}, the most popular [sport] is",
        "people in {s} love to [play]",
        "the favorite [sport] in {s} is",
        "{s}'s best loved [sport] is",
        "kids in {s} [play]",
        "the [sport] everyone in {s} watches is",
        "in {s} the top [sport] is",
        "the [sport] of {s} is",
        "on weekends people in {s} [play]",
        "the main [sport] of {s} is",
        "schools in {s} teach the [sport]",
        "the people of {s} [play]",
        "the [sport] {s} is famous for is",
        "the oldest [sport] in {s} is",
    ),
    "animal": (
        "the national [animal] of {s} is the",
        "in {s}, the sacred [animal] is the",
        "the [animal] that stands for {s} is the",
        "on the coat of arms of {s}, the [animal] shown is the",
        "{s}'s national [animal] is the",
        "the symbol [animal] of {s} is the",
        "the [animal] on the flag of {s} is the",
        "the [animal] of {s} is the",
        "the emblem [animal] of {s} is the",
        "the [animal] people in {s} love is the",
        "the state [animal] of {s} is the",
        "the [animal] {s} is known for is the",
        "in {s} the most honored [animal] is the",
        "the royal [animal] of {s} is the",
        "the [animal] printed on the coins of {s} is the",
    ),
}


def _grammar(rel: str):
    from mechjax.data.tasks.splits import Grammar

    return Grammar.of(
        "factual", opener=V2_OPENERS, prefix=V2_PREFIXES, **{f"phrasing_{rel}": V2_PHRASINGS[rel]}
    )


def split_sets(split: str) -> dict[str, tuple]:
    """The split's template pieces (openers, prefixes, each relation's phrasings); the
    subjects and the KB are shared by all splits."""
    out = dict(_grammar(RELATIONS[0]).options(split))
    for rel in RELATIONS[1:]:
        out.update(_grammar(rel).options(split))
    return out


def _render_v2(opener: str, prefix: str, phrasing: str, subject: str):
    body = prefix + phrasing
    body = body[0].upper() + body[1:]
    text, span = _render(opener + body, subject)
    return text, span


def _factual_split(n, seed, split, kb_seed, rels) -> Prompts:
    from mechjax.data.tasks.splits import rng as split_rng

    kb = knowledge_base(kb_seed)
    sets = split_sets(split)
    rng = split_rng("factual", split, seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {k: [] for k in ("subject", "relation", "template", "attribute", "corrupt_subject")}
    for _ in range(n):
        rel = rng.choice(rels)
        opener, prefix = rng.choice(sets["opener"]), rng.choice(sets["prefix"])
        phrasing = rng.choice(sets[f"phrasing_{rel}"])
        subj = rng.choice(SUBJECTS)
        attr = kb[subj][rel]
        other = rng.choice([s for s in SUBJECTS if kb[s][rel] != attr])
        text, span = _render_v2(opener, prefix, phrasing, subj)
        clean.append(text)
        corrupted.append(_render_v2(opener, prefix, phrasing, other)[0])
        answers.append((attr,))
        contrasts.append((kb[other][rel],))
        spans.append(span)
        tid = "|".join((opener, prefix, rel, phrasing))
        for k, v in zip(meta, (subj, rel, tid, attr, other)):
            meta[k].append(v)
    return Prompts.from_lists("factual", clean, corrupted, answers, contrasts, spans, meta)


def _register_splits():
    from mechjax.data.tasks.base import register_splits

    def count(split):
        return sum(_grammar(rel).count(split) for rel in RELATIONS)

    register_splits(
        "factual",
        count,
        split_sets,
        lambda: SUBJECTS + tuple(a.strip() for v in ATTRIBUTES.values() for a in v),
    )


_register_splits()
