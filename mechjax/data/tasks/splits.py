"""Train / val / test splits for the text tasks, by a stable hash of each item.

Every generator takes `split=` ("train", "val" or "test"). With a split, a task draws its
template pieces (sentence frames, connectives, verb phrases, ...), its entities (names,
places, objects, ...) and its items (operand pairs, start years, question lines, ...) only
from that split's share of each list, so a `test` prompt shares no template piece, entity or
item with any `train` prompt. `split=None` is the legacy generator the shipped zoo models
were trained on (its own templates, names and items, the same in training and evaluation);
it stays bit-identical until the zoo is retrained, and is then to be removed.

How a list is split (:func:`partition`): each item's text is hashed with
`hashlib.blake2b(salt + item)` (salt = task and list name, so lists are split independently)
to a number u in [0, 1); u < 0.6 -> train, u < 0.8 -> val, else test. A list too short for
that to give every split at least `min_each` items is cut by hash rank instead (the same
fractions, each split at least one item). Python's `hash()` is salted per process and is
never used. Random draws inside a split come from `random.Random(stable_int(task, split,
seed))`, so `train` and `test` with the same seed are unrelated streams.

A template grammar (:class:`Grammar`) is a few slots, each a list of phrasings; a template is
one choice per slot, and every slot is split, so the held-out templates differ from the
training ones in every slot (structure and wording), not only in filler words.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import math
import random
from collections.abc import Sequence

SPLITS = ("train", "val", "test")
FRACTIONS = (0.6, 0.2, 0.2)


def stable_int(*parts) -> int:
    """A 64-bit int from `parts` (their `str`s), the same in every process and Python."""
    h = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def unit(*parts) -> float:
    """A stable number in [0, 1) from `parts`."""
    return stable_int(*parts) / 2.0**64


def task_seed(name: str, seed: int) -> int:
    """A task's seed from its name and a base seed (independent of any task list's order)."""
    return stable_int("task-seed", name, seed) % (2**31)


def rng(task: str, split: str, seed: int) -> random.Random:
    """The random stream of `task`'s `split` for `seed`."""
    return random.Random(stable_int("rng", task, split, seed))


def check_split(task: str, split) -> str:
    if split not in SPLITS:
        raise ValueError(f"{task}: split={split!r} is not valid; use one of {SPLITS} (or None).")
    return split


def split_of(item, salt: str) -> str:
    """The split of one `item` by its hash alone (threshold on `unit(salt, item)`)."""
    u, acc = unit(salt, item), 0.0
    for name, f in zip(SPLITS, FRACTIONS):
        acc += f
        if u < acc:
            return name
    return SPLITS[-1]


@functools.lru_cache(maxsize=4096)
def _partition(items: tuple, salt: str, min_each: int, rank: bool) -> dict[str, tuple]:
    if len(set(items)) != len(items):
        raise ValueError(f"partition({salt!r}): the items repeat: {items[:8]}...")
    if len(items) < len(SPLITS):
        raise ValueError(f"partition({salt!r}): {len(items)} items cannot fill 3 splits.")
    out = {s: [] for s in SPLITS}
    for x in items:
        out[split_of(x, salt)].append(x)
    if rank or min(len(v) for v in out.values()) < min(min_each, len(items) // len(SPLITS)):
        # a short list: cut the items sorted by hash at the fractions, each split >= 1 item
        ranked = sorted(items, key=lambda x: unit(salt, x))
        n = len(ranked)
        n_val = max(1, round(FRACTIONS[1] * n))
        n_test = max(1, round(FRACTIONS[2] * n))
        n_train = n - n_val - n_test
        out = {
            "train": ranked[:n_train],
            "val": ranked[n_train : n_train + n_val],
            "test": ranked[n_train + n_val :],
        }
        order = {x: i for i, x in enumerate(items)}
        out = {k: sorted(v, key=order.__getitem__) for k, v in out.items()}
    return {k: tuple(v) for k, v in out.items()}


def partition(
    items: Sequence, salt: str, min_each: int = 3, rank: bool = False
) -> dict[str, tuple]:
    """{split: items of that split} (each in the order of `items`); disjoint, covering all.

    By hash threshold (an item keeps its split when others are added); by hash rank (exact
    fractions) if `rank` or if a split would get fewer than `min_each` items (capped at a
    third of the list). Template slots use rank, entity and item lists the threshold."""
    return _partition(tuple(items), salt, min_each, rank)


def part(items: Sequence, salt: str, split: str, min_each: int = 3, rank: bool = False) -> tuple:
    """The items of `split` (see :func:`partition`), or of the split that an enclosing
    :func:`draw_from` names for this list."""
    held = _DRAW_FROM.get() or {}
    for prefix, (other, hits) in held.items():
        if salt == prefix or salt.startswith(prefix + "/"):
            hits.append(salt)
            split = other
    return partition(items, salt, min_each, rank)[split]


def draw_key() -> tuple:
    """The enclosing :func:`draw_from` overrides as a hashable key ((prefix, split), ...), for
    caches of split-derived lists (so a cached "train" list never holds overridden items)."""
    return tuple(sorted((k, v[0]) for k, v in (_DRAW_FROM.get() or {}).items()))


# {salt prefix: (split, salts seen)} set by `draw_from`
_DRAW_FROM: contextvars.ContextVar[dict | None] = contextvars.ContextVar("draw_from", default=None)


@contextlib.contextmanager
def draw_from(split: str, lists: Sequence):
    """Inside the block, the lists named in `lists` ("task/kind", e.g. "ioi/name", which also
    covers "task/kind/..." sub-lists; or a tuple of alternative names for one list) come from
    `split` whatever split a generator asks for: e.g. train templates with test names, to see
    which held-out part a model fails on (:func:`factor_prompts`). Raises ValueError on exit
    if a named list (none of its alternatives) was never drawn."""
    check_split("draw_from", split)
    groups = [(x,) if isinstance(x, str) else tuple(x) for x in lists]
    entries = {str(x): (split, []) for g in groups for x in g}
    token = _DRAW_FROM.set({**(_DRAW_FROM.get() or {}), **entries})
    try:
        yield
    finally:
        _DRAW_FROM.reset(token)
    unused = sorted(g[0] for g in groups if not any(entries[x][1] for x in g))
    if unused:
        raise ValueError(
            f"draw_from: no list named {unused} was drawn; a list is named by its salt, "
            "'task/kind' (e.g. 'ioi/name', 'docstring/header')."
        )


def factor_prompts(
    task: str,
    n: int,
    held_out: Sequence[str],
    seed: int = 0,
    split: str = "test",
    base: str = "train",
    **options,
):
    """`n` prompts of `task` whose `held_out` kinds (keys of `SPLIT_SETS[task]`, e.g.
    ("name",) or ("frame", "setting", "action")) come from `split` and every other kind from
    `base`: which held-out part of a prompt a model fails on. `held_out=()` gives
    `generate(task, n, seed, split=base)` itself."""
    from mechjax.data.tasks import base as B

    kinds = tuple(B.split_set(task, base, options)) if task in B.SPLIT_SETS else ()
    bad = sorted(set(held_out) - set(kinds))
    if bad:
        raise ValueError(f"factor_prompts({task!r}): unknown kinds {bad}; valid: {kinds}.")
    # a kind is the list `task/kind`, or a sub-grammar's (needle's filler_subject is the list
    # needle_filler/subject)
    names = [(f"{task}/{k}", f"{task}_{k.replace('_', '/', 1)}") for k in held_out]
    with draw_from(split, names):
        return B.generate(task, n, seed=seed, split=base, **options)


@dataclasses.dataclass(frozen=True)
class Grammar:
    """Template slots of one task: `slots` maps a slot name to its phrasings (strings; a
    phrasing may hold `{field}`s). Each slot is split by :func:`partition` with salt
    `task/slot`; a template of a split is one phrasing per slot from that split's share."""

    task: str
    slots: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def of(cls, task: str, **slots: Sequence[str]) -> Grammar:
        return cls(task, tuple((k, tuple(v)) for k, v in slots.items()))

    def options(self, split: str) -> dict[str, tuple[str, ...]]:
        return {k: part(v, f"{self.task}/{k}", split, rank=True) for k, v in self.slots}

    def count(self, split: str) -> int:
        """How many distinct slot combinations (templates) the split has."""
        return math.prod(len(v) for v in self.options(split).values())

    def sample(self, r: random.Random, split: str) -> dict[str, str]:
        return {k: r.choice(v) for k, v in self.options(split).items()}


def template_counts(task: str) -> dict[str, int]:
    """{split: number of distinct templates} of a registered task's split grammar."""
    from mechjax.data.tasks.base import GRAMMARS

    if task not in GRAMMARS:
        raise ValueError(f"template_counts: no grammar for {task!r}; have {sorted(GRAMMARS)}.")
    return {s: GRAMMARS[task](s) for s in SPLITS}
