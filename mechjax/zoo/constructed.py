"""Models whose circuit is known by construction: weights set by hand, an exact ground truth.

    from mechjax.zoo import constructed
    model, params, circuit = constructed.induction_model()      # d_vocab=32, n_ctx=64
    tokens = constructed.repeated_permutations(0, batch=8, length=24, d_vocab=32)
    logits, _ = mj.run(model, params, tokens)                   # predicts the second copy

`python -m mechjax.zoo.constructed` checks the model with the library's own analyses and
prints the verification tables (experiments/zoo/README.md, "Ground-truth circuit").

The induction model
===================
A 2-layer attention-only `mj.Transformer` without norms or biases (`normalization_type=None`,
learned positions), 3 heads per layer, every weight set in closed form. With `V = d_vocab`
and `N = n_ctx` the residual stream (`d_model = 4V + N`) is five disjoint subspaces, each a
block of one-hot coordinates:

    TOK   [0, V)             token t at e_{TOK+t}          written by W_E
    POS   [V, V+N)           position p at e_{POS+p}       written by W_pos
    PREV  [V+N, 2V+N)        the previous token            written by L0H1
    OUT   [2V+N, 3V+N)       the predicted token           written by L1H2, read by W_U
    JUNK  [3V+N, 4V+N)       distractor output             written by L0H0, L1H0; read by nothing

Every head has `d_head = V + N` (its first coordinates index tokens or positions). With
`c = sharpness * sqrt(d_head)` (the model divides scores by sqrt(d_head), so a match scores
`sharpness`, a non-match 0) and `g = logit_scale`:

    L0H1 previous-token head:  W_Q[POS+p, p-1] = c (p >= 1),  W_K[POS+j, j] = 1,
                               W_V[TOK+t, t] = 1,             W_O[t, PREV+t] = 1.
        The query of position p matches only the key of position p-1, so the head moves
        the token at p-1 into PREV of position p (position 0 sees only itself).
    L1H2 induction head:       W_Q[TOK+t, t] = c,   W_K[PREV+t, t] = 1    (K-composition),
                               W_V[TOK+t, t] = 1,   W_O[t, OUT+t] = g.
        Position i attends to the positions j <= i whose previous token is the current
        token, and writes the token found there into OUT.
    W_U[OUT+t, t] = 1 and W_E[t, TOK+t] = 1, W_pos[p, POS+p] = 1.
    L0H0 distractor, "self" head: attends to its own position (W_Q[POS+p, p] = c,
        W_K[POS+p, p] = 1) and copies the token into JUNK.
    L1H0 distractor, duplicate-token head: attends to earlier occurrences of the current
        token (W_Q[TOK+t, t] = c, W_K[TOK+t, t] = 1; W_Q[POS+p, V+p] = -2c,
        W_K[POS+p, V+p] = 1 rules out its own position) and copies the token into JUNK.
    L0H2, L1H1: all weights zero (exact no-ops).

So the logits are exactly `g *` (attention-weighted histogram of the tokens that followed
earlier occurrences of the current token; of all tokens so far where there is none), up
to `exp(-sharpness)` leakage: the algorithm :func:`reference_logits` computes in numpy.
Sequences start with a BOS token (0) that does not occur again; without it position 0's
"previous token" is its own token and the second occurrence of that token would split its
attention between two successors.

The ground truth (:func:`induction_circuit`): nodes embed, pos_embed, L0H1
(previous_token), L1H2 (induction), logits; edges pos_embed -> L0H1.q, pos_embed ->
L0H1.k, embed -> L0H1.v, embed -> L1H2.q, L0H1 -> L1H2.k, embed -> L1H2.v, L1H2 ->
logits.resid. The distractors read from the stream but write only to JUNK, which nothing
reads, so ablating them (zero, mean or resample) changes no logit at all: the circuit's
faithfulness is exactly 1 with every ablation. Both members are necessary: L1H2 is the
only writer the logits read, and without L0H1 the induction key holds no previous token.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from mechjax.zoo.circuits import Circuit

MODEL_NAME = "constructed_induction"
TASK = "induction"
BOS = 0
PREV_HEAD = (0, 1)
INDUCTION_HEAD = (1, 2)
# The heads outside the circuit: distractors with salient attention patterns that write only
# to JUNK, and all-zero heads.
DISTRACTORS = {(0, 0): "self", (1, 0): "duplicate_token"}
ZERO_HEADS = ((0, 2), (1, 1))
N_HEADS = 3


def induction_circuit() -> Circuit:
    """The ground-truth `Circuit` of :func:`induction_model` (the same for every size)."""
    prev = f"L{PREV_HEAD[0]}H{PREV_HEAD[1]}"
    ind = f"L{INDUCTION_HEAD[0]}H{INDUCTION_HEAD[1]}"
    return Circuit(
        model=MODEL_NAME,
        task=TASK,
        nodes=("embed", "pos_embed", prev, ind, "logits"),
        edges=(
            ("pos_embed", prev, "q"),
            ("pos_embed", prev, "k"),
            ("embed", prev, "v"),
            ("embed", ind, "q"),
            (prev, ind, "k"),
            ("embed", ind, "v"),
            (ind, "logits", "resid"),
        ),
        roles={prev: "previous_token", ind: "induction"},
        metric=(
            "mean log-probability of the correct next token on the second copy of BOS + "
            "random tokens repeated once (mechjax.zoo.constructed.repeated_half_logprob)"
        ),
        faithfulness=1.0,
        ablation="mean",
        notes=(
            "Known by construction (weights set by hand, mechjax.zoo.constructed). "
            "Faithfulness is exactly 1 with zero, mean or resample ablation of the "
            "complement: the other heads (L0H0 self-attending and L1H0 duplicate-token "
            "distractors, zero heads L0H2 and L1H1) write only to a subspace nothing reads. "
            "Each member is necessary: L1H2 is the only head the logits read, and without "
            "L0H1 the induction key holds no previous token (faithfulness without each "
            "member: tests/test_zoo_constructed.py, python -m mechjax.zoo.constructed)."
        ),
    )


def induction_model(
    d_vocab: int = 32, n_ctx: int = 64, sharpness: float = 30.0, logit_scale: float = 20.0
):
    """`(model, params, circuit)`: the hand-set 2-layer induction model (module docstring).

    Args:
      d_vocab: vocabulary size V (token 0 serves as BOS); d_model = 4 V + n_ctx.
      n_ctx: context length N.
      sharpness: attention score of a match (non-matches score 0); attention leaks
        `~ n_ctx * exp(-sharpness)` to non-matches.
      logit_scale: logit of a predicted token (others 0 where the match is unique), so the
        loss on a unique match is `log(1 + (V - 1) exp(-logit_scale))`.

    Returns:
      `mj.Transformer`, params `{"params": ...}` (jnp float32) and :func:`induction_circuit`.
    """
    from mechjax.models import Transformer, TransformerConfig

    V, N = int(d_vocab), int(n_ctx)
    if V < 3 or N < 3:
        raise ValueError(f"induction_model: needs d_vocab >= 3 and n_ctx >= 3, got {V}, {N}")
    TOK, POS, PREV, OUT, JUNK = 0, V, V + N, 2 * V + N, 3 * V + N
    D, E = 4 * V + N, V + N
    cfg = TransformerConfig(
        d_model=D,
        n_layers=2,
        n_heads=N_HEADS,
        d_head=E,
        d_vocab=V,
        n_ctx=N,
        attn_only=True,
        normalization_type=None,
        positional_embedding_type="standard",
        attn_bias=False,
        unembed_bias=False,
        name=MODEL_NAME,
    )
    c = float(sharpness) * math.sqrt(E)
    t, p = np.arange(V), np.arange(N)
    f32 = np.float32
    W_E = np.zeros((V, D), f32)
    W_E[t, TOK + t] = 1.0
    W_pos = np.zeros((N, D), f32)
    W_pos[p, POS + p] = 1.0
    W_U = np.zeros((D, V), f32)
    W_U[OUT + t, t] = 1.0
    layers = []
    for _ in range(2):
        layers.append({k: np.zeros((N_HEADS, D, E), f32) for k in ("W_Q", "W_K", "W_V")})
        layers[-1]["W_O"] = np.zeros((N_HEADS, E, D), f32)

    def copy_token(layer, head, to, scale=1.0):  # OV: the attended token -> subspace `to`
        layers[layer]["W_V"][head, TOK + t, t] = 1.0
        layers[layer]["W_O"][head, t, to + t] = scale

    # L0H1, previous-token head: query p looks for the key of position p - 1.
    a, h = layers[PREV_HEAD[0]], PREV_HEAD[1]
    a["W_Q"][h, POS + p[1:], p[1:] - 1] = c
    a["W_K"][h, POS + p, p] = 1.0
    copy_token(*PREV_HEAD, PREV)
    # L1H2, induction head: query = current token, key = previous token (from L0H1).
    a, h = layers[INDUCTION_HEAD[0]], INDUCTION_HEAD[1]
    a["W_Q"][h, TOK + t, t] = c
    a["W_K"][h, PREV + t, t] = 1.0
    copy_token(*INDUCTION_HEAD, OUT, float(logit_scale))
    # L0H0 distractor: attends to its own position.
    a, h = layers[0], 0
    a["W_Q"][h, POS + p, p] = c
    a["W_K"][h, POS + p, p] = 1.0
    copy_token(0, 0, JUNK)
    # L1H0 distractor: attends to earlier occurrences of its token (own position: -c).
    a, h = layers[1], 0
    a["W_Q"][h, TOK + t, t] = c
    a["W_K"][h, TOK + t, t] = 1.0
    a["W_Q"][h, POS + p, V + p] = -2 * c
    a["W_K"][h, POS + p, V + p] = 1.0
    copy_token(1, 0, JUNK)

    params = {"W_E": W_E, "W_pos": W_pos, "W_U": W_U}
    for i, a in enumerate(layers):
        params[f"blocks_{i}"] = {"attn": a}
    params = jax.tree.map(jnp.asarray, {"params": params})
    return Transformer(cfg), params, induction_circuit()


# -- data and the reference algorithm ---------------------------------------------------------


def repeated_permutations(seed, batch: int, length: int, d_vocab: int, bos: int = BOS):
    """`[batch, 1 + 2 length]` int32: BOS, `length` distinct random tokens, the same again.

    Distinct tokens make every prediction on the second copy unambiguous (each current
    token occurred once before), so an exact induction circuit gets all of them right.
    """
    if not 1 <= length <= d_vocab - 1:
        raise ValueError(
            f"repeated_permutations: length must be in 1..{d_vocab - 1} (distinct non-BOS "
            f"tokens), got {length}"
        )
    rng = np.random.default_rng(seed)
    first = np.argsort(rng.random((batch, d_vocab - 1)), axis=1)[:, :length]
    first = first + (first >= bos)  # skip the BOS id
    col = np.full((batch, 1), bos)
    return np.concatenate([col, first, first], axis=1).astype(np.int32)


def repeated_half_positions(length: int) -> tuple[int, ...]:
    """Positions whose next token is predictable by induction in BOS + 2 copies of `length`.

    Logits at position i predict token i + 1; tokens 1..length are the first copy, so the
    positions are `length + 1 .. 2 length - 1` (the first token of the second copy has no
    earlier context to copy from).
    """
    return tuple(range(length + 1, 2 * length))


def repeated_half_logprob(tokens, length: int):
    """Metric: mean log-probability of the correct next token on the repeated half.

    A `mechjax.analysis.metrics.LogitMetric` (reads only `repeated_half_positions`), for
    `circuits.faithfulness`, patching and path patching on `tokens` `[batch, 1 + 2 length]`.
    """
    from mechjax.analysis.metrics import LogitMetric

    pos = repeated_half_positions(length)
    targets = jnp.asarray(np.asarray(tokens)[:, [i + 1 for i in pos]])  # [batch, len(pos)]

    def fn(logits):  # [batch, len(pos), d_vocab]
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        return jnp.mean(jnp.take_along_axis(logp, targets[..., None], axis=-1))

    return LogitMetric(fn, pos)


def repeated_half_scores(logits, tokens, length: int) -> dict:
    """Accuracy (argmax == next token) and loss (nats) on the repeated half."""
    pos = list(repeated_half_positions(length))
    lg = np.asarray(logits, np.float64)[:, pos]  # [batch, len(pos), d_vocab]
    tgt = np.asarray(tokens)[:, [i + 1 for i in pos]]
    logp = lg - lg.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    loss = -np.take_along_axis(logp, tgt[..., None], -1).mean()
    return {"accuracy": float((lg.argmax(-1) == tgt).mean()), "loss": float(loss)}


def reference_logits(tokens, d_vocab: int, logit_scale: float = 20.0):
    """The induction algorithm in numpy: the logits the constructed model computes (exp(-30) aside).

    At position i, the weights are uniform over the positions j <= i whose previous token
    (position 0's: its own) is the current token, or over all j <= i if there is none; the
    logits are `logit_scale` times the weighted histogram of the tokens at those j.
    `[batch, pos, d_vocab]` float64.
    """
    tok = np.asarray(tokens)
    b, n = tok.shape
    prev = np.concatenate([tok[:, :1], tok[:, :-1]], axis=1)
    causal = np.tril(np.ones((n, n), bool))
    match = (tok[:, :, None] == prev[:, None, :]) & causal  # [batch, q, k]
    w = np.where(match.any(-1, keepdims=True), match, causal).astype(np.float64)
    w /= w.sum(-1, keepdims=True)
    onehot = np.eye(d_vocab)[tok]  # [batch, k, d_vocab]
    return logit_scale * np.einsum("bqk,bkv->bqv", w, onehot)


# -- the direct-path graph ----------------------------------------------------------------------


def direct_path_graph(model, params, tokens, tol: float = 1e-4) -> dict:
    """Every direct path with an effect above `tol`: `{(sender, receiver, channel): size}`.

    For a norm-free attention-only model every head's query, key and value and the logits
    are linear in the residual stream, which is the sum of `hook_embed`, `hook_pos_embed`
    and every earlier head's `hook_result`; `size` is the largest absolute contribution of
    one sender to one receiver input over the batch (`tokens`). Node names as in
    `mechjax.zoo.circuits`.
    """
    import mechjax as mj

    cfg = model.cfg
    if cfg.normalization_type is not None or not cfg.attn_only or cfg.attn_bias:
        raise ValueError(
            "direct_path_graph needs a norm-free, bias-free attention-only model (linear inputs)"
        )
    p = params["params"]
    L, H = cfg.n_layers, cfg.n_heads
    sites = ["hook_embed", "hook_pos_embed"] + [f"blocks.{i}.attn.hook_result" for i in range(L)]
    _, cache = mj.run(model, params, tokens, cache=tuple(sites))
    senders = {"embed": cache["hook_embed"], "pos_embed": cache["hook_pos_embed"]}
    graph = {}

    def add(sender, x, receiver, channel, W):  # x [batch, pos, d_model], W [d_model, out]
        size = float(jnp.max(jnp.abs(x @ W)))
        if size > tol:
            graph[(sender, receiver, channel)] = size

    for i in range(L):
        a = p[f"blocks_{i}"]["attn"]
        for h in range(H):
            for ch in ("q", "k", "v"):
                W = jnp.asarray(a[f"W_{ch.upper()}"][h * cfg.kv_heads // H if ch != "q" else h])
                for name, x in senders.items():
                    add(name, x, f"L{i}H{h}", ch, W)
        result = cache[f"blocks.{i}.attn.hook_result"]  # [batch, pos, head, d_model]
        for h in range(H):
            senders[f"L{i}H{h}"] = result[:, :, h]
    for name, x in senders.items():
        add(name, x, "logits", "resid", jnp.asarray(p["W_U"]))
    return graph


def logit_ancestors(graph) -> tuple[set[str], set[tuple[str, str, str]]]:
    """(nodes, edges) of `graph` from which a path leads to the logits."""
    nodes, edges, frontier = {"logits"}, set(), ["logits"]
    while frontier:
        r = frontier.pop()
        for s, rr, ch in graph:
            if rr == r:
                edges.add((s, rr, ch))
                if s not in nodes:
                    nodes.add(s)
                    frontier.append(s)
    return nodes, edges


# -- verification (the README table) -----------------------------------------------------------


def verify(batch: int = 64, length: int = 24, seed: int = 0, d_vocab: int = 32, n_ctx: int = 64):
    """Checks :func:`induction_model` with mechjax's analyses; returns the numbers as a dict."""
    import mechjax as mj
    from mechjax.analysis import circuits, detectors, path_patching
    from mechjax.data import repeated_tokens

    model, params, circ = induction_model(d_vocab, n_ctx)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    clean = repeated_permutations(seed, batch, length, d_vocab)
    corrupt = repeated_permutations(seed + 1, batch, length, d_vocab)
    dups = np.asarray(repeated_tokens.fixed(seed, batch, length, d_vocab, bos=BOS))
    metric = repeated_half_logprob(clean, length)
    out = {"d_vocab": d_vocab, "n_ctx": n_ctx, "batch": batch, "length": length, "seed": seed}
    out["circuit"] = [f"L{i}H{h}" for i, h in circ.heads]

    def scores(tokens, ivs=()):
        logits, _ = mj.run(model, params, tokens, interventions=tuple(ivs))
        return repeated_half_scores(logits, tokens, length)

    # One head ablated = every head's hook_z clamped to its reference where a mask says:
    # masks and values are leaves, so all 2 x 6 ablations share one compiled forward (the
    # same as mj.ablate(site, heads=[h], method=...), which would compile once per head).
    sites = tuple(f"blocks.{i}.attn.hook_z" for i in range(L))
    _, zc = mj.run(model, params, clean, cache=sites)
    rows = {"full model": scores(clean)}
    for i, h in np.ndindex(L, H):
        for method in ("zero", "mean"):
            ivs = []
            for j, site in enumerate(sites):
                ref = zc[site] * 0 if method == "zero" else zc[site].mean(0, keepdims=True)
                mask = np.zeros((1, 1, H, 1), bool)  # [batch, pos, head, d_head]
                mask[:, :, h] = j == i
                ivs.append(mj.clamp(site, jnp.broadcast_to(ref, zc[site].shape), mask=mask))
            rows[f"L{i}H{h} {method}-ablated"] = scores(clean, ivs)
    n_draw = d_vocab - 1
    rows["chance (uniform over the non-BOS tokens)"] = {
        "accuracy": 1 / n_draw,
        "loss": math.log(n_draw),
    }
    # The strongest shortcut without induction: the answer is one of the other tokens seen
    # so far (length - 1 of them on the repeated half); uniform over them, ties at random.
    rows["in-context unigram (uniform over the other tokens seen)"] = {
        "accuracy": 1 / max(length - 1, 1),
        "loss": math.log(max(length - 1, 1)),
    }
    out["ablations"] = rows
    logits, _ = mj.run(model, params, dups)
    out["random_tokens"] = {
        "model": repeated_half_scores(logits, dups, length),
        "reference": repeated_half_scores(reference_logits(dups, d_vocab), dups, length),
        "max_abs_logit_error": float(
            np.abs(np.asarray(logits) - reference_logits(dups, d_vocab)).max()
        ),
    }
    out["detectors"] = {
        "previous_token": np.asarray(detectors.previous_token_score(model, params, clean)).tolist(),
        "induction": np.asarray(detectors.induction_score(model, params, clean)).tolist(),
        "duplicate_token": np.asarray(
            detectors.duplicate_token_score(model, params, clean)
        ).tolist(),
    }
    masks = circ.masks(model)
    faith = {}
    for method in ("mean", "zero", "resample"):
        kw = dict(method=method, reference_tokens=corrupt if method == "resample" else None)
        f = circuits.faithfulness(model, params, clean, metric, masks, **kw)
        faith[method] = {"circuit": f["faithfulness"]}
        for i, h in circ.heads:
            drop = {k: np.array(v) for k, v in masks.items()}
            drop["heads"][i, h] = False
            faith[method][f"without L{i}H{h}"] = circuits.faithfulness(
                model, params, clean, metric, drop, **kw
            )["faithfulness"]
        faith[method]["metric"] = {k: f[k] for k in ("full", "circuit", "empty")}
    out["faithfulness"] = faith
    pruned = circuits.greedy_prune(model, params, clean, metric, 1e-4, method="mean")
    kept = {tuple(int(x) for x in ix) for ix in np.argwhere(pruned["circuit"]["heads"])}
    out["greedy_prune"] = {
        "removed": [str(n) for n in pruned["removed"]],
        "kept_equals_circuit": kept == set(circ.heads),
    }
    # Path patching: every head -> each input of the induction head, and -> the logits.
    m_clean = float(metric(mj.run(model, params, clean)[0]))
    m_corrupt = float(metric(mj.run(model, params, corrupt)[0]))  # clean targets, corrupted run
    i1, h1 = INDUCTION_HEAD
    pp = {}
    for ch in ("q", "k", "v"):
        r = path_patching.path_patch(
            model, params, clean, corrupt, metric, [(f"blocks.{i1}.attn.hook_{ch}", [h1], None)]
        )
        pp[f"L{i1}H{h1}.{ch}"] = ((np.asarray(r) - m_clean) / (m_corrupt - m_clean)).tolist()
    r = path_patching.path_patch(
        model, params, clean, corrupt, metric, [(f"blocks.{L - 1}.hook_resid_post", None, None)]
    )
    pp["logits"] = ((np.asarray(r) - m_clean) / (m_corrupt - m_clean)).tolist()
    out["path_patching"] = {"clean": m_clean, "corrupted": m_corrupt, "scores": pp}
    nodes, edges = logit_ancestors(direct_path_graph(model, params, clean))
    out["direct_paths"] = {
        "nodes": sorted(nodes),
        "edges": sorted(edges),
        "equal_to_circuit": nodes == set(circ.node_names)
        and edges == {(e.sender, e.receiver, e.channel) for e in circ.edges},
    }
    return out


def table(out: dict) -> str:
    """The verification numbers of :func:`verify` as markdown tables."""
    V, L = out["d_vocab"], out["length"]
    circuit = out["circuit"]
    lines = [
        f"Repeated half of BOS + {L} distinct random tokens + the same {L} again "
        f"(d_vocab {V}, {out['batch']} sequences, seed {out['seed']}; "
        f"{L - 1} predictions per sequence).",
        "",
        "| model | accuracy | loss (nats) |",
        "|---|---|---|",
    ]
    for k, r in out["ablations"].items():
        if not k.startswith("L") or k.split()[0] in circuit:
            lines.append(f"| {k} | {r['accuracy']:.3f} | {r['loss']:.3g} |")
    other = [r for k, r in out["ablations"].items() if k[0] == "L" and k.split()[0] not in circuit]
    full = out["ablations"]["full model"]
    worst = max(abs(r["loss"] - full["loss"]) for r in other)
    acc = min(r["accuracy"] for r in other)
    lines.append(
        f"| any other head zero- or mean-ablated (4 heads) | >= {acc:.3f} | change <= {worst:.1g} |"
    )
    rt = out["random_tokens"]
    lines += [
        "",
        f"On `repeated_tokens.fixed` (tokens may repeat inside a copy, so some predictions are "
        f"ambiguous): model accuracy {rt['model']['accuracy']:.3f}, the numpy induction "
        f"algorithm {rt['reference']['accuracy']:.3f}; largest logit difference from it "
        f"{rt['max_abs_logit_error']:.1g}.",
        "",
        "| head | previous-token score | induction score | duplicate-token score |",
        "|---|---|---|---|",
    ]
    det = [
        np.asarray(out["detectors"][k]) for k in ("previous_token", "induction", "duplicate_token")
    ]
    for i in range(det[0].shape[0]):
        for h in range(det[0].shape[1]):
            lines.append(f"| L{i}H{h} | " + " | ".join(f"{d[i, h]:.3f}" for d in det) + " |")
    lines += [
        "",
        "Faithfulness (`circuits.faithfulness`, metric `repeated_half_logprob`):",
        "",
        "| complement ablated | circuit | " + " | ".join(f"without {n}" for n in circuit) + " |",
        "|---|---|" + "---|" * len(circuit),
    ]
    for method, f in out["faithfulness"].items():
        cells = [f"{f['circuit']:.4f}"] + [f"{f[f'without {n}'] + 0.0:.4f}" for n in circuit]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    pp = out["path_patching"]
    lines += [
        "",
        f"Path patching (corrupted: an independent sequence; score 1 = the corrupted "
        f"metric {pp['corrupted']:.2f}, 0 = clean {pp['clean']:.2g}):",
        "",
        "| sender | " + " | ".join(pp["scores"]) + " |",
        "|---|" + "---|" * len(pp["scores"]),
    ]
    n_layers = len(pp["scores"]["logits"])
    for i in range(n_layers):
        for h in range(len(pp["scores"]["logits"][i])):
            cells = []
            for s in pp["scores"].values():
                cells.append(f"{s[i][h] + 0.0:.3f}" if i < len(s) else "-")  # no "-0.000"
            lines.append(f"| L{i}H{h} | " + " | ".join(cells) + " |")
    dp = out["direct_paths"]
    lines += [
        "",
        f"`circuits.greedy_prune` (mean ablation, threshold 1e-4) removes "
        f"{', '.join(out['greedy_prune']['removed'])}; what it keeps equals the circuit: "
        f"{out['greedy_prune']['kept_equals_circuit']}.",
        f"Direct-path graph, ancestors of the logits: {len(dp['edges'])} edges, equal to the "
        f"shipped circuit: {dp['equal_to_circuit']}.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Verify the constructed induction model.")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--length", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(table(verify(batch=args.batch, length=args.length, seed=args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
