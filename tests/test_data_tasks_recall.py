"""Recall / sequence text tasks (successor, factual, arithmetic, multiple_choice, needle,
repeated): answers recomputed by parsing the prompts, clean/corrupted differences, and an
encode round trip with a small BPE trained on the tasks' texts."""

import calendar
import re
import string
import time

import numpy as np
import pytest

from mechjax.data import tasks
from mechjax.data.tasks import factual, multiple_choice, needle, repeated, successor
from mechjax.data.tokenizer import train_bpe

N = 200
# (name, options) variants encoded with the shared tokenizer
VARIANTS = {
    "successor": ("successor", {}),
    "factual": ("factual", {}),
    "factual_heldout": ("factual", {"templates": "heldout"}),
    "arithmetic": ("arithmetic", {}),
    "arithmetic_random": ("arithmetic", {"contrast": "random", "ops": "-"}),
    "multiple_choice": ("multiple_choice", {}),
    "mc_random_letters": ("multiple_choice", {"labels": "random_letters"}),
    "mc_numbers": ("multiple_choice", {"labels": "numbers"}),
    "needle": ("needle", {}),
    "repeated": ("repeated", {}),
}
TASKS = ("successor", "factual", "arithmetic", "multiple_choice", "needle", "repeated")


@pytest.fixture(scope="module")
def prompts():
    return {k: tasks.generate(name, N, seed=0, **opt) for k, (name, opt) in VARIANTS.items()}


@pytest.fixture(scope="module")
def tokenizer():
    # Texts from other seeds than the tested prompts, the short tasks oversampled so their
    # words are about as frequent as the needle's filler (as in a training mixture); plus
    # every number 0..99 with and without a leading space, as a real corpus has them. 1024
    # entries cannot hold the ~800 distinct words of these six tasks, so 2048.
    texts = []
    for name in TASKS:
        p = tasks.generate(name, 60 if name == "needle" else 600, seed=100)
        texts += p.training_texts() + list(p.corrupted)
    p = tasks.generate("multiple_choice", 300, seed=101, labels="random_letters")
    texts += p.training_texts()
    texts += [" ".join(str(i) for i in range(100)), "\n".join(str(i) for i in range(100))] * 20
    return train_bpe(texts, vocab_size=2048)


@pytest.mark.parametrize("name", TASKS)
def test_deterministic_from_seed(name):
    a, b, c = (tasks.generate(name, 30, seed=s) for s in (0, 0, 1))
    assert a == b
    assert a.clean != c.clean


@pytest.mark.parametrize("name", TASKS)
def test_fast(name):
    t = time.perf_counter()
    tasks.generate(name, 10_000, seed=0)
    # 10k examples in < 1 s on a quiet core; generous for a shared 2-core machine
    assert time.perf_counter() - t < 3.0


@pytest.mark.parametrize(
    "name, options, needle_text",
    [
        ("successor", {"kind": "weekdays"}, "kind='weekdays'"),
        ("successor", {"knd": "days"}, "unknown option"),
        ("factual", {"templates": "test"}, "'all', 'train', 'heldout'"),
        ("factual", {"relations": ("capital", "height")}, "relations="),
        ("arithmetic", {"ops": "*"}, "ops='*'"),
        ("arithmetic", {"template": 2}, "template=2"),
        ("arithmetic", {"contrast": "near"}, "'off_by_one', 'random'"),
        ("arithmetic", {"max_value": 20}, "max_value=20 must be an int in [21, 99]"),
        ("multiple_choice", {"labels": "roman"}, "labels='roman'"),
        ("needle", {"depth": 1.5}, "depth=1.5"),
        ("needle", {"n_filler": 0}, "n_filler=0"),
        ("repeated", {"length": 1}, "length=1"),
        ("repeated", {"length": 51}, "length=51"),
    ],
)
def test_bad_options(name, options, needle_text):
    with pytest.raises(ValueError, match=re.escape(needle_text)):
        tasks.generate(name, 4, **options)


# ---------------------------------------------------------------------------- successor

_WORD_SEQS = [
    [" " + w for w in calendar.day_name],
    [" " + w for w in calendar.month_name[1:]],
    [" " + w for w in "one two three four five six seven eight nine ten eleven twelve".split()],
    [" " + w for w in "first second third fourth fifth sixth seventh eighth ninth tenth".split()],
    [" " + c for c in string.ascii_uppercase],
]


def _next(items):
    """(successor, second contrast) of a consecutive run, recomputed without the module's lists.

    The second contrast is the item two steps after the last one, or (at the end of a list)
    the item before the last one.
    """
    if all(re.fullmatch(r" \d+", w) for w in items):
        vals = [int(w) for w in items]
        assert vals == list(range(vals[0], vals[0] + len(vals))) and vals[-1] + 1 <= 98
        return f" {vals[-1] + 1}", f" {vals[-1] + 2}" if vals[-1] + 2 <= 98 else items[-2]
    seq = next(s for s in _WORD_SEQS if items[0] in s)
    i = seq.index(items[0]) + len(items)
    assert items == seq[i - len(items) : i]
    return seq[i], seq[i + 1] if i + 1 < len(seq) else items[-2]


@pytest.mark.parametrize("kind", [*successor.SEQUENCES, "mixed"])
def test_successor(kind):
    p = tasks.generate("successor", N, seed=3, kind=kind)
    assert (kind == "mixed") == (len(set(p.meta["kind"])) > 1)
    for i in range(N):
        items = re.findall(r" \S+", p.clean[i])
        assert "".join(items) == p.clean[i] and 3 <= len(items) <= 5
        nxt, skip = _next(items)
        assert p.answers[i] == (nxt,)
        assert p.contrasts[i] == (items[-1], skip)
        bad = re.findall(r" \S+", p.corrupted[i])
        # same items, reordered so the last one is not the clean last one
        assert sorted(bad) == sorted(items) and bad[-1] != items[-1]
        assert [
            p.clean[i][a:b] for a, b in (p.spans[i][f"item{j}"] for j in range(len(items)))
        ] == items


# ---------------------------------------------------------------------------- factual


def test_factual_knowledge_base():
    kb0, kb1 = factual.knowledge_base(0), factual.knowledge_base(1)
    assert kb0 == factual.knowledge_base(0) and kb0 != kb1
    assert len(kb0) == 60 and all(set(r) == set(factual.RELATIONS) for r in kb0.values())
    # the examples use the KB of kb_seed, whatever the example seed
    for seed in (0, 1):
        p = tasks.generate("factual", 50, seed=seed, kb_seed=1)
        assert all(
            p.answers[i] == (kb1[s][r],)
            for i, (s, r) in enumerate(zip(p.meta["subject"], p.meta["relation"]))
        )


def test_factual(prompts):
    kb = factual.knowledge_base(0)
    p = prompts["factual"]
    for i in range(N):
        words = re.findall(r"\w+", p.clean[i])
        subj = [w for w in words if w in kb]
        assert len(subj) == 1
        (rel,) = [r for r in factual.RELATIONS if p.clean[i] in _fills(r, subj[0])]
        assert p.answers[i] == (kb[subj[0]][rel],)
        # corrupted: only the subject changes, to one with another attribute (the contrast)
        other = [w for w in re.findall(r"\w+", p.corrupted[i]) if w in kb]
        assert len(other) == 1 and p.corrupted[i] == p.clean[i].replace(subj[0], other[0])
        assert p.contrasts[i] == (kb[other[0]][rel],) != p.answers[i]
        a, b = p.spans[i]["subject"]
        assert p.clean[i][a:b] == subj[0] and p.clean[i][a - 1] == " "
        a, b = p.spans[i]["relation"]
        assert p.clean[i][a:b] in (
            "capital",
            "language",
            "speak",
            "flag",
            "sport",
            "play",
            "animal",
        )


def _fills(rel, subj):
    return [
        t.replace("[", "").replace("]", "").replace("{s}", subj) for t in factual.TEMPLATES[rel]
    ]


def test_factual_template_split():
    got = {}
    for which in ("train", "heldout", "all"):
        p = tasks.generate("factual", 400, seed=0, templates=which)
        got[which] = set(zip(p.meta["relation"], p.meta["template"]))
    assert not got["train"] & got["heldout"]
    assert got["train"] | got["heldout"] == got["all"]
    assert {t for _, t in got["heldout"]} == {3}
    p = tasks.generate("factual", 50, seed=0, relations="sport")
    assert set(p.meta["relation"]) == {"sport"}


# ---------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize("ops, top", [("+", 99), ("-", 99), ("+-", 99), ("+-", 21), ("+-", 39)])
def test_arithmetic(ops, top):
    p = tasks.generate("arithmetic", N, seed=2, ops=ops, max_value=top)
    pat = r"(?:Compute: )?(\d+) ([+-]) (\d+) ="
    seen = set()
    for i in range(N):
        a, op, b = re.fullmatch(pat, p.clean[i]).groups()
        r = int(a) + int(b) if op == "+" else int(a) - int(b)
        seen.add(op)
        assert max(int(a), int(b)) <= top and 0 <= r <= top and p.answers[i] == (f" {r}",)
        (c,) = p.contrasts[i]
        assert abs(int(c) - r) == 1 and 0 <= int(c) <= top
        ca, cop, cb = re.fullmatch(pat, p.corrupted[i]).groups()
        cr = int(ca) + int(cb) if cop == "+" else int(ca) - int(cb)
        # same template and operator, operands with the same digit counts, another result
        assert p.corrupted[i].startswith("Compute") == p.clean[i].startswith("Compute")
        assert cop == op and (len(ca), len(cb)) == (len(a), len(b)) and 0 <= cr <= top and cr != r
        assert max(int(ca), int(cb)) <= top
        assert {k: p.clean[i][s:e] for k, (s, e) in p.spans[i].items()} == {
            "a": a,
            "op": op,
            "b": b,
            "eq": "=",
            "end": "=",
        }
    assert seen == set(ops)


def test_arithmetic_random_contrast(prompts):
    p = prompts["arithmetic_random"]
    diffs = [abs(int(c[0]) - int(a[0])) for a, c in zip(p.answers, p.contrasts)]
    assert min(diffs) >= 1 and max(diffs) > 5 and set(p.meta["op"]) == {"-"}


# ---------------------------------------------------------------------------- multiple choice

_QA = {q: right for q, right, _ in multiple_choice.QUESTIONS}


@pytest.mark.parametrize("variant", ["multiple_choice", "mc_random_letters", "mc_numbers"])
def test_multiple_choice(prompts, variant):
    p = prompts[variant]
    label_sets = set()
    for i in range(N):
        lines = p.clean[i].split("\n")
        assert lines[0].startswith("Question: ") and lines[-1] == "Answer:" and len(lines) == 6
        labs, opts = zip(*(re.fullmatch(r"(\w)\. (\w+)", ln).groups() for ln in lines[1:5]))
        assert len(set(labs)) == 4
        right = _QA[lines[0][len("Question: ") :]]
        assert opts.count(right) == 1
        k = opts.index(right)
        assert p.answers[i] == (" " + labs[k],)
        assert sorted(p.contrasts[i]) == sorted(" " + x for j, x in enumerate(labs) if j != k)
        # corrupted: same question and labels, options permuted, the correct one moved
        bad = p.corrupted[i].split("\n")
        blabs, bopts = zip(*(re.fullmatch(r"(\w)\. (\w+)", ln).groups() for ln in bad[1:5]))
        assert bad[0] == lines[0] and blabs == labs and sorted(bopts) == sorted(opts)
        assert bopts.index(right) != k
        text = p.clean[i]
        assert [text[slice(*p.spans[i][f"label{j}"])] for j in range(4)] == list(labs)
        assert [text[slice(*p.spans[i][f"option{j}"])] for j in range(4)] == list(opts)
        assert text[slice(*p.spans[i]["correct_option"])] == right
        label_sets.add(labs)
    if variant == "multiple_choice":
        assert label_sets == {("A", "B", "C", "D")}
    elif variant == "mc_numbers":
        assert label_sets == {("1", "2", "3", "4")}
    else:  # random distinct letters, not always in alphabetical order
        assert len(label_sets) > 50 and any(list(s) != sorted(s) for s in label_sets)
        assert all(set(s) <= set(string.ascii_uppercase) for s in label_sets)


# ---------------------------------------------------------------------------- needle

_NEEDLE = r"The secret number of (\w+) is (\d+)\."


def test_needle(prompts):
    p = prompts["needle"]
    depths = []
    for i in range(N):
        ((key, value),) = re.findall(_NEEDLE, p.clean[i])
        q = re.fullmatch(r".* What is the secret number of (\w+)\? It is", p.clean[i])
        assert q.group(1) == key and p.answers[i] == (f" {value}",)
        ((bkey, bval),) = re.findall(_NEEDLE, p.corrupted[i])
        assert bkey == key and len(bval) == 2 and bval != value
        assert p.corrupted[i] == p.clean[i].replace(f" {key} is {value}.", f" {key} is {bval}.")
        assert p.contrasts[i] == (f" {bval}",)
        sl = {k: p.clean[i][a:b] for k, (a, b) in p.spans[i].items()}
        assert sl["needle"] == f"The secret number of {key} is {value}."
        assert (sl["key"], sl["value"], sl["question_key"], sl["end"]) == (key, value, key, "is")
        sentences = re.findall(r"[A-Z][^.?]*[.?]", p.clean[i])
        assert len(sentences) == 12 + 2
        fill = [x for x in sentences[:-1] if x != sl["needle"]]
        assert len(set(fill)) == 12 and set(fill) <= set(needle.FILLER)
        depths.append(sentences.index(sl["needle"]) / 12)
    assert np.allclose(depths, p.meta["depth"]) and min(depths) == 0 and max(depths) == 1


@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_needle_depth(depth):
    p = tasks.generate("needle", 20, seed=0, depth=depth, n_filler=10)
    for text in p.clean:
        sentences = re.findall(r"[A-Z][^.?]*[.?]", text)
        k = next(j for j, s in enumerate(sentences) if s.startswith("The secret number"))
        assert k == round(depth * 10) and len(sentences) == 12


# ---------------------------------------------------------------------------- repeated


def test_repeated(prompts):
    p = prompts["repeated"]
    for i in range(N):
        w = re.findall(r" \w+", p.clean[i])
        L = p.meta["length"][i]
        first, second = w[:L], w[L:]
        assert len(set(first)) == L and 1 <= len(second) < L and second == first[: len(second)]
        assert set(first) <= set(repeated.WORDS)
        # induction: the word after the current word's first occurrence
        j = first.index(w[-1])
        assert p.answers[i] == (first[j + 1],)
        bad = re.findall(r" \w+", p.corrupted[i])
        assert bad[L:] == second and bad[j] == w[-1]
        assert p.contrasts[i] == (bad[j + 1],) and bad[j + 1] not in first
        assert len(set(bad[:L]) & set(first)) == 1
        sl = {k: p.clean[i][a:b] for k, (a, b) in p.spans[i].items()}
        assert sl == {"first_copy_match": w[-1], "first_copy_answer": first[j + 1], "end": w[-1]}
        assert p.spans[i]["first_copy_match"][1] <= len("".join(first))


# ---------------------------------------------------------------------------- encode


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_encode_round_trip(prompts, tokenizer, variant):
    p = prompts[variant]
    batch = tasks.encode(p, tokenizer)  # raises if an answer is not one token or lengths differ
    assert batch.tokens.shape == batch.corrupted.shape
    longest = 200 if variant == "needle" else 60
    assert batch.last.max() <= longest
    if variant == "needle":
        assert 100 <= np.median(batch.last) <= 160
    for i in range(0, N, 7):
        n_tok = batch.last[i] + 1
        assert tokenizer.decode(batch.tokens[i, 1:n_tok].tolist()) == p.clean[i]
        assert tokenizer.decode(batch.corrupted[i, 1:n_tok].tolist()) == p.corrupted[i]
        assert tokenizer.decode([int(batch.answers[i, 0])]) == p.answers[i][0]
        assert batch.positions["end"][i] == batch.last[i]
        for role, (a, b) in p.spans[i].items():
            tok = tokenizer.decode([int(batch.tokens[i, batch.positions[role][i]])]).strip()
            span = p.clean[i][a:b]
            # the position is the span's last token; spans that are single words of the
            # tasks' fixed lists decode to exactly the span
            assert tok and span.endswith(tok), (role, span, tok)
            if not role.startswith(("needle", "key", "question_key", "option", "correct")):
                assert tok == span.strip(), (role, span, tok)
