"""The configs shared by `configs/zoo/*.py` and the curriculum phases their tasks understand.

`zoo_config` is the zoo models' config (each file sets the model and data sizes),
`probe_config` the probes' (small experiments in `experiments/zoo/`, trained by the same
loop). A curriculum is one list, `config.task.phases`: each phase covers the steps
`start .. end - 1` and says what differs there from the base run, as data (a mixture, a
window kind, a sequence form) and as interventions; every step outside all phases uses the
base data and no intervention. :func:`check_phases` validates the list on the host,
:func:`phase_interventions` turns it into the `Task.interventions(cond, step)` of the loop
(each gated with `.when((step >= start) & (step < end))`), and :func:`in_phase` gives the
step masks a task's `batch` selects data with.
"""

from __future__ import annotations

import difflib

import ml_collections

from mechjax.train import ConfigError, base_config, parse_arg

# keys every phase takes; a task adds its data keys (ZOO_PHASE_KEYS, a probe's own)
PHASE_KEYS = {
    "start": "first step of the phase (int >= 0)",
    "end": "first step after it (int, start < end <= total_steps)",
    "interventions": "what is switched off during the phase: site names or wildcards, each "
    "zero-ablated ('blocks.2.hook_attn_out', 'blocks.*.hook_mlp_out'), or dicts of "
    "mj.ablate arguments (site, heads, positions, neurons, method)",
}
# the zoo models' data keys (experiments/zoo/task.py)
ZOO_PHASE_KEYS = {
    "task_weights": "{task: w}: these weights replace the tasks' task_weights (mixture models)",
    "task_options": "{task: generator options}: these update the tasks' task_options",
    "windows": "'full' (the base windows, default) or 'packed' (each row packs independent "
    "packed_len-token windows, each repeating its first m ~ U[4, packed_len // 2] tokens, "
    "behind mj.document_mask)",
    "packed_len": "tokens per packed window (windows='packed'; >= 8, <= n_ctx)",
    "packed_source": "'code' (slices of the training stream, default), 'random' (uniformly "
    "random tokens: a synthetic copying warm-up) or 'names' (uniformly random tokens from the "
    "one-token names of every split of the run's tasks: zoo.data.copy_pool_ids)",
    "packed_vocab": "random tokens from [1, packed_vocab) (packed_source='random'; 0 = the "
    "whole vocabulary)",
    "packed_rows": "the share of the batch's rows that are packed (windows='packed'; "
    "0 < packed_rows <= 1, default 1): the other rows keep the phase's full windows, so a "
    "copying task can stay in the mix while the model learns the rest",
    "name_slot_frac": "the share of task documents whose names are random word tokens in this "
    "phase (0 <= name_slot_frac <= 1; needs task.name_slots; default task.name_slot_frac)",
}
_ABLATE_ARGS = ("site", "heads", "positions", "neurons", "method")


# the runner-config keys a variant may set (beside `steps`, which sets total_steps)
RUNNER_KEYS = (
    "lr", "batch_size", "schedule", "warmup_steps", "weight_decay", "grad_clip", "optimizer",
    "seed", "eval_every", "checkpoint_every", "checkpoint_steps",
)  # fmt: skip


def _runner_config(name: str, steps: int, lr: float, batch_size: int):
    """The runner keys every zoo and probe config shares: AdamW with weight decay 0.01,
    warmup 100 + cosine, global-norm clip 1.0; the `zoo` experiment's task."""
    c = base_config()
    c.experiment = "zoo"
    c.total_steps = steps
    c.batch_size = batch_size
    c.optimizer = "adamw"
    c.weight_decay = 0.01
    c.lr = lr
    c.schedule = "warmup_cosine"
    c.warmup_steps = 100
    c.grad_clip = 1.0
    c.eval_every = 250
    c.steps_per_call = 25
    c.checkpoint_every = 250
    c.keep_checkpoints = 2
    c.task.name = name
    c.task.phases = ()  # the curriculum: see the module docstring and ZOO_PHASE_KEYS
    return c


def zoo_config(
    name: str,
    arg,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    variants: dict | None = None,
    **task,
):
    """A zoo config: `task` sets the model (`n_layers`, `d_model`, `n_heads`, `d_mlp`, `n_ctx`),
    data (`vocab_size`, `task_share`, `n_per_task`, `task_weights`, `task_options`) and
    curriculum (`phases`, a list of dicts with the keys of PHASE_KEYS and ZOO_PHASE_KEYS).
    Variants: `runlocal` (4 steps on a 40-file corpus, for CI; the phases shrink to one step
    per boundary, see :func:`runlocal_phases`), `steps=N`, and each name in `variants`
    ({flag: task overrides}, for the experiments a model card reports). A variant's `steps`
    and RUNNER_KEYS (`lr`, `batch_size`, `schedule`, ...) set the runner config, not the task;
    `--config.lr=...` on the command line still overrides both."""
    variants = variants or {}
    a = parse_arg(arg, runlocal=False, steps=0, **{k: False for k in variants})
    for k, overrides in variants.items():
        if a[k]:
            task = {**task, **overrides}
    steps = task.pop("steps", steps)  # a variant may train longer
    c = _runner_config(name, steps, lr, batch_size)
    # a variant's optimiser / runner keys (lr, batch_size, schedule, ...) set the runner config,
    # which is what the training loop reads; the task config holds model, data and curriculum
    for k in [k for k in task if k in RUNNER_KEYS]:
        c[k] = task.pop(k)
    t = c.task
    t.positional_embedding_type = "rotary"
    t.d_mlp = 0
    t.task_share = 0.0
    t.n_per_task = 0
    t.max_files = 0
    t.repeat_frac = 0.0  # fraction of training windows that repeat their first m tokens
    t.repeat_min = 16
    # the tasks mixed in when task_share > 0 (a subset of zoo.data.MIXTURE_TASKS; empty = all),
    # e.g. ("docstring",) for a code model that also sees docstrings
    t.tasks = ()
    t.task_weights = {}  # {task: w}: w times the examples of that task (zoo.data.build)
    t.task_options = {}  # {task: generator options}, used for training and evaluation
    # True: task texts from the tasks' "train" split (templates, names, items held out by
    # hash; `mechjax.data.tasks.splits`), evals during training on "val", cards on "test".
    # False: the legacy generators the first zoo was trained on (same templates everywhere).
    t.split_data = False
    # True: attention and loss stay inside each document of a window (documents start with
    # <|endoftext|>; `mj.document_mask`), so a task example is learned alone, as it is
    # evaluated, and most attention spans are short. False: one causal span per window.
    t.doc_mask = False
    # t.phases (from _runner_config): e.g. a copying warm-up on packed random windows with two
    # layers off, dict(start=0, end=1000, windows="packed", packed_len=48,
    # packed_source="random", interventions=("blocks.2.hook_attn_out",)), or a mixture phase,
    # dict(start=2500, end=4500, task_weights={"colored_objects": 24},
    # task_options={"colored_objects": {"form": "recap"}}). All mixture phases share one
    # extra stream (zoo.data.build's early_task_*); evaluation always uses `task_options`.
    # True: the unembedding is the embedding's transpose (logits = x @ W_E.T), so a head that
    # moves a token's embedding raises that token's logit for every token alike, names that
    # only word lists showed included
    t.tie_embeddings = False
    # the split-data lexicon documents (zoo.data.lexicon_texts): how many shuffled copies, and
    # "words" (all tasks' words mixed) or "kinds" (one kind per document: "Names: ...")
    t.lexicon_copies = 8
    t.lexicon_form = "words"
    # True: the lexicon also lists every word of every split's templates (zoo.data.
    # template_words), so a held-out template's wording is tokens, not word pieces
    t.lexicon_templates = False
    # tasks whose train-split names are replaced, in a name_slot_frac share of their documents
    # at every step, by random word tokens (zoo.data.substitute_names), e.g. ("ioi",): with a
    # few hundred training names a model learns each name's route instead of the copy
    t.name_slots = ()
    t.name_slot_frac = 0.5
    # what the substitutes are drawn from: "words" (every space-and-word token) or
    # "capitalized" (those starting with a capital, so a substitute still looks like a name)
    t.name_slot_pool = "words"
    # per word token of those documents (not a name), the probability that it becomes a random
    # lowercase word token at a step (zoo.data.substitute_words; held-out template words and
    # names excluded), so the words around the names stop identifying a template; needs
    # name_slots, whose documents it acts on
    t.word_noise = 0.0
    t.eval_windows = 16
    t.eval_per_task = 64
    t.induction_length = 50
    t.update(task)
    if a["runlocal"]:
        c.total_steps, c.warmup_steps, c.eval_every, c.steps_per_call = 4, 1, 2, 2
        c.checkpoint_every = 0
        t.phases = runlocal_phases(t.phases)
        c.total_steps = max(4, *(p["end"] for p in t.phases)) if t.phases else 4
        # code-only models shrink to a 512-token vocabulary; mixture models keep theirs, since
        # every task word must stay one token (2,000 examples per task are enough for that)
        vocab = t.vocab_size if t.task_share > 0 else 512
        t.update(vocab_size=vocab, max_files=40, eval_windows=2, eval_per_task=4)
        t.update(induction_length=16, n_per_task=min(t.n_per_task, 2000))
    if a["steps"]:
        c.total_steps = a["steps"]
    return ml_collections.ConfigDict(c)


def probe_config(probe: str, steps: int, lr: float, batch_size: int, every: int, **task):
    """A probe's config: `experiments/zoo/<probe>_probe.py` builds its task (`task.probe`),
    with the zoo's optimiser and schedule, evals every `every` steps, and `task` (the
    probe's own keys, and `phases`). No periodic checkpoints: the probes are short."""
    c = _runner_config(f"{probe}_probe", steps, lr, batch_size)
    c.task.probe = probe
    c.warmup_steps = min(100, steps // 2)
    c.eval_every = every
    c.steps_per_call = min(every, 100)
    c.checkpoint_every = 0
    c.task.update(task)
    return ml_collections.ConfigDict(c)


def probe_args(arg, defaults: dict, runlocal: dict) -> dict:
    """A probe config's arg string (`"order=forward,gap=0"`, `"runlocal"`) parsed over
    `defaults`; with `runlocal`, over `{**defaults, **runlocal}` (a tiny run for CI), so
    explicit args still win."""
    a = parse_arg(arg, runlocal=False, **defaults)
    if a["runlocal"]:
        a = parse_arg(arg, runlocal=False, **{**defaults, **runlocal})
    return a


# ------------------------------------------------------------------------------------------------
# Phases


def plain(x):
    """Nested mappings (ConfigDicts included) as plain dicts, lists and tuples as tuples."""
    if hasattr(x, "items"):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return tuple(plain(v) for v in x)
    return x


def _hint(key, valid) -> str:
    near = difflib.get_close_matches(key, list(valid), n=2, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(n) for n in near)}?)" if near else ""


def check_phases(
    phases, total_steps: int, data_keys: dict, what: str = "config.task.phases"
) -> tuple[dict, ...]:
    """The phases as plain dicts, in the given order; raises ConfigError on the host for a
    non-list, an unknown key (naming it and the valid keys), a missing or non-int
    start / end, start >= end, a phase past `total_steps`, overlapping phases, a phase that
    changes nothing, and malformed interventions. `data_keys`: the task's own phase keys
    (name -> meaning); their values are the task's to check."""
    if phases is None:
        return ()
    if hasattr(phases, "items") or isinstance(phases, str) or not hasattr(phases, "__iter__"):
        raise ConfigError(
            f"{what} must be a list of dicts (one per phase), got {type(phases).__name__}."
        )
    valid = {**PHASE_KEYS, **data_keys}
    out = []
    for i, p in enumerate(phases):
        where = f"{what}[{i}]"
        if not hasattr(p, "items"):
            raise ConfigError(f"{where} must be a dict, got {p!r}.")
        p = plain(p)
        for k in p:
            if k not in valid:
                listed = "; ".join(f"{n}: {d}" for n, d in valid.items())
                raise ConfigError(
                    f"{where}: unknown key {k!r}{_hint(k, valid)}. Valid keys: {listed}."
                )
        for k in ("start", "end"):
            if k not in p:
                raise ConfigError(f"{where} has no {k!r}; every phase needs start and end.")
            if not isinstance(p[k], int) or isinstance(p[k], bool) or p[k] < 0:
                raise ConfigError(f"{where}: {k}={p[k]!r} must be an int >= 0.")
        if p["start"] >= p["end"]:
            raise ConfigError(
                f"{where}: start={p['start']} >= end={p['end']}; a phase covers the steps "
                "start .. end - 1, so start must be < end."
            )
        if p["end"] > total_steps:
            raise ConfigError(
                f"{where}: end={p['end']} is past total_steps={total_steps}; end the phase by "
                f"then (or train longer)."
            )
        p["interventions"] = _check_interventions(p.get("interventions", ()), where)
        if not p["interventions"] and set(p) <= set(PHASE_KEYS):
            raise ConfigError(
                f"{where} changes nothing; give it interventions or data keys "
                f"({', '.join(data_keys) or 'this task has none'})."
            )
        out.append(p)
    ordered = sorted(out, key=lambda p: p["start"])
    for a, b in zip(ordered, ordered[1:]):
        if b["start"] < a["end"]:
            raise ConfigError(
                f"{what}: phases [{a['start']}, {a['end']}) and [{b['start']}, {b['end']}) "
                "overlap; a step belongs to at most one phase."
            )
    return tuple(out)


def _check_interventions(ivs, where: str) -> tuple:
    if isinstance(ivs, str) or hasattr(ivs, "items"):
        ivs = (ivs,)
    out = []
    for iv in ivs:
        if isinstance(iv, str):
            iv = {"site": iv}
        if not hasattr(iv, "items") or not isinstance(iv.get("site"), str):
            raise ConfigError(
                f"{where}: intervention {iv!r} must be a site name or wildcard, or a dict of "
                f"mj.ablate arguments with a 'site' ({', '.join(_ABLATE_ARGS)})."
            )
        bad = sorted(set(iv) - set(_ABLATE_ARGS))
        if bad:
            raise ConfigError(
                f"{where}: intervention {iv!r} has unknown key(s) {bad}; valid: "
                f"{', '.join(_ABLATE_ARGS)} (the arguments of mj.ablate)."
            )
        out.append(dict(iv))
    return tuple(out)


def check_zoo_phases(t, total_steps: int) -> tuple[dict, ...]:
    """`config.task.phases` of a zoo model, checked (:func:`check_phases`, then the data keys
    of ZOO_PHASE_KEYS against the config `t`) and with the defaults filled in: `windows`
    ("full"), `packed_source` ("code"), `packed_vocab` (0), `packed_rows` (1.0),
    `task_weights`, `task_options` ({})."""
    phases = check_phases(t.get("phases", ()), total_steps, ZOO_PHASE_KEYS)
    out = tuple(_zoo_phase(dict(p), f"config.task.phases[{i}]", t) for i, p in enumerate(phases))
    mixtures = {repr((p["task_weights"], p["task_options"])): i for i, p in enumerate(out)
                if p["task_weights"] or p["task_options"]}  # fmt: skip
    if len(mixtures) > 1:
        raise ConfigError(
            f"config.task.phases {sorted(mixtures.values())} ask for different mixtures; the data "
            "layer builds one extra stream (zoo.data.build's early_task_*), so every phase that "
            "changes task_weights / task_options must change them the same way."
        )
    return out


def _zoo_phase(p: dict, where: str, t) -> dict:
    from mechjax.zoo.data import MIXTURE_TASKS

    def bad(k, msg):
        return ConfigError(f"{where}: {k}={p[k]!r}: {msg}")

    p.setdefault("windows", "full")
    if p["windows"] not in ("full", "packed"):
        raise bad("windows", "valid window kinds are 'full' and 'packed'.")
    if p["windows"] == "full":
        given = [
            k for k in ("packed_len", "packed_source", "packed_vocab", "packed_rows") if k in p
        ]
        if given:
            raise ConfigError(f"{where}: {given} only apply to windows='packed'.")
    else:
        if "packed_len" not in p:
            raise ConfigError(f"{where}: windows='packed' needs packed_len (tokens a window).")
        if not isinstance(p["packed_len"], int) or not 8 <= p["packed_len"] <= t.n_ctx:
            raise bad("packed_len", f"must be an int in [8, n_ctx={t.n_ctx}].")
        p.setdefault("packed_source", "code")
        if p["packed_source"] not in ("code", "random", "names"):
            raise bad("packed_source", "valid sources are 'code', 'random' and 'names'.")
        if p["packed_source"] == "names" and not t.get("task_share", 0.0) > 0:
            raise ConfigError(
                f"{where}: packed_source='names' needs task_share > 0 (tasks with names)."
            )
        p.setdefault("packed_vocab", 0)
        v = p["packed_vocab"]
        if p["packed_source"] != "random" and v:
            raise ConfigError(f"{where}: packed_vocab only applies to packed_source='random'.")
        if not isinstance(v, int) or not (v == 0 or 2 <= v <= t.vocab_size):
            raise bad("packed_vocab", f"must be 0 (all) or an int in [2, {t.vocab_size}].")
        p.setdefault("packed_rows", 1.0)
        r = p["packed_rows"]
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1:
            raise bad("packed_rows", "must be a share of the rows in (0, 1].")
    for k in ("task_weights", "task_options"):
        p[k] = dict(p.get(k) or {})
        unknown = sorted(set(p[k]) - set(MIXTURE_TASKS))
        if unknown:
            raise ConfigError(f"{where}: {k}: unknown task(s) {unknown}; valid: {MIXTURE_TASKS}.")
    if any(not isinstance(w, (int, float)) or w < 0 for w in p["task_weights"].values()):
        raise bad("task_weights", "weights must be numbers >= 0.")
    if any(not hasattr(o, "items") for o in p["task_options"].values()):
        raise bad("task_options", "each task's options must be a dict.")
    if (p["task_weights"] or p["task_options"]) and not t.task_share > 0:
        raise ConfigError(
            f"{where}: task_weights / task_options need task_share > 0 (got {t.task_share}); "
            "a code-only model has no task examples to change."
        )
    if "name_slot_frac" in p:
        f = p["name_slot_frac"]
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f <= 1:
            raise bad("name_slot_frac", "must be a share of the documents in [0, 1].")
        if not tuple(t.get("name_slots", ()) or ()):
            raise ConfigError(
                f"{where}: name_slot_frac needs task.name_slots (the tasks whose names it "
                "replaces), e.g. name_slots=('ioi',)."
            )
        p["name_slot_frac"] = float(f)
    if p["windows"] == "full" and not (
        p["task_weights"] or p["task_options"] or p["interventions"] or "name_slot_frac" in p
    ):
        raise ConfigError(
            f"{where} changes nothing (full windows, the base mixture, no interventions); give "
            "it windows='packed', task_weights / task_options, name_slot_frac or interventions."
        )
    return p


def phase_mixture(phases) -> tuple[dict, dict]:
    """`(task_weights, task_options)` of the phases' mixture (({}, {}) if none)."""
    for p in phases:
        if p["task_weights"] or p["task_options"]:
            return p["task_weights"], p["task_options"]
    return {}, {}


def check_phase_sites(phases, model, what: str = "config.task.phases") -> None:
    """Raises ConfigError naming the phase if an intervention addresses no site of `model`
    (with the closest valid names) or selects heads / positions it does not have."""
    import mechjax as mj
    from mechjax.interventions import validate_all

    if not any(p["interventions"] for p in phases):
        return
    inputs = model.example_inputs()
    shapes, axes = mj.site_shapes(model, inputs), mj.site_axes(model, inputs=inputs)
    for i, p in enumerate(phases):
        try:
            validate_all(_interventions(p), shapes, axes)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{what}[{i}]: {e}") from None


def _interventions(phase) -> list:
    import mechjax as mj

    return [
        mj.ablate(iv["site"], **{k: plain_list(v) for k, v in iv.items() if k != "site"})
        for iv in phase["interventions"]
    ]


def plain_list(v):
    """Tuples (as configs store lists) back to lists, for selections."""
    return list(v) if isinstance(v, tuple) else v


def in_phase(phase, step):
    """Scalar bool: `step` is in `phase` (a leaf, so moving a phase never recompiles)."""
    return (step >= phase["start"]) & (step < phase["end"])


def phase_interventions(phases):
    """`Task.interventions` for `phases`: `(cond, step) -> ` every phase's interventions, each
    active only inside its phase."""

    def interventions(cond, step):
        return tuple(
            iv.when(in_phase(p, step))
            for p in phases
            if p["interventions"]
            for iv in _interventions(p)
        )

    return interventions


def runlocal_phases(phases) -> tuple:
    """The phases squeezed for a `runlocal` run: each distinct boundary (0, every start and
    end) becomes its rank, so every phase covers at least one step, in the same order, with
    the same gaps before and between phases (e.g. [0, 1000) -> [0, 1); [2500, 4500) -> [1, 2))."""
    phases = [plain(p) for p in phases]
    bounds = sorted({0} | {p.get(k, 0) for p in phases for k in ("start", "end")})
    rank = {b: i for i, b in enumerate(bounds)}
    return tuple(dict(p, start=rank[p.get("start", 0)], end=rank[p.get("end", 0)]) for p in phases)


LEGACY_KEYS = ("short_len", "short_steps", "short_source", "short_vocab", "warmup_off_layers",
               "warmup_off_mlps", "early_from", "early_steps", "early_task_weights",
               "early_task_options")  # fmt: skip


def reject_legacy_keys(task_config) -> None:
    """Raises ConfigError if `task_config` (e.g. an old run's config.json) still has the
    pre-phases curriculum keys, which nothing reads any more."""
    found = [k for k in LEGACY_KEYS if k in task_config]
    if found:
        raise ConfigError(
            f"config.task has the old curriculum keys {found}; curricula are now one list, "
            "config.task.phases (mechjax/zoo/config.py: e.g. short_len=48, short_steps=1000, "
            "short_source='random', warmup_off_layers=(2, 3) is phases=[dict(start=0, end=1000, "
            "windows='packed', packed_len=48, packed_source='random', interventions=("
            "'blocks.2.hook_attn_out', 'blocks.3.hook_attn_out'))])."
        )
