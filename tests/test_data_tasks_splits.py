"""Task splits (mechjax.data.tasks.splits): disjoint train / val / test templates, entities and
items; no test prompt in training text; determinism; the legacy generators unchanged;
shortcut baselines; the zoo's split-data path."""

import hashlib
import os
import re

import numpy as np
import pytest

from mechjax.data import tasks as T
from mechjax.data.tasks import splits as S
from mechjax.zoo import data as D

TASKS = tuple(D.MIXTURE_TASKS)
N_TRAIN = {"needle": 400}  # prompts of train text searched for each test prompt (else 4000)
MIN_TEMPLATES = {"repeated": 30}  # val / test templates per task (else 100)


def _flat(values):
    for v in values:
        if isinstance(v, tuple):
            yield from v
        else:
            yield v


@pytest.fixture(scope="module")
def drawn():
    out = {}
    for name in TASKS:
        out[name] = {
            "train": T.generate(name, N_TRAIN.get(name, 4000), seed=0, split="train"),
            "val": T.generate(name, 200, seed=0, split="val"),
            "test": T.generate(name, 300, seed=0, split="test"),
        }
    return out


# digests of the legacy generators' output (split=None), computed from the sources the shipped
# zoo was trained on: they must not change until the zoo is retrained
LEGACY = {
    ("ioi", ()): "593d2ad97d4388c4",
    ("ioi", (("corruption", "flip"), ("order", "BABA"))): "687db9684ff384c1",
    ("greater_than", ()): "ef973cb507ba2ac6",
    ("greater_than", (("min_yy", 1),)): "e35f890ecae83e97",
    ("docstring", ()): "2683e21c7790553d",
    ("colored_objects", ()): "0306ecaaa1ac16ef",
    ("colored_objects", (("form", "recap"), ("n_objects", 4))): "e341eb8143d5f7c5",
    ("successor", ()): "6a1f82be6232b405",
    ("factual", ()): "43a970385f424cbd",
    ("factual", (("templates", "heldout"),)): "5e604d3125870cbd",
    ("arithmetic", (("max_value", 39),)): "ca9d1c9511bf834b",
    ("multiple_choice", ()): "0f184c8e17ef3ac4",
    ("multiple_choice", (("labels", "random_letters"),)): "47209a356bc75bce",
    ("needle", (("n_filler", 6),)): "42bea8c31d34c9d3",
    ("repeated", ()): "9fac594fe979f5d8",
}


@pytest.mark.parametrize("name, options", sorted(LEGACY))
def test_legacy_generators_are_unchanged(name, options):
    p = T.generate(name, 300, seed=777, **dict(options))
    key = repr((p.clean, p.corrupted, p.answers, p.contrasts, p.spans, sorted(p.meta.items())))
    assert hashlib.sha256(key.encode()).hexdigest()[:16] == LEGACY[(name, options)]


def test_partition_is_stable_disjoint_and_covering():
    items = [f"item{i}" for i in range(500)]
    a = S.partition(items, "salt")
    assert a == S.partition(list(items), "salt")
    assert sorted(sum(a.values(), ())) == sorted(items)
    assert all(abs(len(a[s]) / 500 - f) < 0.08 for s, f in zip(S.SPLITS, S.FRACTIONS))
    # by threshold: an item keeps its split when the list grows
    b = S.partition(items + [f"new{i}" for i in range(50)], "salt")
    assert all(set(a[s]) <= set(b[s]) for s in S.SPLITS)
    assert S.partition(items, "other") != a
    small = S.partition(("x", "y", "z", "w"), "salt", min_each=1, rank=True)
    assert all(len(v) >= 1 for v in small.values())
    assert S.stable_int("a", 1) == S.stable_int("a", 1) != S.stable_int("a", 2)
    with pytest.raises(ValueError, match="split='dev'"):
        T.generate("ioi", 2, split="dev")


@pytest.mark.parametrize("name", TASKS)
def test_split_sets_are_disjoint_and_large(name):
    # (factual's knowledge base and subjects are shared by every split on purpose: a fact
    # must be stated in training to be recalled; its templates are split)
    sets = {s: T.SPLIT_SETS[name](s) for s in S.SPLITS}
    for kind in sets["train"]:
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            common = set(sets[a][kind]) & set(sets[b][kind])
            assert not common, (name, kind, a, b, sorted(common)[:5])
        assert all(sets[s][kind] for s in S.SPLITS), (name, kind)
    counts = T.template_counts(name)
    lo = MIN_TEMPLATES.get(name, 100)
    assert counts["val"] >= lo and counts["test"] >= lo, counts
    assert counts["train"] >= 5 * counts["test"], counts


@pytest.mark.parametrize("name", TASKS)
def test_prompts_draw_only_from_their_split(drawn, name):
    sets = {s: T.SPLIT_SETS[name](s) for s in S.SPLITS}
    by_split = drawn[name]
    templates = {s: set(p.meta["template"]) for s, p in by_split.items()}
    assert not templates["train"] & templates["test"] and not templates["train"] & templates["val"]
    assert not templates["val"] & templates["test"]
    assert len(templates["test"]) >= min(50, MIN_TEMPLATES.get(name, 100) // 2), name
    for split, p in by_split.items():
        for kind in set(p.meta) & set(sets[split]):
            used = set(_flat(p.meta[kind]))
            assert used <= set(sets[split][kind]), (name, split, kind, sorted(used)[:5])


@pytest.mark.parametrize("name", TASKS)
def test_no_test_prompt_appears_in_training_text(drawn, name):
    train = drawn[name]["train"]
    big = "\x00".join(train.training_texts() + list(train.clean))
    for split in ("test", "val"):
        leaked = [c for c in drawn[name][split].clean if c in big]
        assert not leaked, (name, split, leaked[:2])
    # the zoo's training texts (split data) too
    texts = D.task_texts(300, D.TRAIN_SEED, tasks=(name,), split=D.TRAIN_SPLIT)
    big = "\x00".join(texts)
    assert not [c for c in drawn[name]["test"].clean if c in big]


@pytest.mark.parametrize("name", TASKS)
def test_split_generators_are_deterministic_and_well_formed(name):
    a, b = (T.generate(name, 40, seed=3, split="test") for _ in range(2))
    assert a == b
    assert T.generate(name, 40, seed=4, split="test").clean != a.clean
    assert T.generate(name, 40, seed=3, split="train").clean != a.clean
    assert a.task == name and len(a) == 40
    for clean, bad, ans, con, sp in zip(a.clean, a.corrupted, a.answers, a.contrasts, a.spans):
        assert clean != bad and not set(ans) & set(con)
        assert all(x.startswith(" ") or x.isdigit() for x in ans + con), (ans, con)
        for role, (s, e) in sp.items():
            assert 0 <= s < e <= len(clean), (role, s, e)


@pytest.fixture(scope="module")
def tokenizer():
    """A BPE trained as a split-data zoo tokenizer would be: train-split texts + lexicon."""
    from mechjax.data.tokenizer import train_bpe

    texts = D.task_texts(150, 0, split="train") + D.lexicon_texts()
    texts += [" ".join(str(i) for i in range(100)), "".join(f"{i:02d}" for i in range(100))] * 20
    return train_bpe(texts, vocab_size=3000)


@pytest.mark.parametrize("name", TASKS)
def test_test_prompts_encode_with_a_train_tokenizer(tokenizer, name):
    p = T.generate(name, 64, seed=1, split="test")
    ok = T.encodable(p, tokenizer)
    assert ok.mean() >= 0.9, (name, ok.mean())
    b = T.encode(p.take(np.flatnonzero(ok)), tokenizer)
    assert (b.answers[:, 0] >= 0).all() and (b.last > 0).all()
    assert (b.tokens != b.corrupted).any(1).all()


def test_needle_is_long_and_multi_token_with_the_zoo_tokenizer():
    from tokenizers import Tokenizer

    from mechjax import zoo

    tok = Tokenizer.from_file(f"{zoo.WEIGHTS_DIR}/gpt4l_mix/tokenizer.json")
    p = T.generate("needle", 64, seed=0, split="test")
    lengths = [len(e.ids) for e in tok.encode_batch(list(p.clean))]
    assert min(lengths) >= 256
    for clean, sp, vals, cont in zip(p.clean, p.spans, p.meta["values"], p.meta["continuation"]):
        assert [clean[slice(*sp[f"value{i}"])] for i in range(3)] == [str(v) for v in vals]
        assert clean[slice(*sp["key"])] == clean[slice(*sp["question_key"])]
        assert cont == "".join(f" {v}" for v in vals[1:]) + "."
    # distractor needles: other keys of the same relation, so "the only number" fails
    assert all(len(d) == 2 for d in p.meta["distractor_keys"])
    assert all(len(re.findall(r"\b\d\d\b", c)) == 9 for c in p.clean)


def test_multiple_choice_bank_and_label_controls(drawn):
    tr, te = drawn["multiple_choice"]["train"], drawn["multiple_choice"]["test"]
    assert not set(tr.meta["question"]) & set(te.meta["question"])
    assert len(T.SPLIT_SETS["multiple_choice"]("test")["question"]) >= 150
    kinds = {tuple(x.isdigit() for x in labs) for labs in tr.meta["labels"]}
    assert (True,) * 4 in kinds and (False,) * 4 in kinds  # numbered and lettered labels
    assert {labs for labs in tr.meta["labels"]} - {("A", "B", "C", "D"), ("1", "2", "3", "4")}
    for labs, ans in zip(te.meta["labels"], te.answers):
        assert ans[0].strip() in labs


def test_ioi_split_text_is_an_ioi_sentence(drawn):
    p = drawn["ioi"]["test"]
    for clean, sp, io, s in zip(p.clean, p.spans, p.meta["io"], p.meta["s"]):
        assert clean[slice(*sp["IO"])].strip() == io and clean[slice(*sp["S2"])].strip() == s
        assert clean.count(io) == 1 and clean.count(s) == 2


@pytest.fixture(scope="module")
def base_tables():
    return {t: T.baselines(t, "test", n=160, n_train=800 if t != "needle" else 200) for t in TASKS}


def test_baselines_run_and_are_sane(base_tables):
    for task, tab in base_tables.items():
        assert {"chance", "unigram", "bigram"} <= set(tab), task
        for b, m in tab.items():
            assert 0.0 <= m["accuracy"] <= 1.0, (task, b)
            if "prob_diff" in m:
                assert -1.0 - 1e-6 <= m["prob_diff"] <= 1.0 + 1e-6, (task, b)
    gt = base_tables["greater_than"]
    # every answer set holds "99": the always-largest shortcut is top-1 perfect, and its
    # probability difference is 1 on clean and corrupted prompts alike (it ignores the year)
    assert gt["always_largest"]["accuracy"] == 1.0
    assert gt["always_largest"]["prob_diff"] == pytest.approx(1.0)
    assert gt["always_largest"]["prob_diff_corrupted"] == pytest.approx(1.0)
    assert 0.3 < gt["end_year_prior"]["prob_diff"] < 0.9
    ioi = base_tables["ioi"]
    assert ioi["chance"]["accuracy"] == 0.5 and ioi["last_name"]["accuracy"] == 0.0
    assert 0.35 < ioi["first_name"]["accuracy"] < 0.65
    assert ioi["most_frequent_train_io"]["accuracy"] == 0.0  # test names are never train IOs
    mc = base_tables["multiple_choice"]
    assert mc["chance"]["accuracy"] == 0.25 and mc["option_prior"]["accuracy"] < 0.4
    assert T.strongest(mc)[0] == "mentioned_in_context"
    assert base_tables["docstring"]["random_undocumented"]["accuracy"] > 0.4
    assert base_tables["needle"]["first_number"]["accuracy"] < 0.6  # 3 needles, 1 asked
    # held-out structures defeat n-grams (train never has the test separators / endings)
    assert base_tables["successor"]["bigram"]["accuracy"] < 0.2


def test_legacy_baselines_show_the_shortcuts_of_the_shipped_data():
    mc = T.baselines("multiple_choice", None, n=256, n_train=1000, ngrams=())
    assert mc["option_prior"]["accuracy"] > 0.5  # question-blind prior beats 0.50
    succ = T.baselines("successor", None, n=256, n_train=1000, ngrams=(2,))
    assert succ["bigram"]["accuracy"] > 0.95  # " 3 4 5" -> " 6" is a bigram
    assert T.strongest(succ) == ("bigram", succ["bigram"]["accuracy"])


def test_zoo_split_data_seeds_by_name_and_keeps_legacy_by_default():
    a = D.task_prompts("factual", 20, D.TRAIN_SEED, split="train")
    assert D.task_seed("factual", D.TRAIN_SEED, "train") == S.task_seed("factual", D.TRAIN_SEED)
    ps = D.training_prompts(20, tasks=("needle", "factual"), split="train")
    assert ps["factual"].clean == a.clean  # independent of the task list's order
    legacy = D.training_prompts(20, tasks=("factual",))["factual"]
    assert legacy == T.generate("factual", 20, seed=D.TRAIN_SEED + 1000 * TASKS.index("factual"))
    texts = D.task_texts(5, 0, tasks=("needle",), split="train")
    assert all(re.search(r"\d\d \d\d\.", t) for t in texts)  # value continuations trained
    lex = " ".join(D.lexicon_texts(copies=1))
    assert all(f" {w}" in lex for w in T.SPLIT_SETS["ioi"]("test")["name"])


def test_zoo_build_kwargs_reads_split_data():
    from ml_collections import ConfigDict

    cfg = ConfigDict(dict(vocab_size=512, task_share=0.5, n_per_task=10, task_weights={"ioi": 2}))
    assert D.build_kwargs(cfg)["split_data"] is False
    cfg.split_data = True
    kw = D.build_kwargs(cfg)
    assert kw["split_data"] is True and kw["task_weights"] == {"ioi": 2}
    assert set(kw) <= set(D.build.__code__.co_varnames)


def test_zoo_build_with_split_data(tmp_path, monkeypatch):
    """A tiny split-data build: train-split task texts and lexicon documents in the stream,
    no test prompt in it, and the flag recorded in `info` (and in the cache key)."""
    monkeypatch.setenv("MECHJAX_CACHE", str(tmp_path))
    d = D.build(1024, task_share=0.5, n_per_task=40, max_files=3, split_data=True)
    legacy = D.build(1024, task_share=0.5, n_per_task=40, max_files=3)
    assert d.info["split_data"] is True and "split_data" not in legacy.info
    texts = [d.tokenizer.decode(x.tolist()) for x in D._split_docs(d.train, 0)]
    assert any(t.startswith(("<|endoftext|>Words:", "Words:")) for t in texts)
    big = "\x00".join(texts)
    for name in TASKS:
        assert not [c for c in T.generate(name, 50, seed=0, split="test").clean if c in big]
    assert len(os.listdir(os.path.join(tmp_path, "zoo_data"))) == 4  # two cached builds


def test_docstring_wide_name_bank_keeps_the_v2_splits():
    # a name keeps its split when the bank grows (hash threshold), so a model trained on the
    # wide bank's train names saw none of the v2 test names
    from mechjax.data.tasks import docstring as DS

    v2 = {s: set(DS.split_sets(s)["name"]) for s in S.SPLITS}
    wide = {s: set(DS.split_sets(s, name_bank="wide")["name"]) for s in S.SPLITS}
    for s in S.SPLITS:
        assert v2[s] <= wide[s], s
        assert len(wide[s]) >= 3 * len(v2[s]), (s, len(wide[s]), len(v2[s]))
    assert not wide["train"] & (wide["val"] | wide["test"])
    train = T.generate("docstring", 2000, seed=0, split="train", name_bank="wide")
    test = T.generate("docstring", 300, seed=0, split="test", name_bank="wide")
    used = {n for ps in train.meta["name"] for n in ps}
    assert used <= wide["train"] and len(used) > 150  # the bank is used, not just V2_NAMES
    assert not {n for ps in test.meta["name"] for n in ps} & used
    assert not set(test.clean) & set(train.clean)
    # the default bank is unchanged, and the lexicon follows the option
    assert (
        T.generate("docstring", 50, seed=3, split="val").clean
        == T.generate("docstring", 50, seed=3, split="val", name_bank="v2").clean
    )
    assert wide["test"] <= set(T.lexicon("docstring", {"name_bank": "wide"}))
    assert not wide["test"] <= set(T.lexicon("docstring"))
    with pytest.raises(ValueError, match="name_bank"):
        T.generate("docstring", 2, split="train", name_bank="huge")
    with pytest.raises(ValueError, match="not both"):
        T.generate("docstring", 2, split="train", name_bank="wide", names=("a", "b"))


def test_factor_prompts_hold_out_only_the_named_kinds():
    from mechjax.data.tasks import docstring as DS

    tr, te = DS.split_sets("train"), DS.split_sets("test")
    p = S.factor_prompts("docstring", 200, ("name",), seed=1)
    assert {n for ps in p.meta["name"] for n in ps} <= set(te["name"])
    assert set(p.meta["func"]) <= set(tr["func"])
    assert {t.split("|")[0] for t in p.meta["template"]} <= set(tr["header"])
    q = S.factor_prompts("docstring", 200, ("header", "opening", "line"), seed=1)
    assert {t.split("|")[0] for t in q.meta["template"]} <= set(te["header"])
    assert {n for ps in q.meta["name"] for n in ps} <= set(tr["name"])
    # () is plain train
    assert (
        S.factor_prompts("docstring", 20, (), seed=1).clean
        == T.generate("docstring", 20, seed=1, split="train").clean
    )
    ioi = S.factor_prompts("ioi", 100, ("name",), seed=0)
    test_names = set(T.SPLIT_SETS["ioi"]("test")["name"])
    assert set(ioi.meta["io"]) | set(ioi.meta["s"]) <= test_names
    with pytest.raises(ValueError, match="unknown kinds"):
        S.factor_prompts("docstring", 2, ("names",))
    with pytest.raises(ValueError, match="no list named"):
        with S.draw_from("test", ["ioi/nam"]):
            T.generate("ioi", 2, split="train")


def test_ioi_wide_name_bank_keeps_the_v2_splits():
    from mechjax.data.tasks import ioi

    v2 = {s: set(ioi.split_sets(s)["name"]) for s in S.SPLITS}
    wide = {s: set(ioi.split_sets(s, "wide")["name"]) for s in S.SPLITS}
    for s in S.SPLITS:
        assert v2[s] <= wide[s] and len(wide[s]) >= 3 * len(v2[s]), s
    train = T.generate("ioi", 3000, seed=0, split="train", name_bank="wide")
    used = set(train.meta["io"]) | set(train.meta["s"])
    assert used <= wide["train"] and len(used) > 200
    test = T.generate("ioi", 300, seed=0, split="test", name_bank="wide")
    assert not (set(test.meta["io"]) | set(test.meta["s"])) & used
    assert T.generate("ioi", 30, seed=2, split="val").clean == (
        T.generate("ioi", 30, seed=2, split="val", name_bank="v2").clean
    )
    assert wide["test"] <= set(T.lexicon("ioi", {"name_bank": "wide"}))
    with pytest.raises(ValueError, match="name_bank"):
        T.generate("ioi", 2, split="train", name_bank="all")
    with pytest.raises(ValueError):  # the legacy generator has one name list
        T.generate("ioi", 2, name_bank="wide")


@pytest.mark.parametrize("name", TASKS)
def test_factor_prompts_of_every_kind_draw_from_the_held_out_split(name):
    """Every kind of every task can be held out alone (draw_from finds its list), and a
    split-derived cache does not leak: plain train prompts are the same before and after."""
    before = T.generate(name, 20, seed=5, split="train").clean
    test_sets = T.SPLIT_SETS[name]("test")
    checked = 0
    for kind in T.SPLIT_SETS[name]("train"):
        p = S.factor_prompts(name, 40, (kind,), seed=5)
        assert len(p.clean) == 40
        if kind in p.meta:  # the held-out kind's values come from test
            assert set(_flat(p.meta[kind])) <= set(test_sets[kind]), kind
            checked += 1
    assert T.generate(name, 20, seed=5, split="train").clean == before
    assert checked or name == "factual", name  # (factual: only template kinds, no meta)


def test_kind_lexicon_documents_hold_one_kind_each():
    """`lexicon_form="kinds"`: every document lists words of one kind of one task under that
    kind's heading, every lexicon word appears `copies` times, and bad forms are errors."""
    opts = {"ioi": {"name_bank": "wide"}}
    kinds = T.kind_lexicon("ioi", opts["ioi"])
    assert set(kinds) == {"name", "place", "object"} and len(kinds["name"]) == 400
    assert set(T.SPLIT_SETS["ioi"]("test", "wide")["name"]) <= set(kinds["name"])
    assert "frame" not in kinds and T.kind_lexicon("arithmetic") == {}
    docs = D.lexicon_texts(("ioi", "arithmetic"), copies=3, options=opts, form="kinds")
    heads = {"Names": kinds["name"], "Places": kinds["place"], "Objects": kinds["object"]}
    counts: dict[str, int] = {}
    for d in docs:
        head, body = d[:-1].split(":", 1)
        words = body.split()
        assert 0 < len(words) <= 24
        if head != "Words":  # the kind's own words only
            assert set(words) <= set(heads[head]), head
        for w in words:
            counts[w] = counts.get(w, 0) + 1
    every = {w.strip() for w in D.lexicon_words(("ioi", "arithmetic"), opts)}
    assert set(counts) == every and set(counts.values()) == {3}
    assert any(d.startswith("Words: ") for d in docs)  # arithmetic's numbers have no kind
    with pytest.raises(ValueError, match="form='names'; valid: words, kinds"):
        D.lexicon_texts(("ioi",), form="names")
    with pytest.raises(ValueError, match="lexicon_copies=0"):
        D.build(vocab_size=400, task_share=0.2, split_data=True, lexicon_copies=0)


def test_template_words_lexicon_makes_held_out_wording_single_tokens():
    """`lexicon_templates=True`: every word of every split's IOI templates is in the lexicon
    and one token, while no held-out template (only its words) enters the training text."""
    words = D.template_words(("ioi", "arithmetic"))
    test_pieces = [
        p for k in ("frame", "setting", "action") for p in T.SPLIT_SETS["ioi"]("test")[k]
    ]
    test_words = {
        w for p in test_pieces for w in re.findall(r"[A-Za-z]+", re.sub(r"{[^}]*}", " ", p))
    }
    assert test_words and test_words <= set(words)
    assert "S" not in words and "object" not in words  # slot names are not words
    lex = D.lexicon_words(("ioi",), templates=True)
    assert set(D.template_words(("ioi",))) <= set(lex) and set(D.lexicon_words(("ioi",))) < set(lex)
    docs = D.lexicon_texts(("ioi",), copies=2, templates=True)
    listed = {w for d in docs for w in d[:-1].split(":", 1)[1].split()}
    assert test_words <= listed
    data = D.build(vocab_size=1200, task_share=0.3, n_per_task=200, max_files=2,
                   split_data=True, tasks=("ioi",), lexicon_templates=True)  # fmt: skip
    tok = data.tokenizer
    assert all(len(tok.encode(" " + w).ids) == 1 for w in test_words)
    text = tok.decode(np.asarray(data.train).tolist())
    for prompt in T.generate("ioi", 50, seed=3, split="test").clean:
        assert prompt not in text


def test_ioi_v3_grammar_adds_split_adverbs_and_keeps_v2():
    from mechjax.data.tasks import ioi

    adverbs = {s: set(ioi.split_sets(s, grammar="v3")["adverb"]) for s in S.SPLITS}
    assert not adverbs["train"] & (adverbs["val"] | adverbs["test"])
    assert not adverbs["val"] & adverbs["test"] and all(adverbs.values())
    for s in S.SPLITS:  # v3 is v2 plus the adverbs: every other list keeps its split
        v2, v3 = ioi.split_sets(s), ioi.split_sets(s, grammar="v3")
        assert {k: v3[k] for k in v2} == v2
        assert ioi.template_count(s, "v3") == ioi.template_count(s) * (1 + len(adverbs[s]))
    train = T.generate("ioi", 2000, seed=0, split="train", grammar="v3", name_bank="wide")
    used = set(train.meta["adverb"])
    assert used == adverbs["train"] | {""}  # about half the prompts have one
    assert 0.4 < np.mean([a == "" for a in train.meta["adverb"]]) < 0.6
    for text, a, s in zip(train.clean, train.meta["adverb"], train.meta["s"]):
        assert not a or f" {s} {a} " in text
    test = T.generate("ioi", 500, seed=0, split="test", grammar="v3", name_bank="wide")
    assert not set(test.clean) & set(train.clean)
    assert set(test.meta["adverb"]) <= adverbs["test"] | {""}
    # the adverb is a kind of its own: held out alone, it comes from the held-out split
    p = S.factor_prompts("ioi", 60, ("adverb",), seed=1, split="val", grammar="v3")
    assert set(p.meta["adverb"]) <= adverbs["val"] | {""} and set(p.meta["adverb"]) - {""}
    assert set(p.meta["frame"]) <= set(ioi.split_sets("train")["frame"])
    assert adverbs["test"] <= set(T.lexicon("ioi", {"grammar": "v3"}))
    with pytest.raises(ValueError, match="grammar"):
        T.generate("ioi", 2, split="train", grammar="v4")
