"""Text tasks with clean / corrupted prompts and answer / contrast tokens.

A generator returns :class:`Prompts` (strings, deterministic from a seed). :func:`encode`
tokenizes them with a `tokenizers.Tokenizer` into a :class:`TaskBatch` of numpy arrays that
`mj.run` and the analyses take directly; :func:`logit_diff` and :func:`accuracy` are the
standard metrics on the logits at each prompt's last token.

Conventions:
  * prompts do not include the answer; answers and contrasts are single-token continuations,
    written with their leading space (`" Mary"`), and `encode` refuses anything else;
  * a clean prompt and its corrupted counterpart tokenize to the same length, so activations
    can be patched position by position;
  * `spans` name character ranges of the clean prompt (e.g. `"IO"`, `"S1"`, `"S2"`, `"end"`);
    `encode` turns them into token positions (the span's last token).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from mechjax.data.tokenizer import BOS


@dataclasses.dataclass(frozen=True)
class Prompts:
    """`n` examples of one task, as text.

    Fields (all tuples of length `n`):
      clean: prompt texts (no answer).
      corrupted: counterpart prompts with the information that decides the answer destroyed.
      answers: per example, the correct single-token continuation(s), e.g. `(" Mary",)`.
      contrasts: per example, the contrast continuation(s); the logit difference is
        mean(answer logits) - mean(contrast logits).
      spans: per example, a dict role -> (start, end) character range in `clean`.
      meta: dict name -> tuple of per-example values (template id, operands, ...). The key
        "continuation" (optional) holds text that training texts add after the answer.
    """

    task: str
    clean: tuple[str, ...]
    corrupted: tuple[str, ...]
    answers: tuple[tuple[str, ...], ...]
    contrasts: tuple[tuple[str, ...], ...]
    spans: tuple[dict[str, tuple[int, int]], ...] = ()
    meta: dict[str, tuple] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        n = len(self.clean)
        for name in ("corrupted", "answers", "contrasts"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"Prompts({self.task}): {name} has {len(getattr(self, name))} entries, "
                    f"clean has {n}."
                )
        if self.spans and len(self.spans) != n:
            raise ValueError(f"Prompts({self.task}): spans has {len(self.spans)} entries, not {n}.")
        for k, v in self.meta.items():
            if len(v) != n:
                raise ValueError(
                    f"Prompts({self.task}): meta[{k!r}] has {len(v)} entries, not {n}."
                )
        for i, a in enumerate(self.answers):
            if not a:
                raise ValueError(f"Prompts({self.task}): example {i} has no answer.")

    def __len__(self) -> int:
        return len(self.clean)

    @classmethod
    def from_lists(cls, task, clean, corrupted, answers, contrasts, spans=(), meta=None) -> Prompts:
        """A `Prompts` from the lists a generator builds (converted to tuples)."""
        return cls(
            task=task,
            clean=tuple(clean),
            corrupted=tuple(corrupted),
            answers=tuple(answers),
            contrasts=tuple(contrasts),
            spans=tuple(spans),
            meta={k: tuple(v) for k, v in (meta or {}).items()},
        )

    def take(self, idx) -> Prompts:
        """The examples at indices `idx` (a sequence of ints), in that order."""
        idx = [int(i) for i in idx]
        pick = lambda xs: tuple(xs[i] for i in idx)  # noqa: E731
        return Prompts(
            task=self.task,
            clean=pick(self.clean),
            corrupted=pick(self.corrupted),
            answers=pick(self.answers),
            contrasts=pick(self.contrasts),
            spans=pick(self.spans) if self.spans else (),
            meta={k: pick(v) for k, v in self.meta.items()},
        )

    def training_texts(self) -> list[str]:
        """Each clean prompt followed by its first answer (and by `meta["continuation"]`, where a
        generator writes one): the text a model is trained on."""
        rest = self.meta.get("continuation", ("",) * len(self))
        return [c + a[0] + r for c, a, r in zip(self.clean, self.answers, rest)]


@dataclasses.dataclass(frozen=True)
class TaskBatch:
    """Tokenized prompts (numpy). `N` examples, `T` = longest prompt (+1 for BOS).

    Fields:
      tokens, corrupted: int32 `[N, T]`, BOS first, right-padded with the BOS id (padding sits
        after `last`, so causal attention never sees it from the positions that matter).
      last: int32 `[N]`, index of each prompt's final token (where the answer is predicted).
      answers, contrasts: int32 `[N, A]`, `[N, C]` token ids, padded with -1.
      positions: role -> int32 `[N]` token index of the span's last token (-1 if absent).
      task: the task name; meta: the generator's per-example values.
    """

    task: str
    tokens: np.ndarray
    corrupted: np.ndarray
    last: np.ndarray
    answers: np.ndarray
    contrasts: np.ndarray
    positions: dict[str, np.ndarray]
    meta: dict[str, tuple]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def take(self, idx) -> TaskBatch:
        """A sub-batch (numpy fancy index over examples)."""
        idx = np.asarray(idx)
        return TaskBatch(
            task=self.task,
            tokens=self.tokens[idx],
            corrupted=self.corrupted[idx],
            last=self.last[idx],
            answers=self.answers[idx],
            contrasts=self.contrasts[idx],
            positions={k: v[idx] for k, v in self.positions.items()},
            meta={k: tuple(np.asarray(v, dtype=object)[idx]) for k, v in self.meta.items()},
        )


def single_token_id(tokenizer, text: str) -> int | None:
    """The id of `text` if it is exactly one token, else None."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    return ids[0] if len(ids) == 1 else None


def encodable(prompts: Prompts, tokenizer) -> np.ndarray:
    """bool `[n]`: examples whose answers/contrasts are single tokens and whose clean and
    corrupted prompts tokenize to the same length under `tokenizer`."""
    clean = tokenizer.encode_batch(list(prompts.clean), add_special_tokens=False)
    corr = tokenizer.encode_batch(list(prompts.corrupted), add_special_tokens=False)
    single: dict[str, bool] = {}

    def ok(words):
        for w in words:
            if w not in single:
                single[w] = single_token_id(tokenizer, w) is not None
            if not single[w]:
                return False
        return True

    return np.array(
        [
            len(a.ids) == len(b.ids) and ok(ans) and ok(con)
            for a, b, ans, con in zip(clean, corr, prompts.answers, prompts.contrasts)
        ],
        dtype=bool,
    )


def generate_encodable(
    name: str, n: int, tokenizer, seed: int = 0, oversample: int = 8, **options: Any
) -> Prompts:
    """`n` examples of task `name` that `tokenizer` can encode (see :func:`encodable`).

    The papers do the same for GPT-2 (e.g. IOI keeps single-token names): draw
    `oversample * n` examples with `seed`, keep the encodable ones in order. Raises
    ValueError if fewer than `n` survive, saying how many did.
    """
    pool = generate(name, oversample * n, seed=seed, **options)
    keep = np.flatnonzero(encodable(pool, tokenizer))
    if len(keep) < n:
        raise ValueError(
            f"generate_encodable({name!r}): only {len(keep)} of {len(pool)} examples are "
            f"encodable with this tokenizer (single-token answers, equal clean/corrupted "
            f"lengths); ask for fewer or raise oversample."
        )
    return pool.take(keep[:n])


def encode(prompts: Prompts, tokenizer, bos: bool = True) -> TaskBatch:
    """Tokenizes `prompts` into a :class:`TaskBatch`.

    Raises ValueError (naming the offending strings) if an answer or contrast is not a single
    token, or a clean prompt and its corrupted counterpart tokenize to different lengths.
    """
    bos_id = tokenizer.token_to_id(BOS)
    if bos and bos_id is None:
        raise ValueError(f"encode: the tokenizer has no {BOS!r} token; pass bos=False.")
    pad = bos_id if bos_id is not None else 0
    off = 1 if bos else 0
    clean = tokenizer.encode_batch(list(prompts.clean), add_special_tokens=False)
    corr = tokenizer.encode_batch(list(prompts.corrupted), add_special_tokens=False)

    cache: dict[str, int | None] = {}

    def ids(words, kind, i):
        out = []
        for w in words:
            if w not in cache:
                cache[w] = single_token_id(tokenizer, w)
            if cache[w] is None:
                pieces = tokenizer.encode(w, add_special_tokens=False).tokens
                raise ValueError(
                    f"encode({prompts.task}): {kind} {w!r} of example {i} is not a single token "
                    f"(it tokenizes to {pieces}); answers and contrasts must be single tokens."
                )
            out.append(cache[w])
        return out

    bad = [i for i, (a, b) in enumerate(zip(clean, corr)) if len(a.ids) != len(b.ids)]
    if bad:
        i = bad[0]
        raise ValueError(
            f"encode({prompts.task}): {len(bad)} clean/corrupted pairs tokenize to different "
            f"lengths, e.g. example {i}: {clean[i].tokens} vs {corr[i].tokens}."
        )
    n = len(prompts)
    t = max(len(e.ids) for e in clean) + off
    tokens = np.full((n, t), pad, np.int32)
    corrupted = np.full((n, t), pad, np.int32)
    last = np.zeros(n, np.int32)
    for i, (a, b) in enumerate(zip(clean, corr)):
        if bos:
            tokens[i, 0] = corrupted[i, 0] = bos_id
        tokens[i, off : off + len(a.ids)] = a.ids
        corrupted[i, off : off + len(b.ids)] = b.ids
        last[i] = off + len(a.ids) - 1
    a_ids = [ids(a, "answer", i) for i, a in enumerate(prompts.answers)]
    c_ids = [ids(c, "contrast", i) for i, c in enumerate(prompts.contrasts)]
    answers = _pad([*a_ids])
    contrasts = _pad([*c_ids])

    roles = sorted({r for s in prompts.spans for r in s})
    positions = {r: np.full(n, -1, np.int32) for r in roles}
    for i, s in enumerate(prompts.spans):
        offsets = clean[i].offsets
        for r, (start, end) in s.items():
            # last token whose character range overlaps [start, end)
            hit = [j for j, (a, b) in enumerate(offsets) if a < end and b > start]
            if not hit:
                raise ValueError(
                    f"encode({prompts.task}): span {r!r}={start, end} of example {i} covers no "
                    f"token of {prompts.clean[i]!r}."
                )
            positions[r][i] = hit[-1] + off
    return TaskBatch(
        task=prompts.task,
        tokens=tokens,
        corrupted=corrupted,
        last=last,
        answers=answers,
        contrasts=contrasts,
        positions=positions,
        meta=dict(prompts.meta),
    )


def _pad(rows: list[list[int]]) -> np.ndarray:
    width = max(1, max((len(r) for r in rows), default=1))
    out = np.full((len(rows), width), -1, np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _final_logits(logits, last):
    import jax.numpy as jnp

    return jnp.take_along_axis(logits, jnp.asarray(last)[:, None, None], axis=1)[:, 0]


def _masked_sum(x, idx):
    """Sum of `x[..., idx]` over the entries of `idx` that are >= 0 (-1 pads)."""
    import jax.numpy as jnp

    idx = jnp.asarray(idx)
    vals = jnp.take_along_axis(x, jnp.maximum(idx, 0), axis=-1)
    return jnp.sum(jnp.where(idx >= 0, vals, 0.0), -1)


def _masked_mean(x, idx):
    import jax.numpy as jnp

    return _masked_sum(x, idx) / jnp.maximum((jnp.asarray(idx) >= 0).sum(-1), 1)


def logit_diff(logits, batch: TaskBatch):
    """Per example: mean answer logit - mean contrast logit at the last prompt token. `[N]`.

    `logits`: `[N, T, d_vocab]` from `mj.run` on `batch.tokens` (or `batch.corrupted`).
    """
    final = _final_logits(logits, batch.last)
    return _masked_mean(final, batch.answers) - _masked_mean(final, batch.contrasts)


def prob_diff(logits, batch: TaskBatch):
    """Per example: total probability of the answers - total probability of the contrasts at
    the last prompt token (softmax over the whole vocabulary). `[N]`, in [-1, 1].

    For greater-than this is Hanna et al.'s probability difference,
    sum p(YY' > YY) - sum p(YY' <= YY). Unlike the logit difference it is near 0 (averaged
    over start years) for a model that knows only "a year after the start year" once the
    start year is corrupted to 01, since the answers and contrasts then split the valid years.
    """
    import jax
    import jax.numpy as jnp

    p = jax.nn.softmax(_final_logits(logits, batch.last).astype(jnp.float32), -1)
    return _masked_sum(p, batch.answers) - _masked_sum(p, batch.contrasts)


def accuracy(logits, batch: TaskBatch):
    """Per example: 1.0 if the top-1 token over the whole vocabulary is an answer. `[N]`."""
    import jax.numpy as jnp

    top = jnp.argmax(_final_logits(logits, batch.last), -1)
    return jnp.any(top[:, None] == jnp.asarray(batch.answers), -1).astype(jnp.float32)


GENERATORS: dict[str, Callable[..., Prompts]] = {}
# split-mode descriptions, per task (see `mechjax.data.tasks.splits`):
#   GRAMMARS[task](split) -> number of distinct templates of the split;
#   SPLIT_SETS[task](split) -> {kind: tuple} the split's template pieces, entities and items
#     (kinds that are also meta keys hold the values the prompts' meta draws from);
#   LEXICONS[task]() -> every entity word of every split (for a tokenizer / vocabulary primer);
#     a lexicon whose words depend on generator options takes them (`lexicon`).
GRAMMARS: dict[str, Callable[[str], int]] = {}
SPLIT_SETS: dict[str, Callable[[str], dict[str, tuple]]] = {}
LEXICONS: dict[str, Callable[[], tuple[str, ...]]] = {}


def register(name: str):
    """Decorator: adds a generator `fn(n, seed=0, split=None, **options) -> Prompts` under
    `name`."""

    def deco(fn):
        GENERATORS[name] = fn
        return fn

    return deco


def register_splits(name: str, grammar, split_sets, lexicon) -> None:
    """Registers a task's split-mode template counts, split sets and lexicon."""
    GRAMMARS[name], SPLIT_SETS[name], LEXICONS[name] = grammar, split_sets, lexicon


def lexicon(name: str, options: dict | None = None) -> tuple[str, ...]:
    """Every entity word of every split of task `name` under its generator `options` (only
    lexicons that take keyword arguments see them, e.g. docstring's `name_bank`)."""
    import inspect

    fn = LEXICONS[name]
    takes = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    return tuple(fn(**(options or {})) if takes else fn())


def split_set(name: str, split: str, options: dict | None = None) -> dict[str, tuple]:
    """`SPLIT_SETS[name](split)` with the generator `options` that split set takes (e.g.
    IOI's `name_bank`; the others are ignored). Raises ValueError for a task without splits."""
    import inspect

    if name not in SPLIT_SETS:
        raise ValueError(f"task {name!r} has no splits; tasks with splits: {sorted(SPLIT_SETS)}.")
    fn = SPLIT_SETS[name]
    params = inspect.signature(fn).parameters
    return fn(split, **{k: v for k, v in (options or {}).items() if k in params})


def kind_lexicon(name: str, options: dict | None = None) -> dict[str, tuple[str, ...]]:
    """The entity kinds of task `name` and their words over every split ({"name": (...),
    "place": (...), ...}): the kinds of its split sets (:func:`split_set`) whose members are
    single words (template pieces, which hold "{...}" or spaces, are left out). {} for a task
    without splits."""
    from mechjax.data.tasks.splits import SPLITS

    if name not in SPLIT_SETS:
        return {}
    out: dict[str, list[str]] = {}
    for split in SPLITS:
        for kind, members in split_set(name, split, options).items():
            out.setdefault(kind, []).extend(members)
    word = re.compile(r"^ ?[A-Za-z][A-Za-z0-9_'-]*$")
    return {
        k: tuple(dict.fromkeys(v))
        for k, v in out.items()
        if v and all(isinstance(m, str) and word.match(m) for m in v)
    }


def generate(name: str, n: int, seed: int = 0, split: str | None = None, **options: Any) -> Prompts:
    """`n` examples of task `name`, deterministic from `seed`.

    `split` in ("train", "val", "test") draws templates, entities and items from that split
    only (`mechjax.data.tasks.splits`); `split=None` is the legacy generator the shipped zoo
    models were trained on (to be removed when the zoo is retrained)."""
    if name not in GENERATORS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(GENERATORS))}.")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"generate({name!r}): n must be a positive int, got {n!r}.")
    if split is None:
        return GENERATORS[name](n, seed=seed, **options)
    from mechjax.data.tasks.splits import check_split

    return GENERATORS[name](n, seed=seed, split=check_split(name, split), **options)
