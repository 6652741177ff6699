"""`zoo.evaluate.task_table` on held-out splits: test-split prompts, shortcut baselines scored
on the very prompts the model sees, and the `seen` column against the split's training text."""

import jax
import numpy as np
import pytest

import mechjax as mj
from mechjax.data import tasks as T
from mechjax.data.tasks import shortcuts
from mechjax.data.tokenizer import train_bpe
from mechjax.zoo import data as D
from mechjax.zoo import evaluate as E

TASKS = ("ioi", "greater_than", "colored_objects")


@pytest.fixture(scope="module")
def setup():
    words = "".join(" " + w for w in D.lexicon_words())
    texts = D.task_texts(60, 0, tasks=TASKS, split="train") + [words] * 200
    texts += [" ".join(str(i) for i in range(100)), "".join(f"{i:02d}" for i in range(100))] * 50
    tok = train_bpe(texts, vocab_size=2500)
    cfg = mj.TransformerConfig(
        d_model=32, n_layers=1, n_heads=2, d_vocab=tok.get_vocab_size(), n_ctx=128
    )
    model = mj.Transformer(cfg)
    return model, mj.init(model, jax.random.key(0)), tok


def test_task_table_on_test_split_with_baselines(setup):
    model, params, tok = setup
    out = E.task_table(
        model, params, tok, TASKS, n=16, n_per_task=200, split="test", baselines=True
    )
    assert "_skipped" not in out and set(out) == set(TASKS)
    for name, r in out.items():
        # the eval prompts are the test split's, and none is a training prompt
        assert r["seen"] == 0.0
        assert 0.0 <= r["accuracy"] <= 1.0 and np.isfinite(r["logit_diff"])
        ref = shortcuts.baselines(name, "test", n=16, seed=D.task_seed(name, D.EVAL_SEED, "test"))
        best = shortcuts.strongest({k: v for k, v in ref.items() if k != "chance"})
        assert (r["shortcut"], r["shortcut_accuracy"]) == best
        assert r["chance"] == ref["chance"]["accuracy"]
    assert out["ioi"]["chance"] == pytest.approx(0.5)
    md = E.markdown("m", out, None, None)
    assert "strongest shortcut" in md and md.count("\n| ") >= len(TASKS)


def test_seen_counts_verbatim_training_prompts(setup):
    """Legacy data (split=None) with the eval seed = the training seed: every eval prompt is a
    training prompt, and `seen` says so (the check that the test split's 0.0 is not vacuous)."""
    model, params, tok = setup
    out = E.task_table(model, params, tok, ("ioi",), n=8, seed=D.TRAIN_SEED, n_per_task=8)
    assert out["ioi"]["seen"] == 1.0


def test_mixture_args_pick_the_test_split_for_split_data_cards():
    assert E.mixture_args({"data": {"split_data": True}})["split"] == "test"
    assert E.mixture_args({"data": {}})["split"] is None


def test_factor_table_rows_hold_out_one_kind_at_a_time(setup):
    _, _, tok = setup  # (docstring prompts outgrow that model's 128 positions)
    cfg = mj.TransformerConfig(
        d_model=32, n_layers=1, n_heads=2, d_vocab=tok.get_vocab_size(), n_ctx=256
    )
    model = mj.Transformer(cfg)
    params = mj.init(model, jax.random.key(1))
    factors = ((), ("name",), ("header", "opening", "line"))
    rows = E.factor_table(model, params, tok, "docstring", factors, n=12)
    assert [r["held_out"] for r in rows] == list(factors)
    for r in rows:  # every prompt of the lexicon-primed tokenizer encodes
        assert r["n"] == 12 and 0.0 <= r["accuracy"] <= 1.0 and np.isfinite(r["logit_diff"])
    for r in rows:  # the commonest wrong answers add up to at most the wrong ones
        assert sum(c for _, c in r["wrong"]) <= round(r["n"] * (1 - r["accuracy"]))
        assert all(isinstance(t, str) for t, _ in r["wrong"]) and len(r["wrong"]) <= 3
        assert bool(r["wrong"]) == (r["accuracy"] < 1)
    md = E.factor_markdown(rows)
    assert md.count("\n| ") == len(factors) and "| name | 12 |" in md
    # split="val": the held-out kinds come from val (choosing a recipe), not from test
    val = E.factor_table(model, params, tok, "docstring", ((), ("name",)), n=12, split="val")
    assert val[0]["logit_diff"] == rows[0]["logit_diff"]  # () is all-train either way
    assert val[1]["logit_diff"] != rows[1]["logit_diff"]
    assert E.factor_markdown(val, "val").startswith("| val-split kinds")
    with pytest.raises(ValueError, match="split='train'; valid: 'val', 'test'"):
        E.factor_table(model, params, tok, "docstring", ((),), n=4, split="train")
    kinds = E.default_factors("ioi")
    assert (
        kinds[0] == () and ("name",) in kinds and kinds[-1] == tuple(T.SPLIT_SETS["ioi"]("train"))
    )


def test_copying_at_every_distance_separates_a_copier_from_a_random_model():
    from mechjax import zoo

    assert E.copy_distances(128) == (4, 8, 16, 32, 63)
    assert E.copy_distances(512)[-2:] == (128, 255)
    model, params, tok = zoo.load("attn2l_code")  # induction heads (its card)
    rows = E.copying(model, params, tok, n=8)
    assert tuple(rows) == E.copy_distances(model.cfg.n_ctx)
    for d, r in rows.items():
        assert r["gain"] > 4.0 and r["accuracy"] > 0.2, (d, r)  # (card: 6.0-6.9, 0.26-0.37)
    fresh = mj.init(model, jax.random.key(0))
    for d, r in E.copying(model, fresh, tok, distances=(8, 63), n=8).items():
        assert abs(r["gain"]) < 0.5 and r["accuracy"] < 0.05, (d, r)
    md = E.markdown("m", None, None, None, rows)
    assert md.count("\n| ") == len(rows) and "copy gain" in md


def test_top1_in_prompt_tells_a_copy_from_an_answer_outside_the_prompt(setup):
    """A model that always answers one token (W_U = 0, b_U one-hot): "top-1 in prompt" is 1
    when that token is in every prompt (the first token of each: <|endoftext|> or not) and 0
    for a token no prompt holds; "top-1 a contrast" is 1 exactly where it is the subject."""
    model, params, tok = setup
    prompts = T.generate("ioi", n=16, seed=0, split="test")
    batch = T.encode(prompts.take(np.flatnonzero(T.encodable(prompts, tok))[:8]), tok)
    toks = np.asarray(batch.tokens)
    first = int(toks[0, 0])
    assert (toks[:, 0] == first).all()
    unused = next(i for i in range(tok.get_vocab_size()) if not (toks == i).any())

    def answering(token):
        p = jax.tree_util.tree_map(np.asarray, params)
        p["params"]["W_U"] = np.zeros_like(p["params"]["W_U"])
        p["params"]["b_U"] = np.where(np.arange(p["params"]["b_U"].shape[0]) == token, 5.0, 0.0)
        return E._batched_logits_metrics(model, p, batch, in_prompt=True)[-3:-1]

    assert answering(first)[0].all() and not answering(first)[1].any()
    assert not answering(unused)[0].any()
    # the subject of the first prompt: a contrast (and in the prompt) there
    s = int(np.asarray(batch.contrasts)[0, 0])
    in_prompt, contrast = answering(s)
    assert in_prompt[0] and contrast[0]
    assert (contrast == (np.asarray(batch.contrasts)[:, 0] == s)).all()
