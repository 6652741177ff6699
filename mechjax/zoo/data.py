"""The zoo's training data: the standard-library code corpus, optionally mixed with task texts.

Everything here is deterministic from the arguments (and the Python version's standard
library), so `mechjax run configs/zoo/<name>.py` rebuilds the same tokenizer and streams.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from mechjax.data import corpus
from mechjax.data.tokenizer import BOS, train_bpe

MIXTURE_TASKS = (
    "ioi",
    "greater_than",
    "docstring",
    "colored_objects",
    "successor",
    "factual",
    "arithmetic",
    "multiple_choice",
    "needle",
    "repeated",
)
TRAIN_SEED = 12345  # task examples for training; evaluation uses other seeds (see EVAL_SEED)
EVAL_SEED = 777
# With split data (`build(split_data=True)`, config `task.split_data`), training texts come
# from the tasks' "train" split, training-time evals and curriculum choices use "val", and
# model cards use "test" (`mechjax.data.tasks.splits`); seeds come from a stable hash of the
# task name. Without it (the default; the shipped zoo), the legacy generators and the
# index-derived seeds below, until the zoo is retrained.
TRAIN_SPLIT, EVAL_SPLIT, TABLE_SPLIT = "train", "val", "test"


@dataclasses.dataclass(frozen=True)
class LMData:
    """A tokenizer and its token streams (`<|endoftext|>` starts every document)."""

    tokenizer: object
    train: np.ndarray  # [n_train_tokens]
    heldout: np.ndarray  # [n_heldout_tokens], held-out code files only
    unigram_loss: float  # nats/token of held-out code under the train-code unigram distribution
    info: dict  # corpus fingerprint, python version, token counts, task share
    # the stream of a curriculum's first phase (early task weights / options), else None
    train_early: np.ndarray | None = None


def unigram_loss(train: np.ndarray, heldout: np.ndarray, vocab: int) -> float:
    """Cross-entropy (nats/token) of `heldout` under add-one-smoothed unigram counts of `train`."""
    counts = np.bincount(train, minlength=vocab).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[heldout].mean())


def task_texts(
    n_per_task: int,
    seed: int,
    tasks=MIXTURE_TASKS,
    weights: dict | None = None,
    options: dict | None = None,
    split: str | None = None,
) -> list[str]:
    """Training texts (prompt + one sampled answer), shuffled: `n_per_task * weights[task]`
    (weight 1 if absent) per task, generated with `options[task]`. With `split` (normally
    "train"), prompts of that split, each text also followed by its `meta["continuation"]`
    (the rest of a multi-token needle value, a recap's remaining objects)."""
    rng = np.random.default_rng(seed)
    out = []
    for p in training_prompts(n_per_task, seed, tasks, weights, options, split).values():
        rest = p.meta.get("continuation") if split is not None else None
        for i, (clean, answers) in enumerate(zip(p.clean, p.answers)):
            text = clean + answers[int(rng.integers(len(answers)))]
            out.append(text + (rest[i] if rest else ""))
    rng.shuffle(out)
    return out


def training_prompts(
    n_per_task: int,
    seed: int = TRAIN_SEED,
    tasks=MIXTURE_TASKS,
    weights: dict | None = None,
    options: dict | None = None,
    split: str | None = None,
) -> dict:
    """The `Prompts` behind :func:`task_texts`, per task."""
    weights, options = weights or {}, options or {}
    unknown = sorted((set(weights) | set(options)) - set(MIXTURE_TASKS))
    if unknown:
        raise ValueError(f"zoo data: unknown task(s) {unknown}; valid: {MIXTURE_TASKS}.")
    return {
        name: task_prompts(
            name, int(round(n_per_task * weights.get(name, 1))), seed, options, split
        )
        for name in tasks
    }


def task_seed(name: str, seed: int, split: str | None = None) -> int:
    """The generator seed of task `name` for base seed `seed`. Legacy (`split=None`, the
    shipped zoo): `seed + 1000 * MIXTURE_TASKS.index(name)`. With a split: a stable hash of
    the name and seed (`mechjax.data.tasks.splits.task_seed`), independent of task order."""
    if split is None:
        return seed + 1000 * MIXTURE_TASKS.index(name)
    from mechjax.data.tasks.splits import task_seed as stable

    return stable(name, seed)


def task_prompts(
    name: str, n: int, seed: int, options: dict | None = None, split: str | None = None
):
    """`n` prompts of task `name`, seeded by :func:`task_seed` (so a task's prompts do not
    depend on which other tasks are drawn), generated with `options[name]`. Training uses
    `TRAIN_SEED`, evaluation `EVAL_SEED`; `split` picks the tasks' split (None: legacy)."""
    from mechjax.data import tasks as T

    opts = (options or {}).get(name, {})
    return T.generate(name, n, seed=task_seed(name, seed, split), split=split, **opts)


LEXICON_FORMS = ("words", "kinds")


def lexicon_texts(
    tasks=MIXTURE_TASKS,
    copies: int = 8,
    seed: int = 0,
    options: dict | None = None,
    form: str = "words",
    templates: bool = False,
) -> list[str]:
    """Short documents listing every entity word of every split of `tasks`, in `copies`
    shuffled orders. Split-data builds add them to the tokenizer's input and to the training
    stream, so that test-split names and objects are single tokens with trained embeddings,
    without any test prompt entering training. `options`: {task: generator options}, for
    lexicons that depend on them (docstring's `name_bank`).

    `form="words"`: 24 words of all tasks mixed per document ("Words: Mary cup ...").
    `form="kinds"`: one task's words of one kind per document, headed by the kind ("Names:
    Mary Tom ...", "Places: ...", `mechjax.data.tasks.kind_lexicon`), so a held-out name
    shares its contexts with the training names; words of no kind stay in "Words:" lists.
    `templates`: the template pieces' words too (:func:`template_words`), in "Words:" lists."""
    from mechjax.data import tasks as T

    if form not in LEXICON_FORMS:
        raise ValueError(f"lexicon_texts: form={form!r}; valid: {', '.join(LEXICON_FORMS)}.")
    if not isinstance(copies, int) or copies < 1:
        raise ValueError(f"lexicon_texts: copies must be a positive int, got {copies!r}.")
    rng = np.random.default_rng(seed)
    groups = [("Words", lexicon_words(tasks, options, templates))]
    if form == "kinds":
        opts = options or {}
        kinds = [(t, k, w) for t in tasks for k, w in T.kind_lexicon(t, opts.get(t)).items()]
        covered = {x.strip() for _, _, w in kinds for x in w}
        groups = [(k.capitalize() + "s", sorted({x.strip() for x in w})) for _, k, w in kinds]
        rest = [w for w in lexicon_words(tasks, options, templates) if w.strip() not in covered]
        groups += [("Words", rest)] if rest else []
    out = []
    for _ in range(copies):
        for head, words in groups:
            order = rng.permutation(len(words))
            for i in range(0, len(order), 24):
                out.append(f"{head}:" + "".join(" " + words[j] for j in order[i : i + 24]) + ".")
    return out


def lexicon_words(
    tasks=MIXTURE_TASKS, options: dict | None = None, templates: bool = False
) -> list[str]:
    """Every entity word of every split of `tasks` (`mechjax.data.tasks.lexicon`, with each
    task's generator `options`), sorted. `templates`: also every word of every split's
    template pieces (:func:`template_words`)."""
    from mechjax.data import tasks as T

    opts = options or {}
    words = {w for t in tasks if t in T.LEXICONS for w in T.lexicon(t, opts.get(t))}
    if templates:
        words |= set(template_words(tasks, options))
    return sorted(words)


def template_words(tasks=MIXTURE_TASKS, options: dict | None = None) -> list[str]:
    """The words (letters only) of every split's template pieces of `tasks` (the split-set
    members that hold "{...}" slots or spaces: IOI's frames, settings and actions), sorted.
    A tokenizer primed with them has each as one token, so a held-out template's wording is
    made of tokens the model has embeddings for (from the lexicon documents), not of word
    pieces; no template, only its words, enters training."""
    from mechjax.data.tasks.splits import SPLITS

    return _piece_words(tasks, options or {}, SPLITS)


# how often the tokenizer's input lists each lexicon word: held-out names and objects occur
# in no training prompt, so without this BPE never merges them (" Neil" -> " Ne", "il") and
# their clean / corrupted prompts tokenize to different lengths
LEXICON_PRIMER_COPIES = 1000


def build_kwargs(task_config) -> dict:
    """`build` keyword arguments from a zoo config's `task` block (`split_data` defaults to
    False, the shipped zoo's legacy data)."""
    t = task_config
    get = lambda k, d: t.get(k, d) if hasattr(t, "get") else getattr(t, k, d)  # noqa: E731
    return dict(
        vocab_size=t.vocab_size,
        task_share=get("task_share", 0.0),
        n_per_task=get("n_per_task", 0),
        max_files=get("max_files", 0),
        task_weights=plain(get("task_weights", {}) or {}),
        task_options=plain(get("task_options", {}) or {}),
        early_task_weights=plain(get("early_task_weights", {}) or {}),
        early_task_options=plain(get("early_task_options", {}) or {}),
        split_data=bool(get("split_data", False)),
        tasks=tuple(get("tasks", ()) or ()) or None,
        lexicon_copies=int(get("lexicon_copies", 8)),
        lexicon_form=str(get("lexicon_form", "words")),
        lexicon_templates=bool(get("lexicon_templates", False)),
    )


def run_data(config: dict):
    """The data `build` of a zoo run from its config (`config.json` as a dict, or the
    ConfigDict): the base mixture and its curriculum phases' mixture, as
    `experiments/zoo/task.py` builds them, so the tokenizer is the run's."""
    import ml_collections

    from mechjax.zoo import config as ZC

    if not isinstance(config, ml_collections.ConfigDict):
        config = ml_collections.ConfigDict(config)
    t = config.task
    phases = ZC.check_zoo_phases(t, config.total_steps)
    early_w, early_o = (plain(m) for m in ZC.phase_mixture(phases))
    return build(**dict(build_kwargs(t), early_task_weights=early_w, early_task_options=early_o))


def _cache_key(args: dict, files: list[str]) -> str:
    """Hash of the arguments, the corpus and the source of everything that shapes the data."""
    import hashlib
    import json
    import os

    import mechjax.data.tasks as tasks_pkg

    h = hashlib.sha1(json.dumps(args, sort_keys=True).encode())
    h.update(corpus.fingerprint(files).encode())
    src = [
        os.path.join(os.path.dirname(tasks_pkg.__file__), f)
        for f in sorted(os.listdir(os.path.dirname(tasks_pkg.__file__)))
    ]
    src += [
        corpus.__file__,
        __file__,
        os.path.join(os.path.dirname(corpus.__file__), "tokenizer.py"),
    ]
    for p in src:
        if p.endswith(".py"):
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:16]


def cache_dir() -> str:
    """Where built data are cached: `$MECHJAX_CACHE` or `~/.cache/mechjax`."""
    import os

    return os.path.join(
        os.environ.get("MECHJAX_CACHE", os.path.expanduser("~/.cache/mechjax")), "zoo_data"
    )


def build(
    vocab_size: int,
    task_share: float = 0.0,
    n_per_task: int = 0,
    heldout_every: int = 20,
    max_files: int = 0,
    task_weights: dict | None = None,
    task_options: dict | None = None,
    early_task_weights: dict | None = None,
    early_task_options: dict | None = None,
    split_data: bool = False,
    tasks=None,
    lexicon_copies: int = 8,
    lexicon_form: str = "words",
    lexicon_templates: bool = False,
):
    """Tokenizer and streams for a zoo model.

    Args:
      vocab_size: BPE vocabulary size.
      task_share: 0 for code only; else the fraction of training tokens that are task
        examples (each `<|endoftext|>` + prompt + answer), interleaved with code files.
      n_per_task: distinct training examples generated per task (repeated to reach the
        share); they also enter the tokenizer's training texts so task words get merged.
      heldout_every: one standard-library file in this many is held out.
      max_files: if > 0, only the first `max_files` train and held-out files (for quick runs).
      task_weights: {task: w}: `n_per_task * w` distinct examples of that task (default 1), so
        its share of the task tokens grows by w.
      task_options: {task: generator options}, e.g. {"arithmetic": {"max_value": 39}}; the
        evals of the model must use the same (they are recorded in `info`).
      early_task_weights, early_task_options: if either is given, a second training stream
        `train_early` for a curriculum's first phase: the same code, with task examples drawn
        with these weights and options instead ({task: w} replaces that task's weight,
        {task: options} updates that task's options), e.g.
        `{"colored_objects": {"form": "recap"}}`. The tokenizer is trained on both phases'
        texts, so one vocabulary serves the whole run.
      split_data: False (default): the legacy task generators the shipped zoo was trained on.
        True: task texts from the tasks' "train" split (`mechjax.data.tasks.splits`, seeds by
        task-name hash) plus :func:`lexicon_texts`; evaluate such a model on "val" during
        training and on "test" in its card.
      tasks: the tasks whose examples are mixed in (task_share > 0), a subset of
        MIXTURE_TASKS; None (default) = all of them. E.g. ("docstring",) for a code model
        that also sees docstrings.
      lexicon_copies, lexicon_form: the split-data lexicon documents (:func:`lexicon_texts`'s
        `copies` and `form`).
      lexicon_templates: the lexicon (documents and tokenizer primer) also lists every word
        of every split's templates (:func:`template_words`), so held-out wording is tokens.

    The result is cached on disk (:func:`cache_dir`), keyed by the arguments, the corpus
    files and the source of the generators and tokenizer, since building takes minutes.
    """
    import json

    weights = json.dumps(plain(task_weights or {}), sort_keys=True)
    options = json.dumps(plain(task_options or {}), sort_keys=True)
    early = json.dumps(
        {"w": plain(early_task_weights or {}), "o": plain(early_task_options or {})},
        sort_keys=True,
    )
    if (early_task_weights or early_task_options) and task_share <= 0:
        raise ValueError(
            "zoo data: early_task_weights / early_task_options need task_share > 0 "
            f"(got task_share={task_share}); a code-only model has no task examples to change."
        )
    tasks = check_tasks(tasks)
    if (
        lexicon_form not in LEXICON_FORMS
        or not isinstance(lexicon_copies, int)
        or lexicon_copies < 1
    ):
        raise ValueError(
            f"zoo data: lexicon_form={lexicon_form!r}, lexicon_copies={lexicon_copies!r}; valid: "
            f"a form in {LEXICON_FORMS} and a positive int number of copies."
        )
    named = set(plain(task_weights or {})) | set(plain(task_options or {}))
    left_out = sorted(named - set(tasks)) if tasks is not None else []
    if left_out:
        raise ValueError(
            f"zoo data: task_weights / task_options name {left_out}, which are not in "
            f"tasks={list(tasks)}; add them to tasks or drop their weights / options."
        )
    return _build(
        vocab_size,
        task_share,
        n_per_task,
        heldout_every,
        max_files,
        weights,
        options,
        early,
        bool(split_data),
        tasks,
        int(lexicon_copies),
        lexicon_form,
        bool(lexicon_templates),
    )


def check_tasks(tasks) -> tuple | None:
    """`tasks` as a tuple in MIXTURE_TASKS order (None or empty = all tasks: None); raises
    ValueError naming an unknown task and the valid ones."""
    if not tasks:
        return None
    if isinstance(tasks, str):
        tasks = (tasks,)
    unknown = sorted(set(tasks) - set(MIXTURE_TASKS))
    if unknown:
        raise ValueError(f"zoo data: unknown task(s) {unknown} in tasks; valid: {MIXTURE_TASKS}.")
    picked = tuple(t for t in MIXTURE_TASKS if t in set(tasks))
    return None if picked == MIXTURE_TASKS else picked


def early_mixture(weights: dict, options: dict, early_weights: dict, early_options: dict):
    """The first phase's task weights and options: `early_weights` replace per task,
    `early_options` update that task's options."""
    unknown = sorted((set(early_weights) | set(early_options)) - set(MIXTURE_TASKS))
    if unknown:
        raise ValueError(f"zoo data: unknown early task(s) {unknown}; valid: {MIXTURE_TASKS}.")
    opts = {k: dict(v) for k, v in options.items()}
    for k, v in early_options.items():
        opts[k] = {**opts.get(k, {}), **v}
    return {**weights, **early_weights}, opts


def plain(x):
    """Nested mappings (ConfigDicts included) as plain dicts, tuples as lists."""
    if hasattr(x, "items"):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


@functools.lru_cache(maxsize=4)
def _build(
    vocab_size,
    task_share,
    n_per_task,
    heldout_every,
    max_files,
    weights,
    options,
    early,
    split_data=False,
    tasks=None,
    lexicon_copies=8,
    lexicon_form="words",
    lexicon_templates=False,
):
    import json
    import os
    import sys

    from tokenizers import Tokenizer

    task_weights, task_options = json.loads(weights), json.loads(options)
    early = json.loads(early)
    has_early = bool(early["w"] or early["o"])
    train_files = corpus.python_files("train", heldout_every=heldout_every)
    held_files = corpus.python_files("heldout", heldout_every=heldout_every)
    if max_files:
        train_files, held_files = train_files[:max_files], held_files[:max_files]
    args = dict(v=vocab_size, s=task_share, n=n_per_task, h=heldout_every, m=max_files)
    if task_weights or task_options:  # (absent keys keep the earlier builds' cache keys)
        args.update(w=task_weights, o=task_options)
    if has_early:
        args.update(early=early)
    if split_data:
        args.update(split=TRAIN_SPLIT)
    if tasks is not None:
        args.update(tasks=list(tasks))
    if (lexicon_copies, lexicon_form) != (8, "words"):  # (the defaults keep the old keys)
        args.update(lexicon=[lexicon_copies, lexicon_form])
    if lexicon_templates:
        args.update(lexicon_templates=True)
    task_list = tasks or MIXTURE_TASKS
    split = TRAIN_SPLIT if split_data else None
    path = os.path.join(cache_dir(), _cache_key(args, train_files + held_files))
    if os.path.isfile(path + ".npz"):
        z = np.load(path + ".npz")
        with open(path + ".json") as f:
            meta = json.load(f)
        tok = Tokenizer.from_str(meta.pop("tokenizer"))
        early_stream = z["train_early"] if has_early else None
        ul = meta.pop("unigram_loss")
        return LMData(tok, z["train"], z["heldout"], ul, meta["info"], early_stream)
    code = corpus.read_texts(train_files)
    held = corpus.read_texts(held_files)
    extra, extra_early = [], []
    lexicon = []
    if split_data and task_share > 0:
        lexicon = lexicon_texts(
            task_list, lexicon_copies, options=task_options, form=lexicon_form,
            templates=lexicon_templates,
        )  # fmt: skip
    if task_share > 0:
        extra = task_texts(
            n_per_task, TRAIN_SEED, task_list, task_weights, task_options, split=split
        )
        extra = _with_lexicon(extra, lexicon)
    if has_early:
        ew, eo = early_mixture(task_weights, task_options, early["w"], early["o"])
        extra_early = task_texts(n_per_task, TRAIN_SEED, task_list, ew, eo, split=split)
        extra_early = _with_lexicon(extra_early, lexicon)
    seen = set(extra)
    new_early = [t for t in extra_early if t not in seen]  # (both phases share most texts)
    # task texts are short; repeat them in the tokenizer's input so their words are merged, and
    # list every number below 100 (" 7", " 42", and "07", "42" inside longer numbers) so each
    # is one token even if the examples happen to miss one (e.g. greater-than's "01")
    numbers = "".join(f" {i}" for i in range(100)) + " x" + "".join(f"{i:02d}" for i in range(100))
    primer = [numbers] * 50 if task_share > 0 else []
    if lexicon:  # every split's entity words, so that each is one token (see the constant)
        words = lexicon_words(task_list, task_options, lexicon_templates)
        primer += ["".join(" " + w for w in words)] * LEXICON_PRIMER_COPIES
        if lexicon_templates:  # a frame's first word starts its document, with no space
            caps = [w for w in template_words(task_list, task_options) if w[:1].isupper()]
            primer += ["\n".join(caps)] * LEXICON_PRIMER_COPIES
    tokenizer = train_bpe(code + (extra + new_early) * 4 + primer, vocab_size=vocab_size)
    code_stream = corpus.tokenize_texts(code, tokenizer)
    held_stream = corpus.tokenize_texts(held, tokenizer)
    stream, early_stream = code_stream, None
    if task_share > 0:
        stream = _mix(code_stream, extra, task_share, tokenizer)
    if has_early:
        early_stream = _mix(code_stream, extra_early, task_share, tokenizer)
    info = {
        "python": sys.version.split()[0],
        "corpus_files": {"train": len(train_files), "heldout": len(held_files)},
        "corpus_fingerprint": corpus.fingerprint(train_files + held_files),
        "tokens": {"train": int(len(stream)), "code": int(len(code_stream))}
        | ({"train_early": int(len(early_stream))} if has_early else {}),
        "heldout_tokens": int(len(held_stream)),
        "task_share": float(task_share),
        "n_per_task": int(n_per_task),
        "task_weights": task_weights,
        "task_options": task_options,
        **({"tasks": list(tasks)} if tasks is not None else {}),
        **({"split_data": True, "task_split": TRAIN_SPLIT} if split_data else {}),
        **(
            {"lexicon": {"copies": lexicon_copies, "form": lexicon_form}}
            if "lexicon" in args
            else {}
        ),
        **(
            {"early_task_weights": early["w"], "early_task_options": early["o"]}
            if has_early
            else {}
        ),
        "vocab_size": int(tokenizer.get_vocab_size()),
    }
    ul = unigram_loss(code_stream, held_stream, tokenizer.get_vocab_size())
    try:  # a cache is a convenience: an unwritable folder only costs the rebuild
        os.makedirs(cache_dir(), exist_ok=True)
        extra_arrays = {"train_early": early_stream} if has_early else {}
        np.savez(path + ".tmp.npz", train=stream, heldout=held_stream, **extra_arrays)
        with open(path + ".tmp.json", "w") as f:
            json.dump({"tokenizer": tokenizer.to_str(), "unigram_loss": ul, "info": info}, f)
        os.replace(path + ".tmp.json", path + ".json")
        os.replace(path + ".tmp.npz", path + ".npz")
    except OSError:
        pass
    return LMData(tokenizer, stream, held_stream, ul, info, early_stream)


def _with_lexicon(texts: list[str], lexicon: list[str]) -> list[str]:
    """`texts` with the lexicon documents shuffled in (so a cut stream keeps its share)."""
    if not lexicon:
        return texts
    out = texts + lexicon
    order = np.random.default_rng(TRAIN_SEED).permutation(len(out))
    return [out[i] for i in order]


def _mix(code_stream: np.ndarray, texts: list[str], task_share: float, tokenizer) -> np.ndarray:
    """Task `texts` tokenized, repeated or cut to `task_share` of the result, and interleaved
    with the code documents as whole documents."""
    task_stream = corpus.tokenize_texts(texts, tokenizer)
    want = int(len(code_stream) * task_share / (1 - task_share))
    reps = -(-want // max(len(task_stream), 1))
    task_stream = np.tile(task_stream, reps)[:want]
    return _interleave(code_stream, task_stream, tokenizer.token_to_id(BOS), seed=0)


def _interleave(a: np.ndarray, b: np.ndarray, bos: int, seed: int) -> np.ndarray:
    """Documents of `a` and `b` (split at `bos`), shuffled together with a fixed seed."""
    docs = _split_docs(a, bos) + _split_docs(b, bos)
    order = np.random.default_rng(seed).permutation(len(docs))
    return np.concatenate([docs[i] for i in order])


def _split_docs(s: np.ndarray, bos: int) -> list[np.ndarray]:
    starts = np.flatnonzero(s == bos)
    if len(starts) == 0 or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    return np.split(s, starts[1:])


def windows(key, stream, batch: int, length: int, repeat_frac: float = 0.0, repeat_min: int = 16):
    """`[batch, length]` random contiguous windows of `stream` (a jax array). Jittable.

    With `repeat_frac > 0`, that fraction of rows (in expectation) shows its first `m` tokens
    twice, `m ~ U[repeat_min, length // 2]`: positions `m..2m-1` copy `0..m-1`, the rest
    continues the window. A varying `m` rules out "copy from a fixed distance back", so the
    repeats reward real induction heads.
    """
    import jax
    import jax.numpy as jnp

    k_win, k_len, k_on = jax.random.split(key, 3)
    starts = jax.random.randint(k_win, (batch,), 0, stream.shape[0] - length)
    w = jax.vmap(lambda s: jax.lax.dynamic_slice(stream, (s,), (length,)))(starts).astype(jnp.int32)
    if repeat_frac <= 0:
        return w
    m = jax.random.randint(k_len, (batch, 1), repeat_min, length // 2 + 1)
    on = jax.random.uniform(k_on, (batch, 1)) < repeat_frac
    i = jnp.arange(length)[None, :]
    idx = jnp.where(on & (i >= m) & (i < 2 * m), i - m, i)  # [batch, pos]
    return jnp.take_along_axis(w, idx, axis=1)


def packed_windows(
    key,
    stream,
    batch: int,
    length: int,
    doc_len: int,
    repeat_frac: float = 1.0,
    repeat_min: int = 4,
    random_vocab: int = 0,
    pool=None,
):
    """`[batch, length]` rows each packing `ceil(length / doc_len)` independent short windows.

    Returns `(tokens, segment_ids)`; pass `mj.document_mask(segment_ids)` as the attention mask
    so that no token sees another window. Each short window repeats its first
    `m ~ U[repeat_min, doc_len // 2]` tokens as in `windows`. With `random_vocab > 0` the
    windows are uniformly random tokens in `[1, random_vocab)` instead of slices of `stream`,
    so copying is the only thing to learn from them. The zoo's code models warm up on
    these: over 48 keys an induction head forms within a CPU budget, over 128 it did not
    (experiments/zoo/README.md, "How we got induction heads to form"). With `pool` (an int
    array of token ids) the random tokens are drawn uniformly from `pool` instead, e.g. the
    name tokens of :func:`copy_pool_ids`.
    """
    import jax
    import jax.numpy as jnp

    n = -(-length // doc_len)
    if pool is not None:
        pool = jnp.asarray(pool, jnp.int32)
        i = jax.random.randint(jax.random.fold_in(key, 1), (batch * n * doc_len,), 0, len(pool))
        stream = pool[i]
    elif random_vocab:
        stream = jax.random.randint(
            jax.random.fold_in(key, 1), (batch * n * doc_len,), 1, random_vocab
        )
    w = windows(key, stream, batch * n, doc_len, repeat_frac, repeat_min)
    toks = w.reshape(batch, n * doc_len)[:, :length]
    seg = jnp.broadcast_to(jnp.arange(length) // doc_len, (batch, length))
    return toks, seg.astype(jnp.int32)


# ------------------------------------------------------------------------------------------------
# Name substitution: the names of a task's training documents replaced, at every step, by
# random word tokens, so no per-name route can solve the task


# most distinct names per document that get a slot (IOI has two, docstring up to six)
MAX_NAME_SLOTS = 4


def _one_token_ids(tokenizer, names) -> set:
    """The ids of `names` written " Mary" and "Mary", those that are one token."""
    enc = (tokenizer.encode(s).ids for n in names for s in (" " + n, n))
    return {e[0] for e in enc if len(e) == 1}


def copy_pool_ids(tokenizer, tasks, options: dict | None = None) -> np.ndarray:
    """The one-token names (" Mary" and "Mary") of every split of those `tasks` that have a
    'name' kind, sorted: the random tokens of a copying warm-up whose copy must work for
    every name the evaluations use (`packed_source="names"`). The warm-up's windows are
    random sequences of these tokens, so no task prompt enters training through them; the
    held-out names then appear in training in word lists (:func:`lexicon_texts`) and in
    these sequences, never in a task sentence."""
    from mechjax.data import tasks as T

    opts = options or {}
    ids = set()
    for t in tasks:
        for sp in ("train", "val", "test"):
            names = T.split_set(t, sp, opts.get(t)).get("name")
            if names:
                ids |= _one_token_ids(tokenizer, names)
    if not ids:
        raise ValueError(
            f"copy pool: none of the tasks {list(tasks)} has one-token names; packed_source="
            "'names' needs a task with a 'name' kind (e.g. ioi, docstring)."
        )
    return np.array(sorted(ids), np.int32)


NAME_SLOT_POOLS = ("words", "capitalized")


def name_slot_ids(tokenizer, tasks, options: dict | None = None, pool: str = "words"):
    """`(slot_ids, pool)` for :func:`name_slots` / :func:`substitute_names`: the token ids of
    the train-split names of `tasks` (" Mary" and "Mary", those that are one token), and the
    ids substitutes are drawn from: `pool="words"`, every token that is a space and a word
    ("Ġfoo"); `"capitalized"`, those whose word starts with a capital letter (" Mary",
    " None", " When"), so a substitute still looks like a name; both except the val / test
    names of these tasks (which must stay unseen in a name's place)."""
    if pool not in NAME_SLOT_POOLS:
        raise ValueError(f"name slots: pool={pool!r}; valid: {', '.join(NAME_SLOT_POOLS)}.")
    from mechjax.data import tasks as T

    opts = options or {}
    slot, held = set(), set()
    for t in tasks:
        sets = {sp: T.split_set(t, sp, opts.get(t)) for sp in ("train", "val", "test")}
        if "name" not in sets["train"]:
            raise ValueError(f"name slots: task {t!r} has no 'name' kind to substitute.")
        slot |= _one_token_ids(tokenizer, sets["train"]["name"])
        held |= _one_token_ids(tokenizer, sets["val"]["name"] + sets["test"]["name"])
    words = {
        i for i in tokenizer.get_vocab().values() if (w := tokenizer.decode([i]))[:1] == " "
        and w[1:].isalpha() and (pool == "words" or w[1].isupper())
    }  # fmt: skip
    return np.array(sorted(slot), np.int32), np.array(sorted(words - held), np.int32)


def name_slots(
    stream: np.ndarray, slot_ids, bos: int, max_doc: int = 160, max_slots: int = MAX_NAME_SLOTS
):
    """Per position of `stream`: 0, or k >= 1 if the token is one of `slot_ids` and is the
    k-th distinct such token of its document (k <= `max_slots`; later ones stay 0). Only
    documents of at most `max_doc` tokens (task examples; code files are longer) get slots."""
    stream = np.asarray(stream)
    doc = np.cumsum(stream == bos) - 1
    lengths = np.bincount(doc[doc >= 0])
    short = np.zeros(len(stream), bool)
    short[doc >= 0] = lengths[doc[doc >= 0]] <= max_doc
    pos = np.flatnonzero(np.isin(stream, slot_ids) & short)
    out = np.zeros(len(stream), np.int8)
    if len(pos) == 0:
        return out
    key = doc[pos].astype(np.int64) * (int(stream.max()) + 1) + stream[pos]
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    # rank of each (document, token) pair by its first position inside the document
    first_pos = pos[first]
    order = np.lexsort((first_pos, doc[first_pos]))
    pair_doc = doc[first_pos][order]
    start = np.r_[0, np.flatnonzero(np.diff(pair_doc)) + 1]
    rank = np.arange(len(order)) - np.repeat(start, np.diff(np.r_[start, len(order)]))
    pair_rank = np.empty(len(order), np.int64)
    pair_rank[order] = rank + 1
    k = pair_rank[inverse]
    out[pos] = np.where(k <= max_slots, k, 0)
    return out


def noise_word_ids(tokenizer, tasks, options: dict | None = None):
    """`(word_ids, pool)` for :func:`noise_positions` / :func:`substitute_words`: the ids of
    every space-and-word token ("Ġfoo", the words a template is made of), and the ids of the
    lowercase ones that substitutes are drawn from, less every word of the val / test split
    sets of `tasks` (template pieces' words, names, places, objects, ...) that the train
    sets lack, so a held-out template's wording or entity never enters a training sentence,
    not even as noise; a lowercase substitute also never looks like a capitalised name."""
    opts = options or {}
    held = set(_member_words(tasks, opts, ("val", "test"))) - set(
        _member_words(tasks, opts, ("train",))
    )
    held = _one_token_ids(tokenizer, sorted(held))
    words, lower = set(), set()
    for i in tokenizer.get_vocab().values():
        w = tokenizer.decode([i])
        if w[:1] == " " and w[1:].isalpha():
            words.add(i)
            if w[1].islower():
                lower.add(i)
    return np.array(sorted(words), np.int32), np.array(sorted(lower - held), np.int32)


def _member_words(tasks, opts, splits) -> set:
    """Every word of the split sets of `tasks` in `splits`: a template piece's words
    (:func:`_piece_words`) and each one-word string member (a name, a place, ...)."""
    from mechjax.data import tasks as T

    out = set(_piece_words(tasks, opts, splits))
    for t in tasks:
        if t not in T.SPLIT_SETS:
            continue
        for split in splits:
            for members in T.split_set(t, split, opts.get(t)).values():
                out |= {m for m in members if isinstance(m, str) and m.isalpha()}
    return out


def _piece_words(tasks, opts, splits) -> list[str]:
    """The words of the template pieces (members with "{...}" slots or spaces) of `tasks`
    in `splits` (:func:`template_words` for chosen splits)."""
    import re

    from mechjax.data import tasks as T

    out = set()
    for t in tasks:
        if t not in T.SPLIT_SETS:
            continue
        for split in splits:
            for members in T.split_set(t, split, opts.get(t)).values():
                for m in members:
                    if isinstance(m, str) and ("{" in m or " " in m):
                        out |= set(re.findall(r"[A-Za-z]+", re.sub(r"\{[^}]*\}", " ", m)))
    return sorted(out)


def noise_positions(stream: np.ndarray, word_ids, slots, bos: int, max_doc: int = 160):
    """Per position of `stream`: True where :func:`substitute_words` may replace the token: a
    word token (`word_ids`) of a document of at most `max_doc` tokens (task examples) that is
    not a name slot (`slots`, :func:`name_slots`)."""
    stream = np.asarray(stream)
    doc = np.cumsum(stream == bos) - 1
    lengths = np.bincount(doc[doc >= 0])
    short = np.zeros(len(stream), bool)
    short[doc >= 0] = lengths[doc[doc >= 0]] <= max_doc
    return np.isin(stream, word_ids) & short & (np.asarray(slots) == 0)


def substitute_words(key, tokens, noise, pool, p: float):
    """`tokens` with each position where `noise` (windows of :func:`noise_positions`) holds
    replaced, with probability `p`, by a uniformly random token of `pool`, independently per
    position. Jittable."""
    import jax
    import jax.numpy as jnp

    k_id, k_on = jax.random.split(key)
    sub = jnp.asarray(pool)[jax.random.randint(k_id, tokens.shape, 0, pool.shape[0])]
    on = noise & (jax.random.uniform(k_on, tokens.shape) < p)
    return jnp.where(on, sub, tokens)


def substitute_names(key, tokens, slots, docs, pool, frac: float):
    """`tokens` with, in a `frac` share of their documents, every slot k (:func:`name_slots`,
    windows of it drawn like `tokens`) replaced by one random token of `pool` per (document,
    k): the same name stays the same token inside a document. `docs`: the windows' document
    ids (`experiments/zoo/task.py` `doc_ids`). Jittable."""
    import jax
    import jax.numpy as jnp

    b, length = tokens.shape
    k_id, k_on = jax.random.split(key)
    n_slots = MAX_NAME_SLOTS + 1
    draw = jax.random.randint(k_id, (b, length, n_slots), 0, pool.shape[0])
    on = jax.random.uniform(k_on, (b, length)) < frac
    d = docs % length  # the documents inside one window are fewer than its positions
    rows = jnp.arange(b)[:, None]
    sub = jnp.asarray(pool)[draw[rows, d, jnp.clip(slots, 0, n_slots - 1)]]
    return jnp.where((slots > 0) & on[rows, d], sub, tokens)
