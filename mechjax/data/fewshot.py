"""Few-shot relabelling task of Singh et al. 2024 ("What needs to go right for an induction head?").

Each sequence is `[x1, y1, x2, y2, xq]`: two exemplar-label pairs and a query exemplar. The
context holds one exemplar of the query's class and one of a distractor class, in random
order. Labels are re-drawn for every sequence: an unordered pair of the `n_labels` labels is
chosen, its order permuted, the query's class gets the first label and the distractor the
second. The class-to-label map therefore changes from sequence to sequence, so the only way
to beat chance (loss ln 2, the "plateau") is in-context: find the context exemplar that
matches the query and copy the label that follows it -- an induction head.

Features stand in for the paper's Omniglot ResNet-18 embeddings (which cannot be downloaded
here): fixed Gaussian class vectors plus Gaussian exemplar noise,
`x[c, e] = class_vec[c] + noise * eps[c, e]`, both drawn from `jax.random` keyed by
`(data_seed, c, e)`, so every feature is a pure function of its index.

Evaluators (the paper's four):
  train          train classes, train exemplars, training label pairs
  heldout_pairs  train classes, train exemplars, label pairs never used in training
  new_exemplars  train classes, held-out exemplars of those classes, training label pairs
  new_classes    test classes (never trained on), exemplar 0, training label pairs

Everything is pure JAX and jittable; a batch is a pure function of `(key, step)`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

EVALUATORS = ("train", "heldout_pairs", "new_exemplars", "new_classes")

# evaluator -> (class split, exemplar split, label-pair split)
_EVAL_SPLITS = {
    "train": ("train", "train", "train"),
    "heldout_pairs": ("train", "train", "heldout"),
    "new_exemplars": ("train", "heldout", "train"),
    "new_classes": ("test", "train", "train"),
}

SEQ_LEN = 5  # [x1, y1, x2, y2, xq]
LABEL_POSITIONS = (1, 3)
QUERY_POS = 4


@dataclasses.dataclass(frozen=True)
class FewShot:
    """The few-shot relabelling task; frozen (hashable), validated on construction.

    Args:
      dim: feature width (the model's `d_input`); 512 in the paper.
      n_classes: number of classes; must equal `sum(class_split)`.
      n_exemplars: exemplars per class; must equal `sum(exemplar_split)`.
      class_split: (train, val, test) class counts; the paper uses (50, 1473, 100).
      exemplar_split: (train, held-out) exemplar counts per class; the paper uses (1, 4).
      n_labels: size of the label set (the model's `d_vocab`); pairs are drawn from it.
      n_train_pairs: label pairs used for training; the rest are held out. Default
        `round(0.8 * n_pairs)` (8 of 10 for 5 labels, as in the paper).
      exemplar_noise: std of the per-exemplar noise relative to unit-variance class vectors.
      latent_dim: if > 0, class vectors lie in a fixed random `latent_dim`-dimensional subspace
        (like real image features, which share structure across classes); then training classes
        can span the space new classes come from. 0 = isotropic class vectors in all `dim`.
      feature_scale: multiplies every feature vector.
      data_seed: seed of the feature table (class vectors and exemplar noise).
      pair_split_seed: seed of the train / held-out permutation of label pairs.
    """

    dim: int = 512
    n_classes: int = 1623
    n_exemplars: int = 5
    class_split: tuple[int, int, int] = (50, 1473, 100)
    exemplar_split: tuple[int, int] = (1, 4)
    n_labels: int = 5
    n_train_pairs: int | None = None
    exemplar_noise: float = 0.5
    latent_dim: int = 0
    feature_scale: float = 1.0
    data_seed: int = 0
    pair_split_seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "class_split", tuple(int(c) for c in self.class_split))
        object.__setattr__(self, "exemplar_split", tuple(int(e) for e in self.exemplar_split))
        if self.dim <= 0:
            raise ValueError(f"FewShot.dim must be positive, got {self.dim}.")
        if len(self.class_split) != 3 or sum(self.class_split) != self.n_classes:
            raise ValueError(
                f"FewShot.class_split={self.class_split} must be 3 counts (train, val, test) "
                f"summing to n_classes={self.n_classes}."
            )
        if self.class_split[0] < 2 or self.class_split[2] < 2:
            raise ValueError(
                f"FewShot.class_split={self.class_split}: train and test need >= 2 classes each "
                "(a query class plus a distinct distractor)."
            )
        if len(self.exemplar_split) != 2 or sum(self.exemplar_split) != self.n_exemplars:
            raise ValueError(
                f"FewShot.exemplar_split={self.exemplar_split} must be 2 counts (train, held-out) "
                f"summing to n_exemplars={self.n_exemplars}."
            )
        if min(self.exemplar_split) < 1:
            raise ValueError(
                f"FewShot.exemplar_split={self.exemplar_split}: both parts need >= 1 exemplar."
            )
        if self.n_labels < 3:
            raise ValueError(
                f"FewShot.n_labels={self.n_labels}: need >= 3 labels so that some label pairs "
                "can be held out while every label is still seen in training."
            )
        n = self.n_train_pairs_resolved
        if not 1 <= n < self.n_pairs:
            raise ValueError(
                f"FewShot.n_train_pairs={self.n_train_pairs}: must be in [1, {self.n_pairs - 1}] "
                f"({self.n_pairs} pairs for {self.n_labels} labels; at least one is held out)."
            )
        if self.latent_dim < 0 or self.feature_scale <= 0:
            raise ValueError(
                f"FewShot: latent_dim={self.latent_dim} must be >= 0 and "
                f"feature_scale={self.feature_scale} > 0."
            )
        if self.exemplar_noise < 0:
            raise ValueError(f"FewShot.exemplar_noise must be >= 0, got {self.exemplar_noise}.")
        self.label_pairs("train")  # raises if no split covers every label

    # -- label pairs --------------------------------------------------------------------------

    @property
    def n_pairs(self) -> int:
        return self.n_labels * (self.n_labels - 1) // 2

    @property
    def n_train_pairs_resolved(self) -> int:
        if self.n_train_pairs is not None:
            return int(self.n_train_pairs)
        return int(round(0.8 * self.n_pairs))

    def label_pairs(self, which: str = "train") -> np.ndarray:
        """Unordered label pairs `[n, 2]` (int32, first < second) of split "train" or "heldout".

        The split is a seeded permutation of all pairs; seeds are tried in turn until every
        label occurs in some training pair (otherwise a label's embedding would never train).
        """
        if which not in ("train", "heldout", "all"):
            raise ValueError(f"label_pairs: which={which!r}; use 'train', 'heldout' or 'all'.")
        pairs = np.array(list(itertools.combinations(range(self.n_labels), 2)), np.int32)
        if which == "all":
            return pairs
        n_train = self.n_train_pairs_resolved
        for attempt in range(100):
            perm = np.random.default_rng([self.pair_split_seed, attempt]).permutation(len(pairs))
            train, held = pairs[perm[:n_train]], pairs[perm[n_train:]]
            if len(np.unique(train)) == self.n_labels:
                return train if which == "train" else held
        raise ValueError(
            f"FewShot: no split of {self.n_pairs} label pairs with n_train_pairs={n_train} covers "
            f"all {self.n_labels} labels; raise n_train_pairs."
        )

    # -- features ----------------------------------------------------------------------------

    def split_range(self, kind: str, split: str) -> tuple[int, int]:
        """[lo, hi) of class ("class") or exemplar ("exemplar") indices in `split`."""
        if kind == "class":
            tr, va, _ = self.class_split
            ranges = {"train": (0, tr), "val": (tr, tr + va), "test": (tr + va, self.n_classes)}
        elif kind == "exemplar":
            tr = self.exemplar_split[0]
            ranges = {"train": (0, tr), "heldout": (tr, self.n_exemplars)}
        else:
            raise ValueError(f"split_range: kind={kind!r}; use 'class' or 'exemplar'.")
        if split not in ranges:
            raise ValueError(f"split_range: no {kind} split {split!r}; valid: {sorted(ranges)}.")
        return ranges[split]

    def features(self, classes, exemplars):
        """Feature vectors `[..., dim]` of (class, exemplar) index arrays of equal shape."""
        base = jax.random.key(self.data_seed)
        class_key, noise_key = jax.random.split(base)

        if self.latent_dim:
            basis_key = jax.random.fold_in(base, 2**31 - 1)
            basis = jax.random.normal(basis_key, (self.latent_dim, self.dim))
            basis = basis / jnp.sqrt(self.latent_dim)  # unit variance per feature

        def one(c, e):
            k_c = jax.random.fold_in(class_key, c)
            if self.latent_dim:
                mean = jax.random.normal(k_c, (self.latent_dim,)) @ basis
            else:
                mean = jax.random.normal(k_c, (self.dim,))
            k = jax.random.fold_in(jax.random.fold_in(noise_key, c), e)
            x = mean + self.exemplar_noise * jax.random.normal(k, (self.dim,))
            return self.feature_scale * x

        classes, exemplars = jnp.asarray(classes), jnp.asarray(exemplars)
        flat = jax.vmap(one)(classes.reshape(-1), exemplars.reshape(-1))  # [n, dim]
        return flat.reshape(*classes.shape, self.dim)

    def table(self) -> np.ndarray:
        """Features of every train and test class `[n_train + n_test, n_exemplars, dim]`.

        Equal to `features` (it is computed by it, once per task, on the host); sampling
        gathers from it because regenerating Gaussians per step costs more than the model.
        Validation classes are left out: no evaluator uses them.
        """
        return _table(self)

    def _row(self, classes):
        """Row of `table()` holding each (train or test) class."""
        n_val = self.class_split[1]
        return jnp.where(classes >= self.class_split[0], classes - n_val, classes)

    # -- sequences ---------------------------------------------------------------------------

    def sample(self, key, batch_size: int, evaluator: str = "train") -> dict:
        """A batch of sequences drawn as in the paper.

        Returns a dict:
          inputs: `{"tokens": int32[batch, 5], "vectors": f32[batch, 5, dim],
            "is_vector": bool[batch, 5]}` -- the mixed input of `mj.Transformer`; label tokens
            sit at positions 1 and 3, exemplar vectors at 0, 2 and the query at 4.
          target: int32[batch], the query's label (the first label of the drawn pair).
          label_pos: int32[batch], position (1 or 3) of the correct label in context.
          distractor_pos: int32[batch], position of the other label.
          classes: int32[batch, 3], class of positions 0, 2, 4 (for analyses).
        """
        if evaluator not in _EVAL_SPLITS:
            raise ValueError(f"FewShot.sample: evaluator={evaluator!r}; valid: {EVALUATORS}.")
        class_split, ex_split, pair_split = _EVAL_SPLITS[evaluator]
        c_lo, c_hi = self.split_range("class", class_split)
        e_lo, e_hi = self.split_range("exemplar", ex_split)
        pairs = jnp.asarray(self.label_pairs(pair_split))  # [n_pairs, 2]
        n_cls = c_hi - c_lo
        k_q, k_d, k_order, k_ex, k_pair, k_perm = jax.random.split(key, 6)
        B = batch_size

        query = jax.random.randint(k_q, (B,), 0, n_cls)
        # a distinct distractor, uniform over the other classes of the split
        distractor = (query + 1 + jax.random.randint(k_d, (B,), 0, n_cls - 1)) % n_cls
        query, distractor = query + c_lo, distractor + c_lo
        query_first = jax.random.bernoulli(k_order, 0.5, (B,))  # context order
        ctx_a = jnp.where(query_first, query, distractor)
        ctx_b = jnp.where(query_first, distractor, query)
        classes = jnp.stack([ctx_a, ctx_b, query], axis=1)  # [batch, 3]
        # each item's exemplar is drawn independently from the split's exemplars
        exemplars = jax.random.randint(k_ex, (B, 3), e_lo, e_hi)
        table = jnp.asarray(self.table())
        vecs = table[self._row(classes), exemplars]  # [batch, 3, dim]

        pair = pairs[jax.random.randint(k_pair, (B,), 0, pairs.shape[0])]  # [batch, 2]
        swap = jax.random.bernoulli(k_perm, 0.5, (B,))
        q_label = jnp.where(swap, pair[:, 1], pair[:, 0])
        d_label = jnp.where(swap, pair[:, 0], pair[:, 1])
        lab_a = jnp.where(query_first, q_label, d_label)
        lab_b = jnp.where(query_first, d_label, q_label)

        zero = jnp.zeros((B,), jnp.int32)
        tokens = jnp.stack([zero, lab_a, zero, lab_b, zero], axis=1).astype(jnp.int32)
        vectors = jnp.zeros((B, SEQ_LEN, self.dim), jnp.float32)
        vectors = vectors.at[:, 0::2].set(vecs)  # [batch, pos, dim]
        is_vector = jnp.broadcast_to(jnp.array([True, False, True, False, True]), (B, SEQ_LEN))
        label_pos = jnp.where(query_first, 1, 3).astype(jnp.int32)
        return {
            "inputs": {"tokens": tokens, "vectors": vectors, "is_vector": is_vector},
            "target": q_label.astype(jnp.int32),
            "label_pos": label_pos,
            "distractor_pos": (4 - label_pos).astype(jnp.int32),
            "classes": classes.astype(jnp.int32),
        }

    def batch(self, key, step, batch_size: int, evaluator: str = "train") -> dict:
        """`sample` keyed by `fold_in(key, step)`: a pure function of (key, step)."""
        return self.sample(jax.random.fold_in(key, step), batch_size, evaluator)


@functools.lru_cache(maxsize=16)
def _table(task: FewShot) -> np.ndarray:
    tr, _, te = task.class_split
    classes = np.concatenate([np.arange(tr), np.arange(task.n_classes - te, task.n_classes)])
    c = np.repeat(classes[:, None], task.n_exemplars, axis=1)
    e = np.broadcast_to(np.arange(task.n_exemplars), c.shape)
    with jax.ensure_compile_time_eval():
        out = jax.jit(task.features)(c, e)
    return np.asarray(out, np.float32)


def chance_loss() -> float:
    """Loss of the best context-free guess (uniform over the two in-context labels): ln 2."""
    return math.log(2.0)
