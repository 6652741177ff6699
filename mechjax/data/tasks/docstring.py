'''Docstring parameter completion (Heimersheim & Janiak 2023, "A circuit for Python docstrings
in a 4-layer attention-only transformer").

Clean: a method definition with 3 or 4 parameters after `self` and a reST docstring that
documents the first two; the prompt stops at the next `:param`, so the answer is the third
parameter name in def order, with its leading space:

    def port(self, load, size, files):
        """oil column piece

        :param load: crime population
        :param size: unit dark
        :param

-> answer " files"; contrasts: the other parameter names of the def (" load", " size" and the
fourth one if present; the first two are also the documented ones).

Corrupted: the paper's "random def" variant: every parameter name in the def is replaced by a
fresh random name (distinct, none of the clean ones), the docstring is unchanged. The token
count is unchanged since all names come from one list of single-token words.

Differences from the paper: the paper's prompts have 6 parameters after `self` with 3 already
documented and random 1-2 word descriptions; ours have 3-4 (2 documented), 40 names, 30
description words and 20 function names, to keep prompts short (~50 tokens).

Spans: "A_def", "B_def", "C_def" ("D_def" with 4 parameters): the names in the def;
"A_doc", "B_doc": the documented names; "end" (the final `:param`). Meta: func, params
(tuple of names in def order), n_params.
'''

from __future__ import annotations

import random

from mechjax.data.tasks._text import check_choice, check_options, end_span, fill
from mechjax.data.tasks.base import Prompts, register

NAMES = (
    "size", "file", "name", "data", "path", "value", "key", "index", "count", "mode",
    "type", "text", "line", "item", "node", "user", "url", "token", "label", "model",
    "source", "target", "shape", "state", "config", "level", "limit", "offset", "format",
    "result", "prefix", "start", "step", "width", "height", "color", "port", "host",
    "table", "query",
)  # fmt: skip
WORDS = (
    "oil", "column", "piece", "crime", "population", "unit", "dark", "river", "glass",
    "stone", "light", "paper", "music", "story", "market", "north", "green", "cloud",
    "horse", "metal", "field", "winter", "garden", "bread", "silver", "window", "forest",
    "bridge", "letter", "coffee",
)  # fmt: skip
FUNCS = (
    "load", "parse", "update", "check", "build", "render", "fetch", "merge", "split",
    "apply", "write", "read", "send", "handle", "create", "compute", "convert", "reset",
    "scan", "draw",
)  # fmt: skip

ROLES = ("A", "B", "C", "D")


def _template(n_params: int) -> str:
    params = ", ".join("{" + r + "_def}" for r in ROLES[:n_params])
    return (
        "def {func}(self, " + params + "):\n"
        '    """{w0} {w1} {w2}\n'
        "\n"
        "    :param {A_doc}: {w3} {w4}\n"
        "    :param {B_doc}: {w5} {w6}\n"
        "    :param"
    )


_TEMPLATES = {k: _template(k) for k in (3, 4)}


@register("docstring")
def docstring(n: int, seed: int = 0, split: str | None = None, **options) -> Prompts:
    """`n` docstring prompts. Options: n_params in (3, 4, "mixed"; default "mixed"): parameters
    after `self`; names: the parameter-name words (default `NAMES`; pass the ones that are
    single tokens for your tokenizer, e.g. a code-only one). See the module docstring.

    `split` ("train" / "val" / "test") uses the split grammar at the end of this module
    (n_params in 3..6 or "mixed"; names default to the `name_bank`, "v2" = `V2_NAMES` or
    "wide" = `V2_NAMES + STDLIB_NAMES`, split by hash, so a name keeps its split in both
    banks); None the legacy single template."""
    if split is not None:
        opts = check_options(
            "docstring", options, {"n_params": "mixed", "names": None, "name_bank": "v2"}
        )
        check_choice("docstring", "n_params", opts["n_params"], (*V2_PARAMS, "mixed"))
        names = _split_names(opts["names"], opts["name_bank"])
        if not all(isinstance(x, str) and x.isidentifier() for x in names):
            raise ValueError(f"docstring: names must be identifiers, got {names[:10]}.")
        return _docstring_split(n, seed, split, opts["n_params"], names)
    opts = check_options("docstring", options, {"n_params": "mixed", "names": NAMES})
    check_choice("docstring", "n_params", opts["n_params"], (3, 4, "mixed"))
    pool = tuple(opts["names"])
    if len(set(pool)) < 8 or not all(isinstance(x, str) and x.isidentifier() for x in pool):
        raise ValueError(
            f"docstring: names must hold >= 8 distinct identifiers (8 = two sets of 4 "
            f"parameters), got {len(set(pool))}: {pool[:10]}."
        )
    rng = random.Random(seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {"func": [], "params": [], "n_params": []}
    for _ in range(n):
        k = opts["n_params"] if opts["n_params"] != "mixed" else rng.choice((3, 4))
        names = rng.sample(pool, 2 * k)
        params, fresh = names[:k], names[k:]
        func = rng.choice(FUNCS)
        words = {f"w{i}": w for i, w in enumerate(rng.choices(WORDS, k=7))}
        values = {"func": func, "A_doc": params[0], "B_doc": params[1], **words}
        text, sp = fill(_TEMPLATES[k], {**values, **{f"{r}_def": p for r, p in zip(ROLES, params)}})
        bad, _ = fill(_TEMPLATES[k], {**values, **{f"{r}_def": p for r, p in zip(ROLES, fresh)}})
        clean.append(text)
        corrupted.append(bad)
        answers.append((" " + params[2],))
        contrasts.append(tuple(" " + p for i, p in enumerate(params) if i != 2))
        roles = [f"{r}_def" for r in ROLES[:k]] + ["A_doc", "B_doc"]
        spans.append({**{r: sp[r] for r in roles}, "end": end_span(text)})
        for key, v in (("func", func), ("params", tuple(params)), ("n_params", k)):
            meta[key].append(v)
    return Prompts.from_lists("docstring", clean, corrupted, answers, contrasts, spans, meta)


# ---- split mode (`split=` "train" / "val" / "test"; see mechjax.data.tasks.splits) --------
# A template is a def header x a docstring opening x a `:param` line form, with 3-6
# parameters of which the first 1..k-1 are documented (the answer is the next one in def
# order). Header, opening and line form are split; so are the parameter names, function
# names and description words.

V2_NAMES = NAMES + (
    "args", "batch", "block", "buffer", "cache", "callback", "channel", "client", "code",
    "context", "date", "depth", "device", "dtype", "encoding", "error", "event", "field",
    "filter", "flag", "group", "handler", "header", "image", "input", "kind", "layer",
    "length", "logger", "mask", "message", "method", "number", "option", "order", "output",
    "owner", "params", "parent", "pattern", "record", "region", "request", "response", "root",
    "scale", "schema", "scope", "seed", "session", "hint", "stream", "suffix", "tag",
    "timeout", "title", "tree", "unit", "version", "weight",
)  # fmt: skip
V2_WORDS = WORDS + (
    "apple", "engine", "ocean", "pencil", "rocket", "summer", "tiger", "valley", "wheel",
    "yellow", "anchor", "basket", "candle", "desert", "feather", "harbor", "island", "jungle",
    "kettle", "ladder", "mirror", "needle", "orange", "planet", "quiet", "rabbit", "saddle",
    "tunnel", "velvet", "wagon", "marble", "meadow", "copper", "shadow", "thunder", "pillow",
    "butter", "canvas", "dragon", "falcon",
)  # fmt: skip
V2_FUNCS = FUNCS + (
    "open", "close", "save", "store", "find", "match", "sort", "group", "clean", "format",
    "encode", "decode", "verify", "submit", "connect", "select", "insert", "remove", "append",
    "extend", "filter", "reduce", "process", "prepare", "resolve", "register", "validate",
    "collect", "publish", "observe",
)  # fmt: skip
V2_HEADERS = (
    "def {func}(self, {params}):", "def {func}(cls, {params}):", "def {func}(ctx, {params}):",
    "async def {func}(self, {params}):", "async def {func}(ctx, {params}):",
    "@staticmethod\ndef {func}(_, {params}):", "@classmethod\ndef {func}(cls, {params}):",
    "@property\ndef {func}(self, {params}):", "def {func}(self, {params}) -> None:",
    "def {func}(obj, {params}) -> bool:", "@cache\ndef {func}(key, {params}):",
    "def {func}(self, {params}, *args):", "def {func}(self, {params}, **kwargs):",
    "def {func}(self, {params}) -> dict:", "@abstractmethod\ndef {func}(self, {params}):",
    "@torch.no_grad()\ndef {func}(self, {params}):",
)  # fmt: skip
V2_OPENINGS = (
    '    """{summary}\n\n', "    '''{summary}\n\n", '    """\n    {summary}\n\n',
    '    r"""{summary}\n\n', '    """{summary}.\n\n', "    '''\n    {summary}\n\n",
    '    """{summary}\n\n    Arguments:\n', '    """{summary}\n\n    Params\n',
    '    """{summary} here.\n\n', "    '''{summary}.\n\n", '    """Note: {summary}\n\n',
    '    """{summary}\n\n    Args\n',
)  # fmt: skip
V2_LINES = (
    "    :param {P}: {D}\n", "    :param {P}: {D}.\n", "    :param {P}:  {D}\n",
    "    :param {P}: the {D}\n", "    :param {P}: {D}, optional\n", "    :param {P}: a {D}\n",
    "    :param {P}: {D} to use\n", "    :param {P}: which {D}\n", "    :param {P}: {D} (default)\n",
    "    :param {P}: new {D}\n", "    :param {P}: {D} or None\n", "    :param {P}: our {D}\n",
)  # fmt: skip
# The "wide" name bank (option name_bank="wide"): V2_NAMES plus these 300 parameter names,
# the most frequent lowercase alphabetic argument names (3-10 letters, not keywords, not
# already a name, word or function above) of CPython 3.11's standard library (outside its
# tests), counted once with `ast` and frozen here so that every interpreter draws the same
# splits. With only V2_NAMES' 60 train names a model can learn the names themselves rather
# than the copy (experiments/zoo/README.md, "Docstring: the names, not the templates").
STDLIB_NAMES = (
    "other", "errors", "final", "filename", "msg", "obj", "master", "cnf", "sock", "object",
    "arg", "results", "fullname", "func", "default", "string", "flags", "pos", "frame",
    "address", "module", "indent", "protocol", "loop", "parser", "src", "headers", "exc",
    "lineno", "cmd", "action", "debug", "extra", "attrs", "entry", "val", "section",
    "verbose", "year", "package", "dir", "globals", "fileobj", "waiter", "bufsize",
    "iterable", "conn", "family", "fut", "locals", "proto", "values", "attr", "ctx",
    "policy", "req", "allowance", "future", "pathname", "whence", "charset", "lines",
    "month", "spec", "strict", "tarinfo", "buf", "env", "kwargs", "parameters", "sequence",
    "stderr", "stdout", "cookie", "dst", "exception", "namespace", "stdin", "uri", "domain",
    "libraries", "namespaces", "out", "pid", "base", "bases", "command", "dest", "end",
    "objects", "server", "addr", "col", "maxsize", "opt", "str", "widget", "day", "delay",
    "element", "fun", "memo", "new", "vars", "fmt", "force", "kwds", "options", "test",
    "traceback", "body", "chars", "elem", "items", "lock", "map", "newline", "predicate",
    "prompt", "transport", "typ", "add", "category", "dirs", "environ", "first", "initargs",
    "instance", "resource", "backlog", "dirname", "errmsg", "factory", "fallback", "globs",
    "help", "list", "mailbox", "nbytes", "authkey", "boundary", "child", "chunksize",
    "defaults", "errcode", "klass", "lang", "last", "lib", "names", "nodes", "required",
    "shell", "sources", "autoraise", "content", "coro", "fields", "loader", "macros", "mod",
    "modname", "next", "num", "pat", "pipe", "raw", "realm", "sep", "ssl", "sslcontext",
    "stop", "targetpath", "task", "theyear", "trans", "writer", "displayof", "doc",
    "events", "example", "failobj", "files", "heap", "infile", "member", "onerror",
    "origin", "parts", "passwd", "password", "prec", "seq", "sig", "buffering", "dict",
    "entrypath", "executable", "ext", "formatter", "function", "high", "info", "init",
    "low", "mapping", "members", "outfile", "pool", "position", "pwd", "recursive", "rest",
    "what", "when", "adaptive", "angle", "certfile", "chain", "depends", "got", "grouping",
    "keyfile", "newl", "qname", "reader", "readline", "row", "statement", "symbol",
    "tarfile", "template", "usage", "addindent", "classes", "dironly", "frozen", "hostname",
    "hour", "idx", "inqueue", "left", "metavar", "minute", "newtag", "optimize", "outqueue",
    "param", "paths", "processes", "resp", "right", "second", "skipkeys", "themonth",
    "thing", "trace", "tzinfo", "basename", "contents", "deep", "dist", "escape", "etype",
    "filters", "fold", "folder", "forceload", "fromlist", "heading", "ident", "iterator",
    "locale", "maxlen", "monetary", "mtime", "nframes", "old", "priority", "release",
    "repr", "rounding", "safe", "separator", "serializer", "side", "status", "sub",
    "subtype", "transp", "which", "why", "actions", "alias", "align", "aname", "annotation",
    "archive", "arcname", "begidx",
)  # fmt: skip
NAME_BANKS = {"v2": V2_NAMES, "wide": V2_NAMES + STDLIB_NAMES}
V2_ROLES = ("A", "B", "C", "D", "E", "F")
V2_PARAMS = (3, 4, 5, 6)


def _grammar():
    from mechjax.data.tasks.splits import Grammar

    return Grammar.of("docstring", header=V2_HEADERS, opening=V2_OPENINGS, line=V2_LINES)


def _split_names(names, name_bank) -> tuple:
    """The split mode's name list: `names` if given, else the `name_bank`'s."""
    if names is None:
        check_choice("docstring", "name_bank", name_bank, tuple(NAME_BANKS))
        return NAME_BANKS[name_bank]
    if name_bank != "v2":
        raise ValueError(
            f"docstring: pass names or name_bank, not both (got name_bank={name_bank!r} and "
            f"{len(names)} names)."
        )
    names = tuple(names)
    if not all(isinstance(x, str) and x.isidentifier() for x in names):
        raise ValueError(f"docstring: names must be identifiers, got {names[:10]}.")
    return names


def split_sets(split: str, names=V2_NAMES, name_bank: str | None = None) -> dict[str, tuple]:
    """The split's template pieces, parameter names, function names and description words
    (`name_bank`, if given, picks the names as the generator's option does)."""
    from mechjax.data.tasks.splits import part

    if name_bank is not None:
        names = _split_names(None, name_bank)

    return {
        **_grammar().options(split),
        "name": part(tuple(dict.fromkeys(names)), "docstring/name", split),
        "func": part(V2_FUNCS, "docstring/func", split),
        "word": part(V2_WORDS, "docstring/word", split),
    }


def _docstring_split(n: int, seed: int, split: str, k_opt, names) -> Prompts:
    from mechjax.data.tasks.splits import rng as split_rng

    sets = split_sets(split, names)
    pool = sets["name"]
    k_max = min(6, len(pool) // 2)
    ks = tuple(k for k in V2_PARAMS if k <= k_max) if k_opt == "mixed" else (k_opt,)
    if not ks or max(ks) > k_max:
        raise ValueError(
            f"docstring: split {split!r} has {len(pool)} parameter names, too few for "
            f"n_params={k_opt!r} (2 x n_params distinct names are needed); pass more names."
        )
    rng = split_rng("docstring", split, seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {k: [] for k in ("template", "func", "params", "n_params", "n_doc", "name", "word")}
    for _ in range(n):
        k = rng.choice(ks)
        j = rng.randint(1, k - 1)  # documented parameters; the answer is params[j]
        header, opening, line = (rng.choice(sets[s]) for s in ("header", "opening", "line"))
        names_k = rng.sample(pool, 2 * k)
        params, fresh = names_k[:k], names_k[k:]
        func = rng.choice(sets["func"])
        n_words = [rng.randint(1, 3) for _ in range(j)]
        summary = " ".join(rng.choice(sets["word"]) for _ in range(rng.randint(1, 4)))
        plist = ", ".join("{" + r + "_def}" for r in V2_ROLES[:k])
        body = "".join(
            line.replace("{P}", "{" + V2_ROLES[i] + "_doc}").replace("{D}", f"{{d{i}}}")
            for i in range(j)
        )
        template = header.replace("{params}", plist) + "\n" + opening
        template += body + "    :param"
        values = {"func": func, "summary": summary}
        values.update({f"{V2_ROLES[i]}_doc": params[i] for i in range(j)})
        words = []
        for i in range(j):
            ws = [rng.choice(sets["word"]) for _ in range(n_words[i])]
            words += ws
            values[f"d{i}"] = " ".join(ws)
        text, sp = fill(template, {**values, **{f"{r}_def": p for r, p in zip(V2_ROLES, params)}})
        bad, _ = fill(template, {**values, **{f"{r}_def": p for r, p in zip(V2_ROLES, fresh)}})
        clean.append(text)
        corrupted.append(bad)
        answers.append((" " + params[j],))
        contrasts.append(tuple(" " + p for i, p in enumerate(params) if i != j))
        roles = [f"{r}_def" for r in V2_ROLES[:k]] + [f"{r}_doc" for r in V2_ROLES[:j]]
        spans.append({**{r: sp[r] for r in roles}, "end": end_span(text)})
        tid = "|".join((header, opening, line, str(k), str(j)))
        vals = (tid, func, tuple(params), k, j, tuple(names_k), tuple(words))
        for key, v in zip(meta, vals):
            meta[key].append(v)
    return Prompts.from_lists("docstring", clean, corrupted, answers, contrasts, spans, meta)


def _register_splits():
    from mechjax.data.tasks.base import register_splits

    n_kj = sum(k - 1 for k in V2_PARAMS)  # (n_params, n_documented) combinations
    register_splits(
        "docstring",
        lambda split: _grammar().count(split) * n_kj,
        split_sets,
        lambda name_bank="v2", **_: NAME_BANKS[name_bank] + V2_WORDS + V2_FUNCS,
    )


_register_splits()
