"""Canonical circuits of the zoo models, found by path patching and verified (issue 17, item 5).

    python -m experiments.zoo.circuits MODEL TASK [--n 128] [--tau 0.04] [--json OUT]

Discovery runs on the task's "val" split (a split-data model) and the verification on
"test", so no choice is tuned on the prompts the numbers come from. Legacy models (trained
on the legacy generators) use two disjoint seeds of the legacy generator instead, and their
circuits are circuits of memorised templates (say so wherever they are shown).

Discovery (Wang et al.'s procedure, made generic):

1. *Direct heads*: path patching from every head to the logits (the last layer's
   `hook_resid_post` at each prompt's last token, a per-example position mask). A head's
   score is Merullo et al.'s normalised path-patching effect `(m - m_clean) /
   (m_corrupted - m_clean)` (1 = the head's direct path carries the whole clean-corrupted
   difference). Heads with `|score| >= tau` are nodes; positive ones are the task's movers
   (IOI's name movers), negative ones negative movers.
2. *Upstream heads*: for each node head and each of its inputs (q at the last token; k and
   v at every position), path patching from every earlier head to that input; heads with
   `|score| >= tau` become nodes, with an edge (sender -> receiver, channel). Repeated to
   `depth` levels.
3. *MLPs*: activation patching of each `hook_mlp_out` (the corrupted value into the clean
   run); MLPs with `|effect| >= tau` (normalised the same way) are nodes.
4. *Minimality*: on val, members whose removal (mean-ablating it with the rest of the
   circuit kept) changes the metric by less than `min_drop` of the clean-empty difference
   are dropped, the least necessary first, until every member is necessary.

Verification on test: faithfulness = (m(C) - m(empty)) / (m(full) - m(empty)) with every
node outside C mean-ablated over the corrupted prompts (`mechjax.analysis.circuits`), and
per member the drop of that faithfulness when it alone is removed.

Roles come from where each head attends from its query position (the named spans of the
task's prompts: IOI's IO / S1 / S2 ..., greater-than's YY, docstring's parameter names) and
from how it connects (`ROLE_RULES`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import mechjax as mj
from mechjax import zoo
from mechjax.analysis import circuits as C
from mechjax.analysis import path_patching
from mechjax.data import tasks as T
from mechjax.zoo import data as D
from mechjax.zoo import evaluate as E

METRICS = {"ioi": "logit_diff", "greater_than": "prob_diff", "docstring": "logit_diff"}


def task_batch(name: str, task: str, n: int, which: str):
    """(model, params, batch): `n` encoded prompts of the model's `which` prompts ("discover"
    or "verify": val / test for split-data models, two legacy seeds otherwise), with the
    generator options the model was trained with."""
    model, params, tok = zoo.load(name)
    card = zoo.card(name)
    mixture = card["data"].get("task_share", 0) > 0
    split_data = bool(card["data"].get("split_data"))
    if mixture:
        options = E.mixture_args(card)["options"]
    else:
        options = {"docstring": {"names": E.docstring_names(tok)}}
    if split_data:
        split, seed = ("val" if which == "discover" else "test"), D.EVAL_SEED
    else:
        split, seed = None, (D.EVAL_SEED + 1 if which == "discover" else D.EVAL_SEED)
    prompts = D.task_prompts(task, n, seed, options, split)
    ok = np.flatnonzero(T.encodable(prompts, tok))
    batch = T.encode(prompts.take(ok), tok)
    L = model.cfg.n_ctx
    keep = np.flatnonzero(batch.last < L)
    return model, params, batch.take(keep), dict(split=split, seed=seed, options=options)


def metric_of(batch, kind: str):
    """The task's metric on a batch: mean logit (or probability) difference at each prompt's
    last token."""
    if kind == "logit_diff":
        return lambda logits: T.logit_diff(logits, batch).mean()
    return lambda logits: T.prob_diff(logits, batch).mean()


def _last_mask(batch):
    m = np.zeros(batch.tokens.shape, bool)
    m[np.arange(len(batch.last)), batch.last] = True
    return m


def _norm(x, m_clean, m_corr):
    return (np.asarray(x) - m_clean) / (m_corr - m_clean)


def _heads_over(scores, tau):
    return [(int(layer), int(h)) for layer, h in zip(*np.nonzero(np.abs(scores) >= tau))]


def discover(model, params, batch, metric, *, tau=0.04, depth=3, mlp_tau=None):
    """Nodes and edges of the circuit by iterated path patching (module doc, steps 1-3).

    Returns dict: heads {(layer, head): score}, mlps {layer: effect}, edges
    [(sender, receiver, channel, score)] with node names "L{l}H{h}", "MLP{l}", "logits"."""
    clean, corr = batch.tokens, batch.corrupted
    m_clean = float(metric(mj.run(model, params, clean)[0]))
    m_corr = float(metric(mj.run(model, params, corr)[0]))
    n_layers = model.cfg.n_layers
    last = _last_mask(batch)
    direct = path_patching.path_patch(
        model, params, clean, corr, metric, [(f"blocks.{n_layers - 1}.hook_resid_post", None, last)]
    )
    direct = _norm(direct, m_clean, m_corr)
    heads = {hd: float(direct[hd]) for hd in _heads_over(direct, tau)}
    edges = [(f"L{l}H{h}", "logits", "resid", s) for (l, h), s in heads.items()]
    frontier = list(heads)
    for _ in range(depth - 1):
        new = []
        for layer, h in frontier:
            if layer == 0:
                continue
            for ch in ("q", "k", "v"):
                pos = last if ch == "q" else None
                rec = [(f"blocks.{layer}.attn.hook_{ch}", [h], pos)]
                s = path_patching.path_patch(
                    model, params, clean, corr, metric, rec, sender_layers=range(layer)
                )
                s = _norm(s, m_clean, m_corr)
                for sl, sh in _heads_over(s, tau):
                    edges.append((f"L{sl}H{sh}", f"L{layer}H{h}", ch, float(s[sl, sh])))
                    if (sl, sh) not in heads:
                        heads[(sl, sh)] = float(s[sl, sh])
                        new.append((sl, sh))
        frontier = new
        if not frontier:
            break
    mlps = {}
    if not model.cfg.attn_only:
        _, kc = mj.run(model, params, corr, cache="blocks.*.hook_mlp_out")
        for layer in range(n_layers):
            site = f"blocks.{layer}.hook_mlp_out"
            lg, _ = mj.run(model, params, clean, interventions=[mj.patch(site, kc[site])])
            eff = float(_norm(float(metric(lg)), m_clean, m_corr))
            if abs(eff) >= (tau if mlp_tau is None else mlp_tau):
                mlps[layer] = eff
                edges.append((f"MLP{layer}", "logits", "resid", eff))
    return dict(heads=heads, mlps=mlps, edges=edges, clean=m_clean, corrupted=m_corr)


def node_mask(model, heads, mlps):
    """A `mechjax.analysis.circuits` node mask from head and MLP sets."""
    c = C.full_circuit(model, False)
    c = {k: np.array(v) for k, v in c.items()}
    for layer, h in heads:
        c["heads"][layer, h] = True
    if "mlps" in c:
        for layer in mlps:
            c["mlps"][layer] = True
    return c


def _members(heads, mlps):
    return [("head", hd) for hd in sorted(heads)] + [("mlp", m) for m in sorted(mlps)]


def removal_drops(model, params, batch, metric, heads, mlps):
    """Faithfulness of the circuit and, per member, of the circuit without it (one vmapped
    program), with the complement mean-ablated over the corrupted prompts."""
    members = _members(heads, mlps)
    masks = [node_mask(model, heads, mlps)]
    for kind, x in members:
        hs = [h for h in heads if not (kind == "head" and h == x)]
        ms = [m for m in mlps if not (kind == "mlp" and m == x)]
        masks.append(node_mask(model, hs, ms))
    masks += [node_mask(model, [], []), C.full_circuit(model, True)]
    stack = {k: np.stack([np.asarray(m[k], bool) for m in masks]) for k in masks[0]}
    vals = np.asarray(
        C.evaluate(
            model,
            params,
            batch.tokens,
            metric,
            stack,
            method="mean",
            reference_tokens=batch.corrupted,
        )
    )
    empty, full = vals[-2], vals[-1]
    faith = (vals[:-2] - empty) / (full - empty)
    return dict(
        faithfulness=float(faith[0]),
        without={_name(k, x): float(f) for (k, x), f in zip(members, faith[1:])},
        metric=float(vals[0]),
        full=float(full),
        empty=float(empty),
    )


def _name(kind, x):
    return f"L{x[0]}H{x[1]}" if kind == "head" else f"MLP{x}"


def prune(model, params, batch, metric, heads, mlps, min_drop=0.02):
    """Drop members whose removal costs less than `min_drop` faithfulness, least first."""
    heads, mlps = dict(heads), dict(mlps)
    while len(heads) + len(mlps) > 1:
        r = removal_drops(model, params, batch, metric, heads, mlps)
        drops = {k: r["faithfulness"] - v for k, v in r["without"].items()}
        worst = min(drops, key=drops.get)
        if drops[worst] >= min_drop:
            break
        if worst.startswith("MLP"):
            mlps.pop(int(worst[3:]))
        else:
            layer, h = worst[1:].split("H")
            heads.pop((int(layer), int(h)))
    return heads, mlps


def attends_to(model, params, batch, heads, query="last"):
    """Per head: the named span (of `batch.positions`, plus "S1+1" when S1 is named) that
    receives the most attention from the query position, and that share."""
    _, cache = mj.run(model, params, batch.tokens, cache="blocks.*.attn.hook_pattern")
    n = len(batch)
    spans = {r: p for r, p in batch.positions.items() if (p >= 0).all() and r != "end"}
    if "S1" in spans:
        spans["S1+1"] = spans["S1"] + 1
    out = {}
    for layer, h in heads:
        pat = np.asarray(cache[f"blocks.{layer}.attn.hook_pattern"])[:, h]  # [n, q, k]
        rows = pat[np.arange(n), batch.last]  # [n, k]
        share = {r: float(rows[np.arange(n), p].mean()) for r, p in spans.items()}
        share["BOS"] = float(rows[:, 0].mean())
        best = max(share, key=share.get)
        out[f"L{layer}H{h}"] = (best, share[best])
    return out


# role of a head from its place in the circuit and where it attends (from the last token)
ROLE_RULES = {
    "ioi": {"direct+": "name_mover", "direct-": "negative_name_mover", "q": "s_inhibition",
            "k": "induction_or_previous", "v": "duplicate_or_induction"},
    "greater_than": {"direct+": "year_mover", "direct-": "negative_mover", "q": "upstream_q",
                     "k": "upstream_k", "v": "upstream_v"},
    "docstring": {"direct+": "arg_mover", "direct-": "negative_arg_mover", "q": "upstream_q",
                  "k": "upstream_k", "v": "upstream_v"},
}  # fmt: skip


# the span a mover must attend to (from the last token) to get the mover role
MOVER_SPAN = {"ioi": ("IO",), "greater_than": ("YY",), "docstring": ()}


def roles(task, heads, mlps, edges, look=None):
    """Role per node: from its strongest edge (to the logits: mover / negative mover; into a
    head's q / k / v: `ROLE_RULES`), and a positive direct head that does not attend most to
    the answer's span (`MOVER_SPAN`, when the task names one) is "direct_other"."""
    rules, look = ROLE_RULES[task], look or {}
    out = {}
    for (layer, h), score in heads.items():
        nm = f"L{layer}H{h}"
        to = [e for e in edges if e[0] == nm]
        if any(e[1] == "logits" for e in to):
            out[nm] = rules["direct+" if score > 0 else "direct-"]
            span = look.get(nm, (None,))[0]
            if score > 0 and MOVER_SPAN[task] and span not in MOVER_SPAN[task]:
                out[nm] = "direct_other"
        elif to:
            out[nm] = rules[max(to, key=lambda e: abs(e[3]))[2]]
    for m in mlps:
        out[f"MLP{m}"] = "mlp"
    return out


def find(name, task, n=128, tau=0.04, depth=3, min_drop=0.02):
    t0 = time.time()
    model, params, disc, info = task_batch(name, task, n, "discover")
    metric = metric_of(disc, METRICS[task])
    found = discover(model, params, disc, metric, tau=tau, depth=depth)
    heads, mlps = prune(model, params, disc, metric, found["heads"], found["mlps"], min_drop)
    kept = {f"L{l}H{h}" for l, h in heads} | {f"MLP{m}" for m in mlps} | {"logits"}
    edges = [e for e in found["edges"] if e[0] in kept and e[1] in kept]
    _, _, test, test_info = task_batch(name, task, n, "verify")
    tmetric = metric_of(test, METRICS[task])
    ver = removal_drops(model, params, test, tmetric, heads, mlps)
    look = attends_to(model, params, test, heads)
    return dict(
        model=name,
        task=task,
        metric=METRICS[task],
        discover=dict(split=info["split"], seed=info["seed"], n=len(disc), tau=tau,
                      depth=depth, min_drop=min_drop, found=len(found["heads"]),
                      clean=found["clean"], corrupted=found["corrupted"]),
        verify=dict(split=test_info["split"], seed=test_info["seed"], n=len(test), **ver),
        heads={f"L{l}H{h}": s for (l, h), s in sorted(heads.items())},
        mlps={f"MLP{m}": s for m, s in sorted(mlps.items())},
        edges=[dict(sender=a, receiver=b, channel=c, score=s) for a, b, c, s in edges],
        roles=roles(task, heads, mlps, edges, look),
        attends_to={k: dict(span=v[0], share=v[1]) for k, v in look.items()},
        seconds=time.time() - t0,
    )  # fmt: skip


def to_circuit(r):
    """The result of :func:`find` as a shippable `mechjax.zoo.circuits.Circuit` (nodes: the
    members and the logits; edges: the measured paths between them)."""
    from mechjax.zoo.circuits import Circuit

    members = list(r["heads"]) + list(r["mlps"])
    v, d = r["verify"], r["discover"]
    return Circuit(
        model=r["model"],
        task=r["task"],
        nodes=members + ["logits"],
        edges=[(e["sender"], e["receiver"], e["channel"], e["score"]) for e in r["edges"]],
        roles=r["roles"],
        metric=(
            f"mean {r['metric'].replace('_', ' ')} at the last prompt token on {v['n']} "
            f"{v['split'] or 'legacy (seed ' + str(v['seed']) + ')'} prompts"
        ),
        faithfulness=v["faithfulness"],
        ablation="mean",
        minimality=v["without"],
        notes=(
            f"found by experiments/zoo/circuits.py on {d['n']} {d['split'] or 'legacy'} "
            f"prompts (tau {d['tau']}, depth {d['depth']}, min_drop {d['min_drop']}); the "
            "complement is mean-ablated over the corrupted prompts"
        ),
    )


def markdown(r) -> str:
    v = r["verify"]
    lines = [
        f"**{r['model']} / {r['task']}** ({r['metric']}; discovered on {r['discover']['split']} "
        f"n={r['discover']['n']}, verified on {v['split']} n={v['n']}): faithfulness "
        f"{v['faithfulness']:.2f} (metric: circuit {v['metric']:.2f}, full {v['full']:.2f}, "
        f"everything mean-ablated {v['empty']:.2f})",
        "",
        "| node | role | path-patching score | attends to (from the last token) | "
        "faithfulness without it |",
        "|---|---|---|---|---|",
    ]
    for nm, s in {**r["heads"], **r["mlps"]}.items():
        at = r["attends_to"].get(nm)
        at = f"{at['span']} {at['share']:.2f}" if at else ""
        lines.append(
            f"| {nm} | {r['roles'].get(nm, '')} | {s:.2f} | {at} | {v['without'][nm]:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("task", choices=sorted(METRICS))
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--tau", type=float, default=0.04)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--min-drop", type=float, default=0.02)
    p.add_argument("--json", default=None)
    p.add_argument("--save", action="store_true", help="write it to mechjax/zoo/circuits/")
    a = p.parse_args(argv)
    r = find(a.model, a.task, a.n, a.tau, a.depth, a.min_drop)
    print(markdown(r))
    print(f"({r['seconds']:.0f} s)", file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    if a.save:
        print(to_circuit(r).save(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
