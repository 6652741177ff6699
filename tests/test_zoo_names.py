"""`task.name_slots`: the names of task documents become random word tokens at every step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.zoo import task as ZT
from mechjax.zoo import data as D


def test_name_slots_number_each_documents_names_in_order():
    s = np.array([0, 5, 7, 9, 5, 3, 0, 9, 9, 4, 7, 0] + list(range(1, 10)) + [5, 7])
    got = D.name_slots(s, [5, 7, 9], bos=0, max_doc=8, max_slots=2)
    # doc 1: 5 -> 1, 7 -> 2, 9 is the third name (max_slots 2: left alone); doc 2: 9 -> 1,
    # 7 -> 2; doc 3 is longer than max_doc (a code file): no slots
    want = [0, 1, 2, 0, 1, 0, 0, 1, 1, 0, 2, 0] + [0] * 11
    np.testing.assert_array_equal(got, want)
    assert not D.name_slots(s, [42], bos=0).any()


def _names_stream(n_docs=300, seed=0):
    """Documents [BOS, 1, A, 2, B, 3, A, 4, B] with names A != B from 10..19 (ids 1-4: the
    template), then one long document without slots."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        a, b = rng.choice(np.arange(10, 20), 2, replace=False)
        docs.append([0, 1, a, 2, b, 3, a, 4, b])
    docs.append([0] + [5] * 400)
    return np.concatenate(docs).astype(np.int32)


@pytest.mark.parametrize("frac", [1.0, 0.5])
def test_substituted_names_are_consistent_inside_each_document(frac):
    stream = _names_stream()
    slots = D.name_slots(stream, np.arange(10, 20), bos=0)
    pool = np.arange(100, 200, dtype=np.int32)
    names = dict(slots=jnp.asarray(slots, jnp.int32), phase_slots=None, pool=pool, frac=frac, bos=0)
    batch = ZT.curriculum_batch((), jnp.asarray(stream), None, 32, 36, 300, 0.0, 4, names=names)
    plain = ZT.curriculum_batch((), jnp.asarray(stream), None, 32, 36, 300, 0.0, 4)
    key = jax.random.key(5)
    toks, ref = np.asarray(batch(key, jnp.int32(0))["tokens"]), np.asarray(plain(key, 0)["tokens"])
    template = np.isin(ref, [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(toks[template], ref[template])  # only names change
    changed = kept = 0
    for row, r in zip(toks, ref):
        starts = np.flatnonzero(r == 0)
        for s in starts:
            doc, orig = row[s : s + 9], r[s : s + 9]
            if len(doc) < 9 or orig[1] != 1:
                continue
            a, b = doc[2], doc[4]
            assert doc[6] == a and doc[8] == b  # the same name, the same token
            if a >= 100:
                assert 100 <= b < 200 and a != orig[2]
                changed += 1
            else:
                assert (a, b) == (orig[2], orig[4])
                kept += 1
    assert changed > 0 and (kept > 0) == (frac < 1.0)
    # a pure function of the step's key (resuming relies on it)
    np.testing.assert_array_equal(np.asarray(batch(key, jnp.int32(0))["tokens"]), toks)


def test_name_slot_ids_keep_held_out_names_out_of_the_pool():
    from mechjax.data import tasks as T

    data = D.build(vocab_size=700, task_share=0.3, n_per_task=300, max_files=2, split_data=True,
                   tasks=("ioi",))  # fmt: skip
    tok = data.tokenizer
    slot_ids, pool = D.name_slot_ids(tok, ("ioi",))
    train = {tok.token_to_id("Ġ" + n) for n in T.SPLIT_SETS["ioi"]("train")["name"]} - {None}
    held = {
        tok.token_to_id("Ġ" + n) for s in ("val", "test") for n in T.SPLIT_SETS["ioi"](s)["name"]
    }
    assert train and train <= set(slot_ids.tolist())
    assert not (held - {None}) & set(pool.tolist())
    assert all(tok.decode([int(i)]).startswith(" ") for i in pool[:50])
    with pytest.raises(ValueError, match="has no 'name' kind"):
        D.name_slot_ids(tok, ("greater_than",))
    # the capitalized pool: name-like substitutes only, a subset of the word pool
    _, caps = D.name_slot_ids(tok, ("ioi",), pool="capitalized")
    assert 0 < len(caps) < len(pool) and set(caps.tolist()) <= set(pool.tolist())
    assert all(tok.decode([int(i)])[1].isupper() for i in caps)
    assert not (held - {None}) & set(caps.tolist())
    with pytest.raises(ValueError, match="pool='names'; valid: words, capitalized"):
        D.name_slot_ids(tok, ("ioi",), pool="names")
    # the copying warm-up's pool: every split's one-token names, the held-out ones included
    copy = set(D.copy_pool_ids(tok, ("ioi", "greater_than")).tolist())
    every = {n for sp in ("train", "val", "test") for n in T.SPLIT_SETS["ioi"](sp)["name"]}
    assert train | (held - {None}) <= copy
    assert all(tok.decode([i]).strip() in every for i in copy)
    with pytest.raises(ValueError, match="has one-token names"):
        D.copy_pool_ids(tok, ("greater_than",))
    # a random-token warm-up whose id range misses some of those names says which, and the
    # range that holds them all
    top = max(copy)
    warm = dict(windows="packed", packed_source="random")
    ok = ZT.uncovered_names([dict(warm, packed_vocab=top + 1)], tok, ("ioi",), None)
    short = ZT.uncovered_names(
        [dict(windows="full"), dict(warm, packed_vocab=top)], tok, ("ioi",), None
    )
    assert ok == [] and len(short) == 1
    assert short[0].startswith("config.task.phases[1]: packed_vocab=") and (
        f"packed_vocab={top + 1} would hold them all" in short[0]
    )
    assert ZT.uncovered_names([dict(warm, packed_vocab=0)], tok, ("ioi",), None) == []


def test_a_phase_sets_its_own_slot_share():
    """A phase's `name_slot_frac` replaces the task's share inside the phase only."""
    from mechjax.zoo import config as ZC

    stream = _names_stream()
    slots = D.name_slots(stream, np.arange(10, 20), bos=0)
    pool = np.arange(100, 200, dtype=np.int32)
    names = dict(slots=jnp.asarray(slots, jnp.int32), phase_slots=None, pool=pool, frac=1.0, bos=0)
    t = ZC.zoo_config("probe", None, steps=10, lr=1e-3, batch_size=32, task_share=0.5,
                      name_slots=("ioi",), phases=[dict(start=0, end=5, name_slot_frac=0.0)]).task  # fmt: skip
    phases = ZC.check_zoo_phases(t, 10)
    batch = ZT.curriculum_batch(phases, jnp.asarray(stream), None, 32, 36, 300, 0.0, 4, names=names)
    plain = ZT.curriculum_batch((), jnp.asarray(stream), None, 32, 36, 300, 0.0, 4)
    for step, subbed in ((0, False), (4, False), (5, True), (9, True)):
        key = jax.random.key(step)
        toks = np.asarray(batch(key, jnp.int32(step))["tokens"])
        ref = np.asarray(plain(key, step)["tokens"])
        assert (toks >= 100).any() == subbed, step
        if not subbed:
            np.testing.assert_array_equal(toks, ref)


@pytest.mark.parametrize(
    "phase, slots, match",
    [
        (dict(name_slot_frac=1.5), ("ioi",), r"name_slot_frac=1.5: must be a share"),
        (dict(name_slot_frac=True), ("ioi",), r"name_slot_frac=True: must be a share"),
        (dict(name_slot_frac=0.5), (), r"name_slot_frac needs task.name_slots"),
    ],
)
def test_phase_slot_share_errors(phase, slots, match):
    from mechjax.train import ConfigError
    from mechjax.zoo import config as ZC

    t = ZC.zoo_config("probe", None, steps=10, lr=1e-3, batch_size=32, task_share=0.5,
                      name_slots=slots, phases=[dict(start=0, end=5, **phase)]).task  # fmt: skip
    with pytest.raises(ConfigError, match=match):
        ZC.check_zoo_phases(t, 10)


def test_word_noise_replaces_template_words_only():
    """`task.word_noise`: template words (not names, not code) of short documents become
    random pool tokens, each with the given probability, independently per position."""
    stream = _names_stream()
    slots = D.name_slots(stream, np.arange(10, 20), bos=0)
    noise = D.noise_positions(stream, np.arange(1, 6), slots, bos=0)
    # template ids 1-4 of the short documents only: never a name, a BOS or the long document
    assert noise[: 9 * 300].sum() == 4 * 300 and not noise[9 * 300 :].any()
    pool = np.arange(100, 200, dtype=np.int32)
    names = dict(slots=jnp.asarray(slots, jnp.int32), phase_slots=None, pool=pool, frac=1.0,
                 bos=0, noise=jnp.asarray(noise), phase_noise=None,
                 noise_pool=np.arange(200, 260, dtype=np.int32), noise_p=0.5)  # fmt: skip
    batch = ZT.curriculum_batch((), jnp.asarray(stream), None, 64, 36, 300, 0.0, 4, names=names)
    plain = ZT.curriculum_batch((), jnp.asarray(stream), None, 64, 36, 300, 0.0, 4)
    key = jax.random.key(3)
    toks, ref = np.asarray(batch(key, jnp.int32(0))["tokens"]), np.asarray(plain(key, 0)["tokens"])
    words = np.isin(ref, [1, 2, 3, 4])
    noised = toks >= 200
    assert (noised <= words).all()  # only template words become noise ...
    assert 0.4 < noised[words].mean() < 0.6  # ... about half of them
    np.testing.assert_array_equal(toks[ref == 5], ref[ref == 5])  # the code document is kept
    assert (toks[ref == 0] == 0).all()
    # the names are still substituted (name pool 100-199), consistently with the plain draw
    assert ((toks >= 100) & (toks < 200) == np.isin(ref, range(10, 20))).all()


def test_noise_pool_holds_no_held_out_word():
    data = D.build(vocab_size=2500, task_share=0.3, n_per_task=300, max_files=2, split_data=True,
                   tasks=("ioi",), lexicon_templates=True)  # fmt: skip
    tok = data.tokenizer
    words, pool = D.noise_word_ids(tok, ("ioi",))
    assert set(pool.tolist()) < set(words.tolist())
    assert all(tok.decode([int(i)])[1].islower() for i in pool)
    train = D._member_words(("ioi",), {}, ("train",))
    held = D._member_words(("ioi",), {}, ("val", "test")) - train
    assert {"Eventually", "castle"} & held or len(held) > 20  # pieces' words and entities
    ids = {tok.token_to_id("Ġ" + w) for w in held} - {None}
    assert len(ids) > 20 and not ids & set(pool.tolist())
    # every one-token lowercase training word stays a possible substitute
    kept = {tok.token_to_id("Ġ" + w) for w in train if w[0].islower()} - {None}
    assert len(kept) > 20 and kept <= set(pool.tolist())


def test_word_noise_errors():
    from mechjax.train import ConfigError
    from mechjax.zoo import config as ZC

    def task(**kw):
        return ZC.zoo_config("probe", None, steps=10, lr=1e-3, batch_size=32, task_share=0.5,
                             **kw).task  # fmt: skip

    with pytest.raises(ConfigError, match=r"word_noise=0.3 needs task.name_slots"):
        ZT._name_substitution(task(word_noise=0.3), None, None, 0)
    with pytest.raises(ConfigError, match=r"word_noise=1.5: the probability .* \[0, 1\)"):
        ZT._name_substitution(task(word_noise=1.5, name_slots=("ioi",)), None, None, 0)
