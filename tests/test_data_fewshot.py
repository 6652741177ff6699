"""Invariants of the few-shot relabelling task and the repeated-token task."""

import itertools

import jax
import numpy as np
import pytest

from mechjax.data import EVALUATORS, FewShot, repeated_tokens

SMALL = dict(dim=16, n_classes=30, n_exemplars=3, class_split=(10, 10, 10), exemplar_split=(1, 2))


@pytest.fixture(scope="module")
def task():
    return FewShot(**SMALL)


def _pairs(batch):
    toks = np.asarray(batch["inputs"]["tokens"])
    return {tuple(sorted(p)) for p in toks[:, [1, 3]].tolist()}


def test_label_pair_split(task):
    train = {tuple(p) for p in task.label_pairs("train").tolist()}
    held = {tuple(p) for p in task.label_pairs("heldout").tolist()}
    assert len(train) == 8 and len(held) == 2  # 10 pairs of 5 labels, 80/20 as the paper
    assert not train & held
    assert train | held == set(itertools.combinations(range(5), 2))
    assert set(np.unique(task.label_pairs("train"))) == set(range(5))


@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_sequence_invariants(task, evaluator):
    b = jax.jit(lambda k: task.sample(k, 256, evaluator))(jax.random.key(1))
    toks, vecs = np.asarray(b["inputs"]["tokens"]), np.asarray(b["inputs"]["vectors"])
    isv = np.asarray(b["inputs"]["is_vector"])
    assert toks.shape == (256, 5) and vecs.shape == (256, 5, 16) and isv.shape == (256, 5)
    assert (isv == [True, False, True, False, True]).all()
    assert (toks[:, 0::2] == 0).all() and (vecs[:, 1::2] == 0).all()
    target, lp, dp = (np.asarray(b[k]) for k in ("target", "label_pos", "distractor_pos"))
    rows = np.arange(256)
    assert (toks[rows, lp] == target).all()
    assert (toks[rows, lp] != toks[rows, dp]).all()
    assert set(lp.tolist()) == {1, 3} and (lp + dp == 4).all()
    cls = np.asarray(b["classes"])
    # the context exemplar before the correct label is of the query's class, the other is not
    assert (cls[rows, (lp - 1) // 2] == cls[:, 2]).all()
    assert (cls[rows, (dp - 1) // 2] != cls[:, 2]).all()
    pairs = {
        tuple(p)
        for p in task.label_pairs("heldout" if evaluator == "heldout_pairs" else "train").tolist()
    }
    assert _pairs(b) <= pairs
    lo, hi = task.split_range("class", "test" if evaluator == "new_classes" else "train")
    assert cls.min() >= lo and cls.max() < hi
    # features are the (class, exemplar) table: exemplar 0 unless evaluating new exemplars
    ex0 = np.asarray(task.features(cls, np.zeros_like(cls)))
    same = np.isclose(vecs[:, 0::2], ex0, atol=1e-5).all(-1)
    assert same.all() if evaluator != "new_exemplars" else not same.any()


def test_labels_permuted_and_query_first_label(task):
    b = task.sample(jax.random.key(2), 2000)
    toks = np.asarray(b["inputs"]["tokens"])
    target = np.asarray(b["target"])
    # the query gets either label of the pair (order permuted per sequence)
    lo = np.minimum(toks[:, 1], toks[:, 3])
    assert 0.4 < (target == lo).mean() < 0.6
    assert 0.4 < (np.asarray(b["label_pos"]) == 1).mean() < 0.6


def test_heldout_pairs_never_in_training(task):
    f = jax.jit(lambda k, s: task.batch(k, s, 64))
    seen = set()
    for step in range(20):
        seen |= _pairs(f(jax.random.key(0), step))
    held = {tuple(p) for p in task.label_pairs("heldout").tolist()}
    assert not seen & held
    assert seen == {tuple(p) for p in task.label_pairs("train").tolist()}


def test_deterministic_in_key_and_step(task):
    a = task.batch(jax.random.key(3), 7, 8)
    b = task.batch(jax.random.key(3), 7, 8)
    c = task.batch(jax.random.key(3), 8, 8)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert not np.array_equal(a["inputs"]["vectors"], c["inputs"]["vectors"])


def test_table_matches_features(task):
    table = task.table()
    assert table.shape == (20, 3, 16)
    want = task.features(np.array([[25, 25]]), np.array([[0, 2]]))[0]
    np.testing.assert_allclose(table[15, [0, 2]], want, atol=1e-6)


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(class_split=(10, 10, 9)), "class_split"),
        (dict(exemplar_split=(3, 0)), "exemplar_split"),
        (dict(n_labels=2), "n_labels"),
        (dict(n_train_pairs=10), "n_train_pairs"),
        (dict(n_train_pairs=2), "covers"),
    ],
)
def test_bad_config_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        FewShot(**{**SMALL, **kw})


def test_bad_evaluator(task):
    with pytest.raises(ValueError, match="new_classes"):
        task.sample(jax.random.key(0), 2, "test")


@pytest.mark.parametrize("bos", [None, 0])
def test_repeated_tokens(bos):
    t = np.asarray(repeated_tokens.batch(jax.random.key(0), 3, 16, 10, 11, bos))
    o = 0 if bos is None else 1
    assert t.shape == (16, 20 + o) and t.dtype == np.int32
    np.testing.assert_array_equal(t[:, o : o + 10], t[:, o + 10 :])
    assert t.min() >= 0 and t.max() < 11
    if bos is not None:
        assert (t[:, 0] == bos).all() and (t[:, 1:] != bos).all()
    with pytest.raises(ValueError, match="bos"):
        repeated_tokens.sample(jax.random.key(0), 2, 3, 11, bos=11)


def test_repeated_tokens_varying_length():
    t = np.asarray(repeated_tokens.sample(jax.random.key(1), 64, 8, 50, min_length=3))
    assert t.shape == (64, 16)
    lengths = set()
    for row in t:
        # the longest l in [3, 8] whose copy matches (a shorter one can match by chance only
        # if the tokens repeat, which the longest check resolves)
        ok = [ell for ell in range(3, 9) if np.array_equal(row[ell : 2 * ell], row[:ell])]
        assert ok, row
        lengths.add(max(ok))
    assert len(lengths) >= 4  # lengths really vary


def test_repeated_tokens_in_a_longer_context():
    t = np.asarray(repeated_tokens.sample(jax.random.key(2), 32, 8, 50, 0, 3, context=40))
    assert t.shape == (32, 41) and (t[:, 0] == 0).all() and (t[:, 1:] != 0).all()
    for row in t[:, 1:]:
        ok = [ell for ell in range(3, 9) if np.array_equal(row[ell : 2 * ell], row[:ell])]
        assert ok, row
        # after the repeat come fresh tokens, not another copy
        assert not np.array_equal(row[2 * max(ok) : 2 * max(ok) + 8], row[max(ok) : max(ok) + 8])
    with pytest.raises(ValueError, match="context=12 needs min_length and must be >= 2"):
        repeated_tokens.sample(jax.random.key(0), 2, 8, 50, min_length=3, context=12)
    with pytest.raises(ValueError, match="needs min_length"):
        repeated_tokens.sample(jax.random.key(0), 2, 8, 50, context=40)
