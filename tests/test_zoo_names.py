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
    # the copying warm-up's pool: every split's one-token names, the held-out ones included
    copy = set(D.copy_pool_ids(tok, ("ioi", "greater_than")).tolist())
    every = {n for sp in ("train", "val", "test") for n in T.SPLIT_SETS["ioi"](sp)["name"]}
    assert train | (held - {None}) <= copy
    assert all(tok.decode([i]).strip() in every for i in copy)
    with pytest.raises(ValueError, match="has one-token names"):
        D.copy_pool_ids(tok, ("greater_than",))
