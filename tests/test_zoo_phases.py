"""Zoo curricula as one list of phases (`config.task.phases`, mechjax/zoo/config.py).

The shipped models and the stopped gpt4l_mix2:no_doc_mask run must stay reproducible, so every zoo config
written with phases must give the batches and losses of the code before phases: a frozen
copy of that code's batch and loss (`_old_batch`, `_old_loss`, copied from
experiments/zoo/task.py at commit 99a08aa, driven by the old keys each config had, in
OLD_KEYS) is compared, bit for bit, with the phases code at each phase's boundaries. Also:
the host-side errors of malformed phases, and the three probes as configs of the one loop.
"""

import json
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import mechjax as mj
from mechjax.analysis.metrics import next_token_loss
from mechjax.train import ConfigError
from mechjax.train.config import fill_defaults, load_config_file
from mechjax.zoo import config as ZC
from mechjax.zoo import data as D

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # experiments/ lives at the repo root

from experiments.zoo import task as zoo_task  # noqa: E402

# ------------------------------------------------------------------------------------------------
# The code before phases (experiments/zoo/task.py at 99a08aa), frozen: the zoo task's batch
# and loss read these keys of config.task.

OLD_DEFAULTS = dict(short_len=0, short_steps=0, short_source="code", short_vocab=0,
                    warmup_off_layers=(), warmup_off_mlps=False, early_from=0, early_steps=0,
                    early_task_weights={}, early_task_options={})  # fmt: skip
RECAP = dict(early_task_weights={"colored_objects": 24},
             early_task_options={"colored_objects": {"form": "recap"}})  # fmt: skip
WARMUP = dict(short_len=48, short_steps=1000, short_source="random")
# the curriculum keys of every zoo config (and variant) at 99a08aa
OLD_KEYS = {
    "attn2l_code": WARMUP,
    "attn4l_code": dict(WARMUP, warmup_off_layers=(2, 3)),
    "gpt4l_mix": dict(early_from=2500, early_steps=4500, **RECAP),
    "gpt4l_mix:no_curriculum": {},
    "gpt4l_mix:mlp_off_warmup": dict(
        WARMUP, short_vocab=1024, warmup_off_layers=(2, 3), warmup_off_mlps=True
    ),  # fmt: skip
    "gpt4l_mix2:no_doc_mask": dict(early_from=1000, early_steps=2000, **RECAP),
}


def _old_batch(t, stream, early_stream, batch_size, L, vocab):
    t = ml_collections.ConfigDict({**OLD_DEFAULTS, **t})

    def batch(key, step):
        k_long, k_short = jax.random.split(key)
        toks = D.windows(k_long, stream, batch_size, L, REPEAT[0], REPEAT[1])
        if early_stream is not None:  # the same windows' positions, drawn from the early stream
            first = D.windows(k_long, early_stream, batch_size, L, REPEAT[0], REPEAT[1])
            in_phase = (step >= t.early_from) & (step < t.early_steps)
            toks = jnp.where(in_phase, first, toks)
        if not t.short_len:
            return {"tokens": toks}
        rv = (t.short_vocab or vocab) if t.short_source == "random" else 0
        short, seg = D.packed_windows(k_short, stream, batch_size, L, t.short_len, random_vocab=rv)
        on = step < t.short_steps  # both are cheap gathers; the phase picks one
        return {
            "tokens": jnp.where(on, short, toks),
            "segments": jnp.where(on, seg, jnp.zeros_like(seg)),
            "warmup": on,
        }

    return batch


REPEAT = [0.0, 16]  # (repeat_frac, repeat_min) of the config under test, set by _streams


def _old_loss(model, t, n_layers):
    t = ml_collections.ConfigDict({**OLD_DEFAULTS, **t})

    def loss(params, batch, ivs):
        mask = mj.document_mask(batch["segments"]) if "segments" in batch else None
        ivs = tuple(ivs) if isinstance(ivs, (tuple, list)) else ()
        if "warmup" in batch:  # layers switched off during the warm-up (their output zeroed)
            off = [mj.ablate(f"blocks.{i}.hook_attn_out") for i in t.warmup_off_layers]
            if t.warmup_off_mlps:
                off += [mj.ablate(f"blocks.{i}.hook_mlp_out") for i in range(n_layers)]
            ivs += tuple(iv.when(batch["warmup"]) for iv in off)
        logits, _ = mj.run(model, params, batch["tokens"], interventions=ivs, attention_mask=mask)
        toks = batch["tokens"]
        if mask is None:
            return next_token_loss(logits, toks).mean(), {}
        same = batch["segments"][:, 1:] == batch["segments"][:, :-1]
        nll = next_token_loss(logits, toks)
        return (nll * same).sum() / same.sum(), {}

    return loss


# ------------------------------------------------------------------------------------------------


def _config(spec: str):
    name, _, arg = spec.partition(":")
    path = os.path.join(ROOT, "configs/zoo", name + ".py")
    return fill_defaults(load_config_file(path + (f":{arg}" if arg else "")))


def _streams(t, n=60_000):
    """Synthetic base and phase streams (the batch logic does not read their contents)."""
    REPEAT[:] = [t.repeat_frac, t.repeat_min]
    rng = np.random.default_rng(0)
    stream = jnp.asarray(rng.integers(0, t.vocab_size, n), jnp.int32)
    return stream, jnp.asarray(rng.integers(0, t.vocab_size, n), jnp.int32)


def _boundaries(phases, total):
    steps = {0, 1, total - 1}
    for p in phases:
        steps |= {p["start"] - 1, p["start"], p["end"] - 1, p["end"]}
    return sorted(s for s in steps if 0 <= s < total)


@pytest.mark.parametrize("spec", list(OLD_KEYS))
def test_phases_give_the_batches_of_the_old_keys(spec):
    """Full configs (not runlocal): tokens and segments at every phase boundary equal the old
    code's, bit for bit; the phase mixture is the old early_task_* (so the same data build and
    cache key)."""
    cfg = _config(spec)
    t, old = cfg.task, OLD_KEYS[spec]
    phases = ZC.check_zoo_phases(t, cfg.total_steps)
    w, o = ZC.phase_mixture(phases)
    assert (D.plain(w), D.plain(o)) == (old.get("early_task_weights", {}),
                                        old.get("early_task_options", {}))  # fmt: skip
    stream, phase_stream = _streams(t)
    has_mix = bool(w or o)
    args = (cfg.batch_size, t.n_ctx, t.vocab_size)
    new = jax.jit(zoo_task.curriculum_batch(phases, stream, phase_stream, *args,
                                            t.repeat_frac, t.repeat_min))  # fmt: skip
    ref = jax.jit(_old_batch(old, stream, phase_stream if has_mix else None, *args))
    key = jax.random.key(7)
    for step in _boundaries(phases, cfg.total_steps):
        a, b = ref(key, step), new(key, step)
        assert set(b) == set(a) - {"warmup"}, step
        for k in b:
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=f"{k} {step}")


@pytest.mark.parametrize("spec", ["attn4l_code", "gpt4l_mix:mlp_off_warmup"])
def test_ablation_phases_give_the_losses_and_gradients_of_the_old_warmup(spec):
    """The warm-up's layers switched off through `Task.interventions` (gated by the step) give
    the old loss (gated by a batch flag) and its gradients, bit for bit, on either side of the
    phase's end; two rows per batch keep the full-size models quick."""
    cfg = _config(spec)
    t = cfg.task
    phases = ZC.check_zoo_phases(t, cfg.total_steps)
    model = mj.Transformer(zoo_task.model_config(t, t.vocab_size))
    ZC.check_phase_sites(phases, model)
    stream, _ = _streams(t)
    args = (2, t.n_ctx, t.vocab_size)
    new_batch = zoo_task.curriculum_batch(phases, stream, None, *args, t.repeat_frac, t.repeat_min)
    old_batch = _old_batch(OLD_KEYS[spec], stream, None, *args)
    interventions = ZC.phase_interventions(phases)
    old_loss = _old_loss(model, OLD_KEYS[spec], t.n_layers)
    new_loss = zoo_task.lm_loss(model)

    @jax.jit
    def both(params, key, step):
        ob = old_batch(key, step)
        nb = new_batch(key, step)
        o = jax.value_and_grad(old_loss, has_aux=True)(params, ob, ())
        n = jax.value_and_grad(new_loss, has_aux=True)(params, nb, interventions(None, step))
        return o, n

    params = mj.init(model, jax.random.key(0), jnp.zeros((1, t.n_ctx), jnp.int32))
    losses = []
    for step in (999, 1000):
        ((lo, _), go), ((ln, _), gn) = both(params, jax.random.key(5), step)
        assert float(lo) == float(ln), step
        jax.tree.map(np.testing.assert_array_equal, go, gn)
        losses.append(float(ln))
    assert losses[0] != losses[1]  # the phase ends between them


# (gpt4l_mix's runlocal mixture phase, through build on real data, is in tests/test_zoo.py:
# test_early_phase_swaps_colored_objects_for_its_recap_form)
@pytest.mark.parametrize(
    "spec, old", [("attn4l_code:runlocal", dict(OLD_KEYS["attn4l_code"], short_steps=1))]
)
def test_built_task_matches_the_old_code_on_real_data(spec, old, tmp_path, monkeypatch):
    """Through `build` (real runlocal data; the runlocal phases are one step per boundary):
    the task's batches, and its loss under its own interventions, equal the old code's with
    the same schedule, and the data build is the old one (same cache entry)."""
    monkeypatch.setenv("MECHJAX_CACHE", str(tmp_path))
    D._build.cache_clear()  # an earlier test in this process may hold the build in memory
    cfg = _config(spec)
    task = zoo_task.build(cfg)
    t = cfg.task
    kw = D.build_kwargs(ml_collections.ConfigDict({**t.to_dict(), **old}))
    data = D.build(**{k: v for k, v in kw.items()})  # the old build: must be the cached one
    assert len(os.listdir(os.path.join(tmp_path, "zoo_data"))) == 2  # one .npz + one .json
    REPEAT[:] = [t.repeat_frac, t.repeat_min]
    vocab = data.tokenizer.get_vocab_size()
    early = None if data.train_early is None else jnp.asarray(data.train_early, jnp.int32)
    stream = jnp.asarray(data.train, jnp.int32)
    ref = _old_batch(old, stream, early, cfg.batch_size, t.n_ctx, vocab)
    ref_loss = _old_loss(task.model, old, t.n_layers)
    params = task.init(jax.random.key(1))
    key = jax.random.key(0)
    for step in range(cfg.total_steps):
        a, b = ref(key, step), task.batch(key, step)
        assert set(b) == set(a) - {"warmup"}
        for k in b:
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
        la, _ = ref_loss(params, a, ())
        lb, _ = task.loss(params, b, task.interventions(None, jnp.int32(step)))
        assert float(la) == float(lb), step


def test_runlocal_phases_keep_one_step_per_boundary():
    assert ZC.runlocal_phases([dict(start=0, end=1000, windows="packed")]) == (
        dict(start=0, end=1, windows="packed"),
    )
    got = ZC.runlocal_phases([dict(start=2500, end=4500), dict(start=4500, end=5000),
                              dict(start=100, end=200)])  # fmt: skip
    assert [(p["start"], p["end"]) for p in got] == [(3, 4), (4, 5), (1, 2)]
    assert _config("attn2l_code:runlocal").task.phases[0]["end"] == 1
    c = _config("gpt4l_mix:runlocal")
    assert (c.task.phases[0]["start"], c.task.phases[0]["end"], c.total_steps) == (1, 2, 4)


def _t(**kw):
    base = dict(n_ctx=128, vocab_size=1024, task_share=0.5, phases=())
    return ml_collections.ConfigDict({**base, **kw})


@pytest.mark.parametrize(
    "phases, total, match",
    [
        pytest.param([dict(start=0, end=10, edn=5)], 100,
                     r"phases\[0\]: unknown key 'edn' \(did you mean 'end'\?\)\. Valid keys: "
                     r"start: .*; end: .*; interventions: .*; task_weights: ", id="unknown-key"),
        pytest.param([dict(start=5, end=5, windows="packed", packed_len=48)], 100,
                     r"start=5 >= end=5", id="start-ge-end"),
        pytest.param([dict(end=5, windows="packed", packed_len=48)], 100, r"has no 'start'",
                     id="no-start"),
        pytest.param([dict(start=0, end=200, windows="packed", packed_len=48)], 100,
                     r"end=200 is past total_steps=100", id="beyond-total"),
        pytest.param([dict(start=0, end=50, windows="packed", packed_len=48),
                      dict(start=40, end=60, interventions=("blocks.0.hook_attn_out",))], 100,
                     r"phases \[0, 50\) and \[40, 60\) overlap", id="overlap"),
        pytest.param([dict(start=0, end=5)], 100, r"phases\[0\] changes nothing", id="empty"),
        pytest.param([dict(start=0, end=5, windows="short")], 100,
                     r"windows='short': valid window kinds are 'full' and 'packed'",
                     id="bad-windows"),
        pytest.param([dict(start=0, end=5, windows="packed")], 100, r"needs packed_len",
                     id="no-packed-len"),
        pytest.param([dict(start=0, end=5, windows="packed", packed_len=256)], 100,
                     r"packed_len=256: must be an int in \[8, n_ctx=128\]", id="long-packed"),
        pytest.param([dict(start=0, end=5, packed_len=48)], 100,
                     r"\['packed_len'\] only apply to windows='packed'", id="packed-key-on-full"),
        pytest.param([dict(start=0, end=5, windows="packed", packed_len=48, packed_vocab=64)],
                     100, r"packed_vocab only applies to packed_source='random'",
                     id="vocab-on-code"),
        pytest.param([dict(start=0, end=5, windows="packed", packed_len=48,
                           packed_source="words")], 100,
                     r"valid sources are 'code', 'random' and 'names'", id="bad-source"),
        pytest.param([dict(start=0, end=5, task_weights={"ioj": 2})], 100,
                     r"unknown task\(s\) \['ioj'\]", id="unknown-task"),
        pytest.param([dict(start=0, end=5, task_weights={"ioi": 2}),
                      dict(start=5, end=9, task_weights={"ioi": 3})], 100,
                     r"ask for different mixtures", id="two-mixtures"),
        pytest.param([dict(start=0, end=5, interventions=(dict(site="x", head=1),))], 100,
                     r"unknown key\(s\) \['head'\]; valid: site, heads", id="bad-ablate-arg"),
        pytest.param(dict(start=0, end=5), 100, r"must be a list of dicts", id="not-a-list"),
    ],
)  # fmt: skip
def test_malformed_phases_are_clear_config_errors(phases, total, match):
    with pytest.raises(ConfigError, match=match):
        ZC.check_zoo_phases(_t(phases=phases), total)


@pytest.mark.parametrize("rows", [0, 1.5, -0.25, "half", True])
def test_packed_rows_must_be_a_share(rows):
    phase = dict(start=0, end=5, windows="packed", packed_len=48, packed_rows=rows)
    with pytest.raises(ConfigError, match=r"packed_rows=.*must be a share of the rows in \(0, 1\]"):
        ZC.check_zoo_phases(_t(phases=[phase]), 10)


def test_packed_rows_defaults_to_every_row_and_is_packed_only():
    phase = dict(start=0, end=5, windows="packed", packed_len=48)
    assert ZC.check_zoo_phases(_t(phases=[phase]), 10)[0]["packed_rows"] == 1.0
    full = dict(start=0, end=5, packed_rows=0.5, interventions=("blocks.0.hook_attn_out",))
    with pytest.raises(ConfigError, match=r"\['packed_rows'\] only apply to windows='packed'"):
        ZC.check_zoo_phases(_t(phases=[full]), 10)


def test_names_source_needs_task_examples():
    phase = dict(start=0, end=5, windows="packed", packed_len=48, packed_source="names")
    with pytest.raises(ConfigError, match="packed_source='names' needs task_share > 0"):
        ZC.check_zoo_phases(_t(task_share=0.0, phases=[phase]), 10)
    (checked,) = ZC.check_zoo_phases(_t(phases=[phase]), 10)
    assert checked["packed_source"] == "names" and checked["packed_vocab"] == 0


def test_mixture_phase_needs_task_examples_and_sites_must_exist():
    with pytest.raises(ConfigError, match="need task_share > 0"):
        ZC.check_zoo_phases(_t(task_share=0.0, phases=[dict(start=0, end=5, task_options={
            "colored_objects": {"form": "recap"}})]), 10)  # fmt: skip
    model = mj.Transformer(mj.TransformerConfig(d_model=16, n_layers=2, n_heads=2, d_vocab=32,
                                                n_ctx=16, attn_only=True))  # fmt: skip
    bad = ZC.check_phases([dict(start=0, end=5, interventions=("blocks.2.hook_attn_out",))], 10, {})
    with pytest.raises(
        ConfigError,
        match=r"phases\[0\]: .*'blocks.2.hook_attn_out' matches no "
        r"site.*Closest valid sites: blocks.[01].hook_attn_out",
    ):
        ZC.check_phase_sites(bad, model)
    heads = ZC.check_phases([dict(start=0, end=5, interventions=(dict(
        site="blocks.0.attn.hook_z", heads=(5,)),))], 10, {})  # fmt: skip
    with pytest.raises(ConfigError, match=r"head index \[5\] out of range"):
        ZC.check_phase_sites(heads, model)


def test_old_curriculum_keys_are_rejected_with_the_new_spelling(tmp_path):
    cfg = _config("attn2l_code:runlocal")
    with cfg.task.unlocked():
        cfg.task.short_steps = 1500
    with pytest.raises(ConfigError, match=r"old curriculum keys \['short_steps'\].*phases="):
        zoo_task.build(cfg)


def test_phase_interventions_are_gated_by_the_step_and_never_recompile():
    """`Task.interventions` of a phase: its ablations with `active` = step in [start, end),
    a leaf, so one trace serves every step (the loop's train step is traced once)."""
    phases = ZC.check_phases(
        [dict(start=2, end=4, interventions=("blocks.1.hook_attn_out", dict(
            site="blocks.0.attn.hook_z", heads=[1])))], 10, {})  # fmt: skip
    fn = ZC.phase_interventions(phases)
    ivs = fn(None, jnp.int32(3))
    assert [iv.site for iv in ivs] == ["blocks.1.hook_attn_out", "blocks.0.attn.hook_z"]
    assert ivs[1].head_idx == (1,)
    model = mj.Transformer(mj.TransformerConfig(d_model=16, n_layers=2, n_heads=2, d_vocab=32,
                                                n_ctx=8, attn_only=True))  # fmt: skip
    params = mj.init(model, jax.random.key(0))
    toks = jnp.arange(8)[None] % 32
    traces = []

    @jax.jit
    def logits(step):
        traces.append(1)
        return mj.run(model, params, toks, interventions=fn(None, step))[0]

    out = {s: np.asarray(logits(jnp.int32(s))) for s in range(6)}
    assert len(traces) == 1
    plain = np.asarray(mj.run(model, params, toks)[0])
    off = np.asarray(mj.run(model, params, toks, interventions=fn(None, 2))[0])
    assert not np.allclose(plain, off, atol=1e-3)
    for s in range(6):
        np.testing.assert_allclose(out[s], off if 2 <= s < 4 else plain, atol=1e-5, err_msg=s)


# ------------------------------------------------------------------------------------------------
# The probes: ordinary configs of the one loop


def test_induction_probe_runs_as_a_config_of_the_loop(tmp_path):
    from mechjax.cli import main

    work = str(tmp_path / "run")
    cfg = os.path.join(ROOT, "configs/zoo/probe_induction.py")
    assert main(["run", cfg + ":runlocal", "--workdir", work]) == 0
    report = open(os.path.join(work, "report.md")).read()
    assert "| step | loss (ln vocab = 4.14) | best induction (layer) |" in report
    assert "\n| 2 |" in report and "\n| 4 |" in report
    summary = json.load(open(os.path.join(work, "summary.json")))
    assert 0 <= summary["max_induction_score"] <= 1 and summary["step"] == 4
    assert json.load(open(os.path.join(work, "run.json")))["traces"]["train"] == 1
    c = load_config_file(cfg + ":context=48,min_rep=8,max_rep=20,eval_len=20,steps=2400")
    assert (c.task.context, c.task.max_rep, c.total_steps, c.eval_every) == (48, 20, 2400, 200)
    with pytest.raises(ConfigError, match="2 \\* max_rep < context"):
        zoo_task.build(fill_defaults(load_config_file(cfg + ":runlocal,max_rep=16")))
    with pytest.raises(ConfigError, match="valid probes are induction, lookup, colored"):
        with c.task.unlocked():
            c.task.probe = "inductin"
        zoo_task.build(c)


def test_a_variants_learning_rate_and_batch_reach_the_runner_config():
    """The loop reads `config.lr` / `config.batch_size`; a variant's `lr` once went into
    `config.task.lr`, which nothing reads, so every "lr 1e-3" probe trained at the default."""
    kw = dict(steps=10, lr=2e-3, batch_size=32, task_share=0.5, tasks=("ioi",))
    variants = {"slow": dict(lr=1e-3, batch_size=8, schedule="constant", steps=20)}
    c = ZC.zoo_config("probe", "slow", variants=variants, **kw)
    assert (c.lr, c.batch_size, c.schedule, c.total_steps) == (1e-3, 8, "constant", 20)
    for k in ("lr", "batch_size", "schedule", "steps"):
        assert k not in c.task
    d = ZC.zoo_config("probe", None, variants=variants, **kw)
    assert (d.lr, d.batch_size, d.schedule, d.total_steps) == (2e-3, 32, "warmup_cosine", 10)
    # every shipped config's variants: no runner key is left in the task
    for name in ("probe_ioi_names", "gpt4l_mix2"):
        cfg = os.path.join(ROOT, f"configs/zoo/{name}.py")
        for v in ("copy_slots", "narrow") if name == "probe_ioi_names" else ("narrow_copy",):
            c = load_config_file(f"{cfg}:{v}")
            assert "lr" not in c.task, (name, v)
    # the word-noise IOI probe: the slow recipe plus task.word_noise
    c = load_config_file(os.path.join(ROOT, "configs/zoo/probe_ioi_names.py") + ":noise")
    assert (c.lr, c.task.word_noise, c.task.name_slot_pool) == (1e-3, 0.3, "capitalized")
