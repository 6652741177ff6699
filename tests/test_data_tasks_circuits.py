"""Circuit text tasks (ioi, greater_than, docstring, colored_objects): answers recomputed by
parsing the prompts, clean/corrupted differences, and an encode round trip with a small BPE."""

import re

import numpy as np
import pytest

from mechjax.data import tasks
from mechjax.data.tasks import colored_objects, docstring, ioi
from mechjax.data.tokenizer import train_bpe

TASKS = ("ioi", "greater_than", "docstring", "colored_objects")
N = 200


def _words(text):
    return re.findall(r"\w+|[^\w\s]", text)


@pytest.fixture(scope="module")
def prompts():
    return {name: tasks.generate(name, N, seed=0) for name in TASKS} | {
        "ioi_flip": tasks.generate("ioi", N, seed=0, corruption="flip")
    }


@pytest.fixture(scope="module")
def tokenizer(prompts):
    texts = [t for p in prompts.values() for t in p.training_texts() + list(p.corrupted)]
    # all years, as a real corpus has them ("00" is only ever a contrast; a 1024 vocabulary
    # must see each digit pair often to merge it)
    texts += [f"the year 17{k:02d}" for k in range(100)] * 30
    return train_bpe(texts * 3, vocab_size=1024)


@pytest.mark.parametrize("name", TASKS)
def test_deterministic_from_seed(name):
    a, b, c = (tasks.generate(name, 20, seed=s) for s in (0, 0, 1))
    assert a == b
    assert a.clean != c.clean


@pytest.mark.parametrize(
    "name, options, needle",
    [
        ("ioi", {"order": "AB"}, "order='AB'"),
        ("ioi", {"corruption": "x"}, "'abc', 'flip'"),
        ("ioi", {"orde": "ABBA"}, "unknown option"),
        ("greater_than", {"century": 17}, "unknown option"),
        ("greater_than", {"min_yy": 0}, "min_yy=0 must be an int in [1, 2]"),
        ("greater_than", {"min_yy": 3}, "min_yy=3 must be an int in [1, 2]"),
        ("docstring", {"n_params": 5}, "n_params=5"),
        ("colored_objects", {"n_objects": 6}, "[2, 5]"),
        ("colored_objects", {"form": "recall"}, "('question', 'recap')"),
    ],
)
def test_bad_options(name, options, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        tasks.generate(name, 4, **options)


@pytest.mark.parametrize("corruption", ["abc", "flip"])
def test_ioi(prompts, corruption):
    p = prompts["ioi" if corruption == "abc" else "ioi_flip"]
    orders = set()
    for i in range(N):
        names = [w for w in _words(p.clean[i]) if w in ioi.NAMES]
        assert len(names) == 3
        # IO is the name said once, S the one said twice; the prompt ends right before IO
        io = next(n for n in names if names.count(n) == 1)
        s = next(n for n in names if names.count(n) == 2)
        assert p.answers[i] == (" " + io,) and p.contrasts[i] == (" " + s,)
        assert (p.meta["io"][i], p.meta["s"][i]) == (io, s)
        order = "ABBA" if names == [io, s, s] else "BABA"
        assert names in ([io, s, s], [s, io, s]) and p.meta["order"][i] == order
        orders.add(order)
        bad = [w for w in _words(p.corrupted[i]) if w in ioi.NAMES]
        if corruption == "abc":
            assert len(set(bad)) == 3 and not set(bad) & {io, s}
        else:
            assert bad == [{io: s, s: io}[n] for n in names]
        # only the three names differ
        cw, bw = _words(p.clean[i]), _words(p.corrupted[i])
        assert len(cw) == len(bw)
        assert [j for j, (x, y) in enumerate(zip(cw, bw)) if x != y] == [
            j for j, w in enumerate(cw) if w in ioi.NAMES
        ]
    assert orders == {"ABBA", "BABA"}
    for order in ("ABBA", "BABA"):
        assert set(tasks.generate("ioi", 30, order=order).meta["order"]) == {order}


def test_greater_than(prompts):
    p = prompts["greater_than"]
    pattern = re.compile(r"year (\d\d)(\d\d) .* year (\d\d)$")
    for i in range(N):
        century, yy, end = pattern.search(p.clean[i]).groups()
        assert century == end and 2 <= int(yy) <= 98 and 11 <= int(century) <= 17
        assert set(p.answers[i]) == {f"{k:02d}" for k in range(int(yy) + 1, 100)}
        assert set(p.contrasts[i]) == {f"{k:02d}" for k in range(int(yy) + 1)}
        assert len(p.answers[i]) + len(p.contrasts[i]) == 100
        assert (p.meta["yy"][i], p.meta["century"][i]) == (int(yy), int(century))
        assert p.corrupted[i] == p.clean[i].replace(f"year {century}{yy}", f"year {century}01")
        assert p.corrupted[i] != p.clean[i]
    # the trained-on first answer is a random valid year, not always yy + 1
    assert len({int(a[0]) - y for a, y in zip(p.answers, p.meta["yy"])}) > 10


def test_greater_than_min_yy():
    # min_yy=2 is the default (same prompts); min_yy=1 adds start years ending in 01, whose
    # answers are 02..99 and whose corrupted text is the clean one
    assert tasks.generate("greater_than", 40, seed=5, min_yy=2) == tasks.generate(
        "greater_than", 40, seed=5
    )
    p = tasks.generate("greater_than", 2000, seed=5, min_yy=1)
    yys = p.meta["yy"]
    assert min(yys) == 1 and max(yys) <= 98 and 5 <= yys.count(1) <= 60
    for i in (i for i, y in enumerate(yys) if y == 1):
        assert set(p.answers[i]) == {f"{k:02d}" for k in range(2, 100)}
        assert p.contrasts[i] == ("00", "01") and p.corrupted[i] == p.clean[i]


def test_docstring(prompts):
    p = prompts["docstring"]
    def_re = re.compile(r"def \w+\(self, ([\w, ]+)\):")
    for i in range(N):
        params = def_re.search(p.clean[i]).group(1).split(", ")
        documented = re.findall(r":param (\w+):", p.clean[i])
        assert p.clean[i].endswith(":param") and len(params) in (3, 4)
        assert documented == params[: len(documented)] and len(documented) == 2
        assert set(params) <= set(docstring.NAMES) and len(set(params)) == len(params)
        assert p.answers[i] == (" " + params[2],)
        assert set(p.contrasts[i]) == {" " + q for q in params if q != params[2]}
        bad = def_re.search(p.corrupted[i]).group(1).split(", ")
        assert len(bad) == len(params) and len(set(bad)) == len(bad)
        assert not set(bad) & set(params)
        # the docstring is untouched
        assert def_re.sub("", p.corrupted[i]) == def_re.sub("", p.clean[i])
    assert set(p.meta["n_params"]) == {3, 4}


def test_colored_objects(prompts):
    p = prompts["colored_objects"]
    scene_re = re.compile(r"I see (.*)\. What color is the (\w+)\? The (\w+) is$")
    for i in range(N):
        scene, q, q2 = scene_re.search(p.clean[i]).groups()
        items = re.findall(r"a (\w+) (\w+)", scene)
        color = {o: c for c, o in items}
        assert q == q2 and len(items) == 3 and len(color) == 3
        assert p.answers[i] == (" " + color[q],)
        assert set(p.contrasts[i]) == {" " + c for c, o in items if o != q}
        assert all(c in colored_objects.COLORS for c, _ in items)
        bad_scene, bq, _ = scene_re.search(p.corrupted[i]).groups()
        bad = re.findall(r"a (\w+) (\w+)", bad_scene)
        assert bq == q and [o for _, o in bad] == [o for _, o in items]
        assert sorted(c for c, _ in bad) == sorted(c for c, _ in items)
        assert all(b[0] != a[0] for a, b in zip(items, bad))  # every object changes color
        assert p.corrupted[i].split(" I see ")[0] == p.clean[i].split(" I see ")[0]
    assert len(tasks.generate("colored_objects", 5, n_objects=5).meta["colors"][0]) == 5


@pytest.mark.parametrize("k", [2, 3, 5])
def test_colored_objects_recap_form(k):
    p = tasks.generate("colored_objects", 100, seed=3, form="recap", n_objects=k)
    q = tasks.generate("colored_objects", 100, seed=3, n_objects=k)
    recap_re = re.compile(r"I see (.*)\. Colors:((?: \w+ \w+,)*) (\w+)$")
    n_listed = []
    for i in range(100):
        scene, listed, last = recap_re.search(p.clean[i]).groups()
        items = re.findall(r"a (\w+) (\w+)", scene)
        color = {o: c for c, o in items}
        pairs = re.findall(r"(\w+) (\w+),", listed)
        # other objects listed at most once each with their own colors, then the queried one
        listed_objects = [o for o, _ in pairs] + [last]
        assert len(set(listed_objects)) == len(listed_objects) and set(listed_objects) <= set(color)
        n_listed.append(len(pairs))
        assert all(color[o] == c for o, c in pairs)
        assert p.answers[i] == (" " + color[last],)
        assert set(p.contrasts[i]) == {" " + c for o, c in color.items() if o != last}
        assert last == p.meta["objects"][i][p.meta["query"][i]]
        assert p.clean[i][slice(*p.spans[i]["end"])] == " " + last
        bad_scene, bad_listed, bad_last = recap_re.search(p.corrupted[i]).groups()
        bad = {o: c for c, o in re.findall(r"a (\w+) (\w+)", bad_scene)}
        assert bad_last == last and all(bad[o] != color[o] for o in color)
        assert all(bad[o] == c for o, c in re.findall(r"(\w+) (\w+),", bad_listed))
    assert set(n_listed) == set(range(k))  # the query is listed first, ..., last
    # training texts go on past the answer to list every object with its color
    for c, a, t in zip(p.clean, p.answers, p.training_texts()):
        assert t.startswith(c + a[0]) and t.endswith(".")
        scene = {o: col for col, o in re.findall(r"a (\w+) (\w+)", t.split(" Colors:")[0])}
        assert dict(re.findall(r" (\w+) (\w+)[,.]", t.split(" Colors:")[1])) == scene
    assert q.training_texts() == [c + a[0] for c, a in zip(q.clean, q.answers)]
    # the first prompt has the question form's scene and query (later ones differ: the recap
    # draws its order from the same generator)
    assert p.clean[0].split(" Colors:")[0] == q.clean[0].split(" What color")[0]
    assert p.meta["query"][0] == q.meta["query"][0]
    texts = p.training_texts() + list(p.corrupted)
    tok = train_bpe(texts * 5, vocab_size=512)
    batch = tasks.encode(p, tok)
    assert batch.tokens.shape == batch.corrupted.shape


@pytest.mark.parametrize("name", TASKS + ("ioi_flip",))
def test_encode_round_trip(prompts, tokenizer, name):
    p = prompts[name]
    batch = tasks.encode(p, tokenizer)  # raises on multi-token answers or unequal lengths
    assert (batch.answers[:, 0] >= 0).all() and (batch.contrasts[:, 0] >= 0).all()
    for i in range(N):
        assert len(tokenizer.encode(p.clean[i]).ids) == len(tokenizer.encode(p.corrupted[i]).ids)
        assert batch.last[i] == len(tokenizer.encode(p.clean[i]).ids)  # BOS first
        for role, (start, end) in p.spans[i].items():
            tok = tokenizer.decode([int(batch.tokens[i, batch.positions[role][i]])])
            if role == "end":
                assert batch.positions[role][i] == batch.last[i]
                assert p.clean[i][start:end].endswith(tok)
            else:
                assert tok == p.clean[i][start:end], (role, p.clean[i])
    # the corrupted prompt differs at token level from the clean one in every example
    assert (batch.tokens != batch.corrupted).any(1).all()
    # the answers really are the continuation tokens of the training texts
    first = np.array([tokenizer.encode(t).ids[-1] for t in p.training_texts()])
    assert (first == batch.answers[:, 0]).all()
