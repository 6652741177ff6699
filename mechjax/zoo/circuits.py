"""Circuits as data: the nodes, edges and roles of a circuit in a zoo model, shipped as JSON.

    import mechjax as mj
    from mechjax.analysis import circuits as ac
    c = mj.zoo.circuit("constructed_induction", "induction")
    c.heads                      # ((0, 1), (1, 2))
    c.roles["L1H2"]              # "induction"
    masks = c.masks(model)       # the node masks of mechjax.analysis.circuits
    ac.faithfulness(model, params, tokens, metric, masks, method=c.ablation)

Nodes
=====
A :class:`Node` is one component, named as `mechjax.analysis.circuits` names its nodes, plus
the non-ablatable ends of the residual stream:

    name         kind        layer  head  site read or written
    "embed"      embed       None   None  hook_embed            (token embedding)
    "pos_embed"  pos_embed   None   None  hook_pos_embed        (learned positions)
    "L1H3"       head        1      3     blocks.1.attn.hook_z  (head 3 of layer 1)
    "MLP2"       mlp         2      None  blocks.2.hook_mlp_out
    "logits"     logits      None   None  hook_logits           (the unembedding)

`Node.site` gives the site; a head's selection there is its `head` (as in `mj.ablate(site,
heads=[head])`).

Edges
=====
An :class:`Edge` `(sender, receiver, channel)` is a direct path through the residual
stream from the sender's output into one input of the receiver: `channel` is "q", "k" or
"v" for a head receiver (the query, key or value it computes from the stream), "mlp_in"
for an MLP and "resid" for the logits (the final residual stream). A sender precedes its
receiver in the forward order (embeddings, then layer by layer heads before the MLP, then
the logits). Path patching (`mechjax.analysis.path_patching`) measures exactly these
paths for head senders; an edge may carry its measured `score`.

Roles
=====
`roles` maps node names to one snake_case role each; the canonical vocabulary is
:data:`ROLES` (Wang et al.'s IOI roles, Elhage et al.'s induction circuit, Heimersheim &
Janiak's docstring movers); a task may name its own (e.g. greater-than's). Nodes without a
functional role (the embeddings, the logits) need none.

The measurement
===============
`metric` says, in words, what the circuit's numbers measure (the metric and the data);
`faithfulness` is `mechjax.analysis.circuits.faithfulness` of the node set with the
complement ablated by `ablation` ("mean", "zero" or "resample"); `minimality` maps each
member node to the faithfulness with that member also ablated (each well below
`faithfulness` when every member is necessary). `notes` is free text (how it was found,
caveats).

Files
=====
Shipped circuits live in `mechjax/zoo/circuits/{model}__{task}.json` (package data, as the
weights are); :func:`load` reads one, :func:`available` lists them, :meth:`Circuit.save`
writes one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from types import MappingProxyType

CIRCUITS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "circuits")
FORMAT = "mechjax.circuit/1"

KINDS = ("embed", "pos_embed", "head", "mlp", "logits")
# A receiver kind -> the input channels it has.
CHANNELS = {"head": ("q", "k", "v"), "mlp": ("mlp_in",), "logits": ("resid",)}
ABLATIONS = ("mean", "zero", "resample")
ROLES = (
    "previous_token",
    "induction",
    "duplicate_token",
    "name_mover",
    "negative_name_mover",
    "backup_name_mover",
    "s_inhibition",
    "mover",
    "backup",
)

_FIXED = {"embed": "hook_embed", "pos_embed": "hook_pos_embed", "logits": "hook_logits"}
_HEAD = re.compile(r"L(\d+)H(\d+)")
_MLP = re.compile(r"MLP(\d+)")
_ROLE = re.compile(r"[a-z][a-z0-9_]*")


def _parse(name) -> tuple[str, int | None, int | None]:
    """(kind, layer, head) of a node name."""
    if isinstance(name, str):
        if name in _FIXED:
            return name, None, None
        if m := _HEAD.fullmatch(name):
            return "head", int(m[1]), int(m[2])
        if m := _MLP.fullmatch(name):
            return "mlp", int(m[1]), None
    raise ValueError(
        f"bad node name {name!r}; nodes are 'L{{layer}}H{{head}}' (e.g. 'L1H3'), "
        f"'MLP{{layer}}', 'embed', 'pos_embed' or 'logits'"
    )


@dataclasses.dataclass(frozen=True)
class Node:
    """One circuit node: `name` ("L1H3", "MLP0", "embed", "pos_embed", "logits") and its fields.

    `Node.parse(name)` fills the structured fields from the name; given explicitly (as in
    the JSON files) they must agree with it.
    """

    name: str
    kind: str
    layer: int | None = None
    head: int | None = None

    def __post_init__(self):
        want = _parse(self.name)
        if (self.kind, self.layer, self.head) != want:
            raise ValueError(
                f"Node {self.name!r}: fields kind={self.kind!r}, layer={self.layer}, "
                f"head={self.head} disagree with the name (kind, layer, head = {want})"
            )

    @classmethod
    def parse(cls, name: str) -> Node:
        """The node named "L{layer}H{head}", "MLP{layer}", "embed", "pos_embed" or "logits"."""
        return cls(name, *_parse(name))

    @property
    def site(self) -> str:
        """The site of the node's output (a head's: `blocks.{L}.attn.hook_z`, at `head`)."""
        if self.kind == "head":
            return f"blocks.{self.layer}.attn.hook_z"
        if self.kind == "mlp":
            return f"blocks.{self.layer}.hook_mlp_out"
        return _FIXED[self.kind]

    def order(self) -> tuple[float, int]:
        """Place in the forward pass: embeddings < layer 0 heads < MLP0 < layer 1 ... < logits."""
        if self.kind in ("embed", "pos_embed"):
            return (-1, 0)
        if self.kind == "logits":
            return (math.inf, 0)
        return (self.layer, 0 if self.kind == "head" else 1)


@dataclasses.dataclass(frozen=True)
class Edge:
    """A direct path `sender -> receiver` into the receiver's input `channel` (q/k/v, mlp_in, resid).

    `score`: optional, the measured effect of the path (e.g. Merullo et al.'s normalised
    path-patching score); None for an edge that holds by construction.
    """

    sender: str
    receiver: str
    channel: str
    score: float | None = None

    def __post_init__(self):
        if self.score is not None:
            object.__setattr__(self, "score", float(self.score))
        s, r = Node.parse(self.sender), Node.parse(self.receiver)
        if s.kind == "logits":
            raise ValueError(f"Edge {self}: the logits send nothing")
        valid = CHANNELS.get(r.kind)
        if valid is None:
            raise ValueError(f"Edge {self}: {r.kind} {self.receiver!r} receives nothing")
        if self.channel not in valid:
            raise ValueError(
                f"Edge {self.sender} -> {self.receiver}: channel {self.channel!r}; a "
                f"{r.kind} receives through {valid}"
            )
        if not s.order() < r.order():
            raise ValueError(
                f"Edge {self.sender} -> {self.receiver}: the sender does not come before the "
                f"receiver in the forward pass"
            )

    def __str__(self):
        return f"{self.sender} -> {self.receiver}.{self.channel}"


def _frozen_map(d, what) -> Mapping:
    if not isinstance(d, Mapping):
        raise ValueError(f"Circuit.{what} must be a mapping, got {type(d).__name__}")
    return MappingProxyType(dict(d))


@dataclasses.dataclass(frozen=True)
class Circuit:
    """A circuit of `task` in zoo model `model`: nodes, edges, roles and how well it explains.

    Args:
      model: the zoo name (`mj.zoo.names()`, or a constructed model's name).
      task: the task name (as in `mechjax.data.tasks`, or e.g. "induction").
      nodes: the member nodes (:class:`Node`, or names); sorted in forward order.
      edges: the direct paths between members (:class:`Edge`, or (sender, receiver,
        channel) triples); every endpoint must be a member.
      roles: node name -> role (snake_case; canonical ones in :data:`ROLES`).
      metric: the metric and data the numbers below were measured with, in words.
      faithfulness: `mechjax.analysis.circuits.faithfulness` with the complement ablated
        by `ablation` (None if not measured).
      ablation: "mean", "zero" or "resample".
      minimality: member name -> faithfulness with that member ablated too.
      notes: free text.
    """

    model: str
    task: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...] = ()
    roles: Mapping[str, str] = dataclasses.field(default_factory=dict)
    metric: str = ""
    faithfulness: float | None = None
    ablation: str = "mean"
    minimality: Mapping[str, float] = dataclasses.field(default_factory=dict)
    notes: str = ""

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        for f in ("model", "task"):
            v = getattr(self, f)
            if not isinstance(v, str) or not v or "__" in v or "/" in v:
                raise ValueError(
                    f"Circuit.{f} must be a non-empty string without '__' or '/' (it names "
                    f"the file {{model}}__{{task}}.json), got {v!r}"
                )
        nodes = [n if isinstance(n, Node) else Node.parse(n) for n in self.nodes]
        names = [n.name for n in nodes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"Circuit {self.model}/{self.task}: repeated nodes {dup}")
        set_("nodes", tuple(sorted(nodes, key=lambda n: (n.order(), n.head or 0, n.name))))
        edges = [e if isinstance(e, Edge) else Edge(*e) for e in self.edges]
        for e in edges:
            missing = [x for x in (e.sender, e.receiver) if x not in names]
            if missing:
                raise ValueError(
                    f"Circuit {self.model}/{self.task}: edge {e} names {missing}, not among "
                    f"the nodes {names}"
                )
        keys = [(e.sender, e.receiver, e.channel) for e in edges]
        if len(set(keys)) != len(keys):
            raise ValueError(f"Circuit {self.model}/{self.task}: repeated edges")
        order = {n: i for i, n in enumerate(n.name for n in self.nodes)}
        set_(
            "edges",
            tuple(sorted(edges, key=lambda e: (order[e.receiver], e.channel, order[e.sender]))),
        )
        roles = _frozen_map(self.roles, "roles")
        for k, v in roles.items():
            if k not in names:
                raise ValueError(f"Circuit {self.model}/{self.task}: role for {k!r}, not a node")
            if not isinstance(v, str) or not _ROLE.fullmatch(v):
                raise ValueError(
                    f"Circuit {self.model}/{self.task}: role {v!r} of {k} must be snake_case "
                    f"(canonical roles: {ROLES})"
                )
        set_("roles", roles)
        if self.ablation not in ABLATIONS:
            raise ValueError(f"Circuit.ablation must be one of {ABLATIONS}, got {self.ablation!r}")
        if self.faithfulness is not None:
            set_("faithfulness", float(self.faithfulness))
        mini = _frozen_map(self.minimality, "minimality")
        bad = [k for k in mini if k not in names]
        if bad:
            raise ValueError(f"Circuit {self.model}/{self.task}: minimality for non-members {bad}")
        set_("minimality", MappingProxyType({k: float(v) for k, v in mini.items()}))

    def __hash__(self):
        return hash(
            (self.model, self.task, self.nodes, self.edges, tuple(sorted(self.roles.items())))
        )

    # -- views --------------------------------------------------------------------------------

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    @property
    def heads(self) -> tuple[tuple[int, int], ...]:
        """(layer, head) of every head node, in forward order."""
        return tuple((n.layer, n.head) for n in self.nodes if n.kind == "head")

    @property
    def mlps(self) -> tuple[int, ...]:
        return tuple(n.layer for n in self.nodes if n.kind == "mlp")

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"{name!r} is not a node of {self.model}/{self.task}: {self.node_names}")

    def by_role(self, role: str) -> tuple[str, ...]:
        """Names of the nodes with `role`, in forward order."""
        return tuple(n for n in self.node_names if self.roles.get(n) == role)

    def edges_into(self, receiver: str, channel: str | None = None) -> tuple[Edge, ...]:
        return tuple(
            e
            for e in self.edges
            if e.receiver == receiver and (channel is None or e.channel == channel)
        )

    def masks(self, model):
        """The ablatable members (heads, MLPs) as `mechjax.analysis.circuits` node masks of `model`."""
        from mechjax.analysis import circuits as _circuits

        members = [n.name for n in self.nodes if n.kind in ("head", "mlp")]
        return _circuits.circuit_from_nodes(model, members)

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "model": self.model,
            "task": self.task,
            "nodes": [dataclasses.asdict(n) for n in self.nodes],
            "edges": [dataclasses.asdict(e) for e in self.edges],
            "roles": dict(self.roles),
            "metric": self.metric,
            "faithfulness": self.faithfulness,
            "ablation": self.ablation,
            "minimality": dict(self.minimality),
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Circuit:
        d = dict(d)
        fmt = d.pop("format", FORMAT)
        if fmt != FORMAT:
            raise ValueError(f"Circuit.from_dict: format {fmt!r}, this version reads {FORMAT!r}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ValueError(f"Circuit.from_dict: unknown keys {unknown}; valid: {sorted(fields)}")
        d["nodes"] = tuple(
            Node(**n) if isinstance(n, Mapping) else Node.parse(n) for n in d["nodes"]
        )
        d["edges"] = tuple(
            Edge(**e) if isinstance(e, Mapping) else Edge(*e) for e in d.get("edges", ())
        )
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Circuit:
        return cls.from_dict(json.loads(text))

    def save(self, folder: str | None = None) -> str:
        """Writes `{folder}/{model}__{task}.json` (default: the package's circuits/); returns the path."""
        folder = folder or CIRCUITS_DIR
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, file_name(self.model, self.task))
        with open(path, "w") as f:
            f.write(self.to_json())
        return path


def file_name(model: str, task: str) -> str:
    return f"{model}__{task}.json"


def available(folder: str | None = None) -> list[tuple[str, str]]:
    """The (model, task) pairs of the shipped circuits."""
    folder = folder or CIRCUITS_DIR
    if not os.path.isdir(folder):
        return []
    out = []
    for f in sorted(os.listdir(folder)):
        if f.endswith(".json") and "__" in f:
            model, task = f[: -len(".json")].split("__", 1)
            out.append((model, task))
    return out


def load(model: str, task: str, folder: str | None = None) -> Circuit:
    """The shipped circuit of `task` in `model` (ValueError listing the available pairs)."""
    folder = folder or CIRCUITS_DIR
    path = os.path.join(folder, file_name(str(model), str(task)))
    if not os.path.isfile(path):
        pairs = ", ".join(f"({m!r}, {t!r})" for m, t in available(folder)) or "none"
        raise ValueError(
            f"no shipped circuit for model {model!r}, task {task!r}; available: {pairs}"
        )
    with open(path) as f:
        c = Circuit.from_json(f.read())
    if (c.model, c.task) != (model, task):
        raise ValueError(f"{path} holds the circuit of ({c.model!r}, {c.task!r})")
    return c


__all__ = [
    "ABLATIONS",
    "CHANNELS",
    "CIRCUITS_DIR",
    "KINDS",
    "ROLES",
    "Circuit",
    "Edge",
    "Node",
    "available",
    "file_name",
    "load",
]
