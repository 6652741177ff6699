"""Draft heads for speculative decoding (Medusa, Hydra, Hydra++) on a base `mj.Transformer`.

`DraftModel(base, DraftConfig(...))` wraps a decoder LM and K draft heads. All heads read
`h_t`, the base's last hidden state (after the final norm: the vector its unembedding
reads), and head k predicts the token k+1 steps past the base's own next token: at position
t, `x_{t+k+2}`.

* Medusa (`kind="medusa"`): head k = `n_layers` residual blocks `x + SiLU(x W + b)` on
  `h_t`, then its own vocabulary projection. Independent heads.
* Hydra (`kind="hydra"`): head k also reads the base input embeddings (`W_E`) of the tokens
  drafted before it: its first layer maps `concat[h_t, E(x_{t+1}), ..., E(x_{t+k+1})]`
  (`(k+2) * d_model` wide) to `d_model`, residual on `h_t`:
  `x = h_t + SiLU(concat W_0 + b_0)`; the other `n_layers - 1` layers are the Medusa block.
  `x_{t+1}` is the base's own next token, so head k depends on the k tokens drafted by
  heads 0 .. k-1 (sequentially dependent). This is the residual-SiLU style of Medusa with
  the concatenation folded into the first layer, so Hydra with `W_0 = 0` is Medusa with
  `W_0 = 0`; Hydra's official MLP differs in details we do not need here.
* Hydra++ (`prefix_layer=True`, with `kind="hydra"` and `n_layers=4` in the paper): one
  extra decoder layer, the library's own `TransformerBlock` (the base's block config, with
  an MLP of width `4 * d_model` unless `prefix_mlp=False`), runs causally over the sequence
  of base hidden states; the heads read its output instead of `h_t`. Train it with
  `draft_loss(..., teacher_logits=base_logits)` (teacher distillation). No dropout (the
  paper uses 0.2): `mj.run` has no dropout RNG.

Initialisation (`init_from_base`): every head layer's weight and bias are zero (Medusa's
official ResBlock zero-initialises the weight; we also zero the bias) and its `W_U` / `b_U`
are copies of the base's; Hydra++'s layer starts as the identity (its attention `W_O, b_O`
and MLP `W_out, b_out` are zero). So every head starts as the base's unembedding of `h_t`,
i.e. as "the base's next token again", a baseline the step-0 eval measures. The base stays frozen: heads read it through `stop_gradient` (set
`grad_to_base=True` to train through it) and the training task passes
`Task(trainable=lambda path: path[1] != "base")`.

Parameters: `{"params": {"base": <the base's params>, "draft_heads_{k}": {"W_0", "b_0",
..., "W_U", "b_U"}, "draft_prefix": <a TransformerBlock's>}}`.

Output and sites. `mj.run(model, params, tokens)` returns the *base* logits
`[batch, pos, d_vocab]`, so every analysis of the toolkit treats a DraftModel as its base
LM (the heads' work is dropped by XLA when nothing reads it). The heads are teacher-forced on
the input: Hydra's `E(x_{t+j})` are the embeddings of the input's own later tokens (zeros'
embedding past the end). Their sites, all `[batch, pos, d_model]` unless noted:

    draft_heads.prefix.*                  Hydra++'s layer (TransformerBlock sites: hook_resid_pre,
                                          attn.hook_q / hook_pattern / hook_z ..., hook_resid_post)
    draft_heads.{k}.hook_in               the head's input h (base hidden, or the prefix output)
    draft_heads.{k}.hook_embed_{j}        Hydra: E(x_{t+j+1}), j = 0 .. k
    draft_heads.{k}.res.{i}.hook_pre      layer i's linear output (before SiLU)
    draft_heads.{k}.res.{i}.hook_post     SiLU(pre), what layer i adds to the residual
    draft_heads.{k}.hook_out              the vector the head's unembedding reads
    draft_heads.{k}.hook_logits           [batch, pos, d_vocab]

`head_logits(model, params, tokens)` returns `(base_logits, draft_logits [batch, pos, K,
d_vocab])` (the cached `hook_logits` sites, stacked).

Drafting API (for the speculative decoder): `draft_tree(model, params, hidden, next_token,
tree)` drafts the tokens of a candidate `Tree`; see its docstring.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mechjax.hooks import NO_HOOKS
from mechjax.models import axes as A
from mechjax.models.config import ConfigIO
from mechjax.models.heads.tree import Tree
from mechjax.models.protocol import HookedModel, Readout, Stack, split_inputs
from mechjax.models.transformer import Norm, Transformer, TransformerBlock, dtype_of

KINDS = ("medusa", "hydra")


@dataclasses.dataclass(frozen=True)
class DraftConfig(ConfigIO):
    """The draft heads of a `DraftModel` (see the module docstring); frozen, hashable.

    Fields:
      kind: "medusa" (independent heads on h_t) or "hydra" (head k also reads the
        embeddings of the k + 1 tokens before its target).
      n_heads: K, the number of heads (head k predicts x_{t+k+2}).
      n_layers: residual SiLU layers per head (>= 1; Hydra's first one reads the concat).
      prefix_layer: Hydra++: one decoder layer over the base hidden states before the heads.
      prefix_mlp: the prefix layer has an MLP (width 4 * d_model) even if the base has none.
      grad_to_base: False (Medusa-1, frozen base): the heads read the base's hidden states
        and embeddings through `stop_gradient`; True lets gradients flow into the base.
    """

    kind: str = "medusa"
    n_heads: int = 4
    n_layers: int = 1
    prefix_layer: bool = False
    prefix_mlp: bool = True
    grad_to_base: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"DraftConfig.kind={self.kind!r}; valid kinds: {', '.join(KINDS)}.")
        for f in ("n_heads", "n_layers"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"DraftConfig.{f} must be an int >= 1, got {v!r}.")

    @classmethod
    def from_variant(cls, name: str, **overrides) -> DraftConfig:
        """`"medusa"`, `"hydra"` or `"hydra++"` (the papers' architectures), with overrides."""
        if name not in DRAFT_VARIANTS:
            raise ValueError(f"unknown draft variant {name!r}; known: {sorted(DRAFT_VARIANTS)}")
        return cls(**{**DRAFT_VARIANTS[name], **overrides})


DRAFT_VARIANTS: dict[str, dict] = {
    "medusa": dict(kind="medusa", n_layers=1),
    "hydra": dict(kind="hydra", n_layers=1),
    "hydra++": dict(kind="hydra", n_layers=4, prefix_layer=True),
}


def _prefix_cfg(cfg, draft: DraftConfig):
    """The base's block config for Hydra++'s layer (with an MLP when `prefix_mlp`)."""
    if draft.prefix_mlp and cfg.attn_only:
        return cfg.replace(attn_only=False, d_mlp=4 * cfg.d_model)
    return cfg


class DraftHead(nn.Module):
    """One draft head: residual SiLU layers, then its own unembedding. Sites under `prefix`.

    `h`: `[batch, pos, d_model]` (in drafting, `pos` is the candidate parents); `embeds`:
    Hydra's `n_in - 1` token embeddings, each shaped like `h` (empty for Medusa).
    """

    n_in: int  # d_model-wide inputs of the first layer: 1 (h) or k + 2 (h, k + 1 embeddings)
    n_layers: int
    d_model: int
    d_vocab: int
    unembed_bias: bool
    prefix: str
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, h, embeds=(), hooks=NO_HOOKS):
        p, D, dt, pd, R = self.prefix, self.d_model, self.dtype, self.param_dtype, A.RESID
        zeros = nn.initializers.zeros
        x = hooks(f"{p}.hook_in", h, R)  # [batch, pos, d_model]
        parts = [x] + [hooks(f"{p}.hook_embed_{j}", e, R) for j, e in enumerate(embeds)]
        if len(parts) != self.n_in:
            raise ValueError(f"{p}: got {len(parts)} inputs, expected {self.n_in}")
        inp = jnp.concatenate(parts, axis=-1)  # [batch, pos, n_in * d_model]
        for i in range(self.n_layers):
            fan_in = self.n_in * D if i == 0 else D
            W = self.param(f"W_{i}", zeros, (fan_in, D), pd).astype(dt)
            b = self.param(f"b_{i}", zeros, (D,), pd).astype(dt)
            pre = hooks(f"{p}.res.{i}.hook_pre", (inp if i == 0 else x) @ W + b, R)
            x = x + hooks(f"{p}.res.{i}.hook_post", jax.nn.silu(pre), R)  # [batch, pos, d_model]
        x = hooks(f"{p}.hook_out", x, R)
        # placeholders: `init_from_base` copies the base's unembedding here
        W_U = self.param("W_U", nn.initializers.normal(0.02), (D, self.d_vocab), pd).astype(dt)
        logits = x @ W_U
        if self.unembed_bias:
            logits = logits + self.param("b_U", zeros, (self.d_vocab,), pd).astype(dt)
        return hooks(f"{p}.hook_logits", logits, A.LOGITS)  # [batch, pos, d_vocab]


def _capture_final_hidden(fn):
    """`(fn(), hidden)`: `hidden` is what the base's unembedding read during `fn()`, the
    output of `ln_final` (or, without a final norm, the stream entering the readout).

    Read with `nn.intercept_methods`, since `Transformer.__call__` returns logits only.
    """
    seen = {}

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        m, name = context.module, context.method_name
        if isinstance(m, Transformer) and name == "_readout":
            seen["resid"] = args[0] if args else kwargs["resid"]
        elif isinstance(m, Norm) and m.prefix == "ln_final" and name == "__call__":
            seen["normed"] = out
        return out

    with nn.intercept_methods(interceptor):
        out = fn()
    hidden = seen.get("normed", seen.get("resid"))
    if hidden is None:
        raise RuntimeError("DraftModel: the base's readout was not seen (no final hidden state)")
    return out, hidden


def _shift(tokens, s: int):
    """`tokens[:, t + s]` at position t, token 0 past the end: `[batch, pos]`."""
    n = tokens.shape[1]
    return jnp.pad(tokens[:, s:], ((0, 0), (0, min(s, n))))[:, :n]


class DraftModel(nn.Module, HookedModel):
    """A base `mj.Transformer` with K draft heads (see the module docstring).

    The model protocol is the base's: `mj.run` returns the base logits, the layer stacks,
    readout and `resume` are the base's; the heads add the `draft_heads.*` sites.
    """

    base: Transformer
    draft: DraftConfig = DraftConfig()

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.base, Transformer) or self.base.head is not None:
            raise ValueError("DraftModel needs a base mj.Transformer with its LM unembedding")
        if not isinstance(self.draft, DraftConfig):
            raise TypeError(f"DraftModel.draft must be a DraftConfig, got {self.draft!r}")
        c = self.base.cfg
        if self.draft.kind == "hydra" and not (0 < c.vocab_out <= c.d_vocab):
            raise ValueError(
                f"Hydra heads embed drafted tokens with the base's W_E: the base needs token "
                f"inputs and d_vocab_out ({c.vocab_out}) <= d_vocab ({c.d_vocab})."
            )

    def setup(self):
        c, d = self.base.cfg, self.draft
        dt, pd = dtype_of(c.dtype), dtype_of(c.param_dtype)
        self.draft_heads = [
            DraftHead(
                n_in=1 if d.kind == "medusa" else k + 2,
                n_layers=d.n_layers,
                d_model=c.d_model,
                d_vocab=c.vocab_out,
                unembed_bias=c.unembed_bias and not c.tie_embeddings,
                prefix=f"draft_heads.{k}",
                dtype=dt,
                param_dtype=pd,
            )
            for k in range(d.n_heads)
        ]
        if d.prefix_layer:
            self.draft_prefix = TransformerBlock(_prefix_cfg(c, d), 0, prefix="draft_heads.prefix")

    # -- the model protocol: the base's (see mechjax.models) ------------------------------------

    def check_inputs(self, inputs, attention_mask=None) -> None:
        self.base.check_inputs(inputs, attention_mask)
        if self.draft.kind == "hydra" and split_inputs(inputs)[1] is not None:
            raise ValueError(
                "Hydra draft heads embed the input's tokens: pass int token ids [batch, pos]."
            )

    def example_inputs(self):
        return self.base.example_inputs()

    def layer_stacks(self) -> tuple[Stack, ...]:
        return self.base.layer_stacks()

    def resume_sites(self, stack: str, layer: int) -> tuple[str, ...]:
        return self.base.resume_sites(stack, layer)

    def resume(
        self,
        inputs,
        state,
        hooks=NO_HOOKS,
        attention_mask=None,
        *,
        stack="blocks",
        layer=0,
        positions=None,
    ):
        return self.base.resume(
            inputs, state, hooks, attention_mask, stack=stack, layer=layer, positions=positions
        )

    def readout(self) -> Readout:
        return self.base.readout()

    def readout_weights(self, params):
        return self.base.readout_weights(base_params(params))

    # -- forward ----------------------------------------------------------------------------------

    def __call__(self, inputs, hooks=NO_HOOKS, attention_mask=None):
        logits, hidden = self.base_forward(inputs, hooks, attention_mask)
        self.run_heads(hidden, split_inputs(inputs)[0], hooks, attention_mask)
        return logits  # [batch, pos, d_vocab]: the base's

    def base_forward(self, inputs, hooks=NO_HOOKS, attention_mask=None):
        """`(base logits [batch, pos, d_vocab], last hidden [batch, pos, d_model])`."""
        return _capture_final_hidden(lambda: self.base(inputs, hooks, attention_mask))

    def _in(self, x):
        return x if self.draft.grad_to_base else jax.lax.stop_gradient(x)

    def _embed(self, tokens):
        """The base's input embeddings of `tokens` (Hydra's drafted-token inputs)."""
        return self._in(self.base.W_E)[tokens].astype(dtype_of(self.base.cfg.dtype))

    def run_heads(self, hidden, tokens, hooks=NO_HOOKS, attention_mask=None):
        """Every head, teacher-forced on `tokens`: list of K logits `[batch, pos, d_vocab]`."""
        h = self._in(hidden)  # [batch, pos, d_model]
        if self.draft.prefix_layer:
            h = self.draft_prefix(h, hooks, attention_mask)
        out = []
        for k, head in enumerate(self.draft_heads):
            embeds = ()
            if self.draft.kind == "hydra":
                embeds = [self._embed(_shift(tokens, j + 1)) for j in range(k + 1)]
            out.append(head(h, embeds, hooks))
        return out

    def draft_nodes(
        self, hidden, next_token, tree: Tree, hidden_seq=None, seq_len=None, seq_mask=None
    ):
        """The tokens of `tree`'s nodes `[batch, n_nodes]` (called by `draft_tree`)."""
        h = hidden  # [batch, d_model]
        if self.draft.prefix_layer:
            T = hidden_seq.shape[1]
            keys = jnp.arange(T)[None, :] < seq_len[:, None]  # [batch, T]
            if seq_mask is not None:
                keys = keys & jnp.asarray(seq_mask).astype(bool)
            out = self.draft_prefix(self._in(hidden_seq), NO_HOOKS, keys)  # [batch, T, d_model]
            h = jnp.take_along_axis(out, (seq_len - 1)[:, None, None], axis=1)[:, 0]
        h = self._in(h)
        B = h.shape[0]
        tokens = jnp.zeros((B, tree.n_nodes), jnp.int32)
        for d, (parents, chains, children, slot, rank, k_max) in enumerate(_levels(tree)):
            if self.draft.kind == "medusa":  # independent of the parents' tokens
                logits = self.draft_heads[d](h[:, None], (), NO_HOOKS)  # [batch, 1, d_vocab]
            else:
                root = jnp.broadcast_to(next_token[:, None], (B, len(parents)))
                embeds = [self._embed(root)]  # [batch, n_parents, d_model], x_{t+1}
                for j in range(d):  # ancestor at depth j + 1 of each parent
                    embeds.append(self._embed(tokens[:, np.asarray(chains[:, j])]))
                hp = jnp.broadcast_to(h[:, None], (B, len(parents), h.shape[-1]))
                logits = self.draft_heads[d](hp, embeds, NO_HOOKS)  # [batch, n_parents, d_vocab]
            top = jax.lax.top_k(logits.astype(jnp.float32), k_max)[1]  # [batch, n_par, k_max]
            tokens = tokens.at[:, children].set(top[:, slot, rank].astype(jnp.int32))
        return tokens


@functools.lru_cache(maxsize=64)
def _levels(tree: Tree):
    """Per depth d (head d): the parents whose children it drafts (node ids, -1 = root), each
    parent's ancestor node ids `[n_parents, d]` (depth order), the children, each child's
    parent slot and candidate rank, and the ranks needed (max rank + 1)."""
    out = []
    index = {p: i for i, p in enumerate(tree.paths)}
    for d in range(int(tree.depth.max(initial=0))):
        children = [i for i, p in enumerate(tree.paths) if len(p) == d + 1]
        parents = sorted({index.get(tree.paths[i][:-1], -1) for i in children})
        chains = np.asarray(
            [[index[tree.paths[p][: j + 1]] for j in range(d)] if p >= 0 else [] for p in parents],
            np.int32,
        ).reshape(len(parents), d)
        slot = np.asarray([parents.index(int(tree.parent[i])) for i in children], np.int32)
        rank = np.asarray([tree.paths[i][-1] for i in children], np.int32)
        out.append((tuple(parents), chains, np.asarray(children), slot, rank, int(rank.max()) + 1))
    return tuple(out)


# -- functions ---------------------------------------------------------------------------------


def base_params(params):
    """The base's variables `{"params": ...}` inside a DraftModel's variables."""
    return {"params": params.get("params", params)["base"]}


def init_from_base(model: DraftModel, key, base_variables):
    """DraftModel variables: the base's params (as given) and freshly initialised heads whose
    unembeddings are copies of the base's (see the module docstring)."""
    from mechjax.run import example_inputs

    v = model.init(key, example_inputs(model))
    p = dict(v["params"])
    bp = base_variables.get("params", base_variables)
    p["base"] = jax.tree.map(jnp.asarray, bp)
    W, b = model.base.readout_weights({"params": bp})
    if "draft_prefix" in p:  # zero output projections: the layer starts as the identity
        p["draft_prefix"] = _zero_outputs(p["draft_prefix"])
    for k in range(model.draft.n_heads):
        head = dict(p[f"draft_heads_{k}"])
        head["W_U"] = jnp.asarray(W, head["W_U"].dtype)
        if "b_U" in head:
            head["b_U"] = jnp.asarray(b, head["b_U"].dtype)
        p[f"draft_heads_{k}"] = head
    return {"params": p}


def _zero_outputs(block):
    """A TransformerBlock's params with its residual branches' output weights zeroed."""
    out = {}
    for name, sub in block.items():
        if isinstance(sub, dict):
            sub = {
                k: jnp.zeros_like(v) if k in ("W_O", "b_O", "W_out", "b_out") else v
                for k, v in sub.items()
            }
        out[name] = sub
    return out


def _check_model(model):
    if not isinstance(model, DraftModel):
        raise TypeError(f"expected a DraftModel, got {type(model).__name__}")


def base_hidden(model: DraftModel, params, inputs, *, attention_mask=None):
    """`(base logits [batch, pos, d_vocab], last hidden [batch, pos, d_model])`, the hidden
    state (after the final norm) that `draft_tree` takes. Jittable; no interventions."""
    from mechjax.run import _variables, as_arrays

    _check_model(model)
    inputs, attention_mask = as_arrays(inputs), as_arrays(attention_mask)
    model.check_inputs(inputs, attention_mask)
    return model.apply(
        _variables(params), inputs, NO_HOOKS, attention_mask, method=DraftModel.base_forward
    )


def head_logits(model: DraftModel, params, tokens, *, attention_mask=None, interventions=()):
    """`(base logits [batch, pos, d_vocab], draft logits [batch, pos, K, d_vocab])`.

    Teacher-forced (Hydra heads read the embeddings of the input's own later tokens); head k
    at position t predicts `tokens[:, t + k + 2]`. Runs `mj.run` (interventions allowed).
    """
    from mechjax.run import run

    _check_model(model)
    names = tuple(f"draft_heads.{k}.hook_logits" for k in range(model.draft.n_heads))
    logits, cache = run(
        model,
        params,
        tokens,
        cache=names,
        interventions=interventions,
        attention_mask=attention_mask,
    )
    return logits, jnp.stack([cache[n] for n in names], axis=2)


def _target_mask(mask, n: int, k: int, shape):
    if mask is None:
        return jnp.ones(shape, jnp.float32)
    m = jnp.asarray(mask).astype(jnp.float32)
    return m[:, :n] * m[:, k + 2 : k + 2 + n]


def draft_loss(draft_logits, tokens, *, teacher_logits=None, mask=None):
    """Training loss of the heads: `(sum over heads of the per-head means, per-head [K])`.

    Args:
      draft_logits: `[batch, pos, K, d_vocab]` (`head_logits`).
      tokens: int `[batch, pos]`, the sequence the heads were teacher-forced on.
      teacher_logits: None: cross-entropy to the true tokens `x_{t+k+2}` (Medusa-1, Hydra).
        Base logits `[batch, pos, d_vocab]`: cross-entropy to the teacher's softmax at the
        target's position, `softmax(teacher[t + k + 1])` (Hydra++ distillation; no gradient
        into the teacher).
      mask: optional `[batch, pos]`, 1 = real token; a pair (t, target) counts if both are.

    Positions without a target (the last k + 2) are left out.
    """
    B, P, K, _ = draft_logits.shape
    per = []
    for k in range(K):
        n = max(P - k - 2, 0)
        logq = jax.nn.log_softmax(draft_logits[:, :n, k].astype(jnp.float32))  # [b, n, V]
        if teacher_logits is None:
            tgt = tokens[:, k + 2 : k + 2 + n]  # [batch, n]
            nll = -jnp.take_along_axis(logq, tgt[..., None], axis=-1)[..., 0]
        else:
            t = jax.lax.stop_gradient(teacher_logits[:, k + 1 : k + 1 + n].astype(jnp.float32))
            nll = -(jax.nn.softmax(t) * logq).sum(-1)  # [batch, n]
        w = _target_mask(mask, n, k, nll.shape)
        per.append((nll * w).sum() / jnp.maximum(w.sum(), 1.0))
    per = jnp.stack(per)
    return per.sum(), per


def head_accuracy(draft_logits, tokens, *, mask=None):
    """Per-head top-1 accuracy `[K]`: head k's argmax at t vs `tokens[:, t + k + 2]`."""
    B, P, K, _ = draft_logits.shape
    out = []
    for k in range(K):
        n = max(P - k - 2, 0)
        hit = (draft_logits[:, :n, k].argmax(-1) == tokens[:, k + 2 : k + 2 + n]).astype(
            jnp.float32
        )
        w = _target_mask(mask, n, k, hit.shape)
        out.append((hit * w).sum() / jnp.maximum(w.sum(), 1.0))
    return jnp.stack(out)


def accept_length(tree, drafted, target):
    """Greedy acceptance per row `[batch]`: the depth of the deepest node whose path (itself
    and every ancestor) matches `target`, 0 if none.

    Args:
      tree: a `Tree` (or its paths). drafted: `[batch, n_nodes]` from `draft_tree`.
      target: `[batch, >= max depth]`, the tokens at offsets 1, 2, ... after the root (for
        greedy verification, the base's own greedy continuation after `next_token`).
    """
    tree = Tree(tree)
    if tree.n_nodes == 0:
        return jnp.zeros(drafted.shape[:1], jnp.int32)
    depth = jnp.asarray(tree.depth)
    match = jnp.asarray(drafted) == jnp.asarray(target)[:, tree.depth - 1]  # [batch, n_nodes]
    bad = (~match).astype(jnp.int32) @ jnp.asarray(tree.ancestors.T, jnp.int32)
    return jnp.max(jnp.where(bad == 0, depth[None], 0), axis=1).astype(jnp.int32)


def draft_tree(
    model: DraftModel,
    params,
    hidden,
    next_token,
    tree,
    *,
    hidden_seq=None,
    seq_len=None,
    seq_mask=None,
):
    """Drafts the tokens of a candidate tree from one position: `[batch, n_nodes]` int32.

    Node `(i_0, ..., i_d)` gets the rank-`i_d` token (0 = most likely) of head d; a Hydra
    head reads the embeddings of the root `next_token` and of the node's ancestors' tokens
    (what the module docstring calls x_{t+1}, ..., x_{t+d+1}), a Medusa head only `hidden`.
    Tokens come in `Tree(tree).paths` order (by depth, parents first). No interventions.
    Jittable and traceable (host checks read shapes only); call it inside a decode loop.

    Args:
      model, params: a `DraftModel` and its variables.
      hidden: `[batch, d_model]`, the base's last hidden state (after the final norm, as
        `base_hidden` or `Transformer.decode` gives it) at the last accepted position.
      next_token: int `[batch]`, the base's greedy next token there (the root).
      tree: a `Tree` or its paths (static); depths <= K, ranks < d_vocab.
      hidden_seq, seq_len, seq_mask: Hydra++ only (ignored otherwise). `hidden_seq`
        `[batch, T, d_model]` holds the base's last hidden states of the sequence so far in
        buffer slots (position = slot), `seq_len` int `[batch]` (or an int) the number of
        filled slots: the current position is slot `seq_len - 1` (its state equals
        `hidden`), and the prefix layer attends causally to slots `< seq_len`; optional
        `seq_mask` `[batch, T]` (1 = real) also drops pads (left padding).
    """
    _check_model(model)
    c, d = model.base.cfg, model.draft
    tree = Tree(tree, max_depth=d.n_heads, top_k=c.vocab_out)
    B = np.shape(hidden)[0] if np.ndim(hidden) == 2 else None
    if np.ndim(hidden) != 2 or np.shape(hidden)[1] != c.d_model:
        raise ValueError(f"hidden must be [batch, d_model={c.d_model}], got {np.shape(hidden)}")
    if np.shape(next_token) != (B,) or not jnp.issubdtype(jnp.result_type(next_token), jnp.integer):
        raise ValueError(
            f"next_token must be int [batch] = ({B},), got {np.shape(next_token)} "
            f"{jnp.result_type(next_token)}"
        )
    if d.prefix_layer:
        if hidden_seq is None or seq_len is None:
            raise ValueError(
                "this DraftModel has Hydra++'s prefix layer: pass hidden_seq [batch, T, "
                "d_model] (the base's hidden states so far) and seq_len [batch] (filled slots)."
            )
        T = np.shape(hidden_seq)[1] if np.ndim(hidden_seq) == 3 else None
        if np.shape(hidden_seq) != (B, T, c.d_model):
            raise ValueError(
                f"hidden_seq must be [batch={B}, T, d_model={c.d_model}], got "
                f"{np.shape(hidden_seq)}"
            )
        seq_len = jnp.broadcast_to(jnp.asarray(seq_len, jnp.int32), (B,))
        if seq_mask is not None and np.shape(seq_mask) != (B, T):
            raise ValueError(f"seq_mask must be [batch, T] = {(B, T)}, got {np.shape(seq_mask)}")
    else:
        hidden_seq = seq_len = seq_mask = None
    next_token = jnp.asarray(next_token, jnp.int32)
    return _draft_jit(model, tree, params, hidden, next_token, hidden_seq, seq_len, seq_mask)


def _draft(model, tree, params, hidden, next_token, hidden_seq, seq_len, seq_mask):
    from mechjax.run import _variables

    return model.apply(
        _variables(params),
        hidden,
        next_token,
        tree,
        hidden_seq,
        seq_len,
        seq_mask,
        method=DraftModel.draft_nodes,
    )


_draft_jit = jax.jit(_draft, static_argnums=(0, 1))


@dataclasses.dataclass(frozen=True)
class Drafter:
    """The drafter of `model`'s heads for `mj.speculative_generate` (`draft_tree`).

    `Drafter(model)(params, hidden, next_token, tree, **seq)`; hashable, so the same heads
    reuse one compilation. `reads_sequence` is True for Hydra++ (the prefix layer attends
    over the base's hidden states of the sequence: the decoder then passes `hidden_seq`,
    `seq_len`, `seq_mask`).

        tokens = mj.speculative_generate(base, base_vars, prompt, 32, tree=tree,
                                         drafter=H.Drafter(model), drafter_params=params)
    """

    model: DraftModel

    def __post_init__(self):
        _check_model(self.model)

    @property
    def reads_sequence(self) -> bool:
        return bool(self.model.draft.prefix_layer)

    def __call__(self, params, hidden, next_token, tree, **seq):
        return draft_tree(self.model, params, hidden, next_token, tree, **seq)
