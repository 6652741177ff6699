"""The task interface: encode's errors, encodable filtering, Prompts.take, the metrics."""

import jax.numpy as jnp
import numpy as np
import pytest

from mechjax.data import tasks as T
from mechjax.data.tokenizer import train_bpe


@pytest.fixture(scope="module")
def tok():
    texts = [
        " Mary John gave a drink to Mary",
        " 12 + 7 = 19",
        " size file name data path value key count",
    ] * 80
    return train_bpe(texts, vocab_size=320)


def _prompts(answers, corrupted=None):
    clean = ("John gave a drink to",) * len(answers)
    return T.Prompts(
        task="toy",
        clean=clean,
        corrupted=corrupted or clean,
        answers=tuple((a,) for a in answers),
        contrasts=((" John",),) * len(answers),
        spans=({"end": (18, 20)},) * len(answers),
        meta={"i": tuple(range(len(answers)))},
    )


def test_encode_names_the_bad_answer_and_encodable_filters_it(tok):
    p = _prompts([" Mary", " Zebedee"])
    with pytest.raises(ValueError, match="' Zebedee' of example 1 is not a single token"):
        T.encode(p, tok)
    assert T.encodable(p, tok).tolist() == [True, False]
    b = T.encode(p.take([0]), tok)
    assert b.meta["i"] == (0,) and b.tokens[0, 0] == tok.token_to_id(T.BOS)
    assert tok.decode([int(b.tokens[0, b.positions["end"][0]])]).strip() == "to"


def test_encode_refuses_unequal_lengths(tok):
    p = _prompts([" Mary"], corrupted=("John gave a big drink to",))
    with pytest.raises(ValueError, match="different lengths"):
        T.encode(p, tok)


def test_generate_encodable_keeps_only_valid_examples(tok):
    names = ("size", "file", "name", "data", "path", "value", "key", "count")
    p = T.generate_encodable("docstring", 5, tok, seed=0, names=names)
    assert len(p) == 5 and T.encodable(p, tok).all()
    with pytest.raises(ValueError, match="only 0 of"):
        T.generate_encodable("colored_objects", 5, tok, seed=0)
    with pytest.raises(ValueError, match="names must hold >= 8"):
        T.generate("docstring", 2, names=("a", "b"))


def test_logit_diff_and_accuracy_read_the_last_prompt_token(tok):
    b = T.encode(_prompts([" Mary", " Mary"]), tok)
    v = tok.get_vocab_size()
    logits = np.zeros((2, b.tokens.shape[1], v), np.float32)
    mary, john = tok.token_to_id("ĠMary"), tok.token_to_id("ĠJohn")
    logits[0, b.last[0], mary] = 3.0  # example 0 prefers the answer
    logits[1, b.last[1], john] = 2.0  # example 1 the contrast
    logits[1, 0, mary] = 9.0  # a non-final position must not count
    np.testing.assert_allclose(T.logit_diff(jnp.asarray(logits), b), [3.0, -2.0])
    np.testing.assert_allclose(T.accuracy(jnp.asarray(logits), b), [1.0, 0.0])


def test_prob_diff_sums_softmax_over_answers_minus_contrasts(tok):
    b = T.encode(_prompts([" Mary", " Mary"]), tok)
    v = tok.get_vocab_size()
    logits = np.zeros((2, b.tokens.shape[1], v), np.float32)
    mary, john = tok.token_to_id("ĠMary"), tok.token_to_id("ĠJohn")
    logits[0, b.last[0], mary] = 50.0  # all the mass on the answer
    logits[1, b.last[1], john] = np.log(v - 1.0)  # half the mass on the contrast
    logits[1, 0, mary] = 90.0  # a non-final position must not count
    pd = np.asarray(T.prob_diff(jnp.asarray(logits), b))
    np.testing.assert_allclose(pd, [1.0, 1 / (2 * v - 2) - 0.5], atol=1e-5)  # p(Mary) - p(John)
