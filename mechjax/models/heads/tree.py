"""`Tree`: the static candidate tree of speculative decoding (Medusa's "medusa_choices").

A tree is a tuple of paths. Path `(i_0, ..., i_d)` is the node "top-`i_d` candidate of draft
head `d`, continuing its parent `(i_0, ..., i_{d-1})`"; the root, not a node, is the base
model's own next token. With `tree = Tree(((0,), (1,), (0, 0)))` the nodes are: head 0's
best and second-best token after the root, and head 1's best token after head 0's best.

Node order: by depth, then lexicographically (`.paths`), so every parent precedes its
children; `draft_tree` returns tokens in this order, and a verification forward that feeds
`[root, nodes...]` reads position offsets `depth` and the mask `ancestors` in it.
"""

from __future__ import annotations

import numpy as np


class Tree:
    """A validated candidate tree (host-side, hashable: usable as a static jit argument).

    Args:
      paths: sequence of paths, each a non-empty sequence of ints >= 0 (lists work).
      max_depth: if given, the longest allowed path (the number of draft heads).
      top_k: if given, every index must be `< top_k` (the candidates kept per head).

    Attributes:
      paths: tuple of tuples, in node order (depth, then lexicographic).
      n_nodes: number of nodes (the root is not one).
      depth: int32 `[n_nodes]`, `len(path)`: the node's offset after the root (the root is
        at offset 0); node `n` is drafted by head `depth[n] - 1`.
      parent: int32 `[n_nodes]`, the parent's node index, -1 for depth-1 nodes (the root).
      ancestors: bool `[n_nodes, n_nodes]`, `ancestors[n, m]` iff node `m` is on the path to
        node `n`, `n` itself included (the root, an ancestor of every node, has no column).

    Raises:
      ValueError naming the bad path and what is valid: a path that is empty, not ints, a
      duplicate, deeper than `max_depth`, with an index >= `top_k` or < 0, or whose prefix
      is missing from the tree.
    """

    def __init__(self, paths, *, max_depth: int | None = None, top_k: int | None = None):
        if isinstance(paths, Tree):
            paths = paths.paths
        norm = []
        for p in paths:
            if isinstance(p, (int, np.integer)) or not hasattr(p, "__iter__"):
                raise ValueError(
                    f"tree path {p!r} is not a sequence of ints; a path is a tuple such as "
                    f"(0,) (head 0's best token) or (0, 1) (then head 1's second best)."
                )
            t = tuple(p)
            if not t:
                raise ValueError("tree path () is empty; the root is implicit, give (0,), ...")
            if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in t):
                raise ValueError(f"tree path {t!r} must hold ints (candidate ranks >= 0).")
            t = tuple(int(i) for i in t)
            if min(t) < 0:
                raise ValueError(f"tree path {t}: candidate ranks must be >= 0.")
            norm.append(t)
        seen = set()
        for t in norm:
            if t in seen:
                raise ValueError(f"tree path {t} appears twice; each node must be listed once.")
            seen.add(t)
        for t in norm:
            if max_depth is not None and len(t) > max_depth:
                raise ValueError(
                    f"tree path {t} has depth {len(t)} but there are only {max_depth} draft "
                    f"heads: paths may have at most {max_depth} entries."
                )
            if top_k is not None and max(t) >= top_k:
                raise ValueError(
                    f"tree path {t} asks for candidate rank {max(t)} but top_k={top_k}: "
                    f"ranks must be in 0..{top_k - 1}."
                )
            if len(t) > 1 and t[:-1] not in seen:
                raise ValueError(
                    f"tree path {t} needs its prefix {t[:-1]} in the tree (every prefix of a "
                    f"path must be a node); add {t[:-1]} or remove {t}."
                )
        self.paths: tuple[tuple[int, ...], ...] = tuple(sorted(norm, key=lambda t: (len(t), t)))
        index = {t: i for i, t in enumerate(self.paths)}
        n = len(self.paths)
        self.n_nodes = n
        self.depth = np.asarray([len(t) for t in self.paths], np.int32)
        self.parent = np.asarray([index.get(t[:-1], -1) for t in self.paths], np.int32)
        anc = np.zeros((n, n), bool)
        for i, t in enumerate(self.paths):
            for d in range(1, len(t) + 1):
                anc[i, index[t[:d]]] = True
        self.ancestors = anc

    def __eq__(self, other):
        return isinstance(other, Tree) and other.paths == self.paths

    def __hash__(self):
        return hash(("Tree", self.paths))

    def __repr__(self):
        return f"Tree({self.paths!r})"
