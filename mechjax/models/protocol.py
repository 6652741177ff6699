"""The model protocol: what a model provides so that the whole toolkit works on it.

See the `mechjax.models` package docstring for the contract; this module holds its small
data types (`Stack`, `Readout`), the `HookedModel` mixin with the shared helpers, and the
host-side input check shared by the sequence models.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Stack:
    """One stack of identical blocks, e.g. `blocks`, `encoder.blocks`, `decoder.blocks`.

    Layer `L`'s sites are `{prefix}.{L}.hook_resid_pre`, `{prefix}.{L}.attn.hook_z`, ...;
    `attn` lists the block's attention modules (`("attn", "cross_attn")` in a decoder with
    cross-attention), each with the `hook_q/k/v/z/attn_scores/pattern/result` sites.
    """

    prefix: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    mlp: bool = True
    parallel: bool = False  # attention and MLP both read resid_pre (GPT-NeoX)
    norm: str | None = "LN"  # the blocks' norm type ("LN", "RMS", None)
    attn: tuple[str, ...] = ("attn",)
    # Post-norm blocks (BART): each norm follows its residual add, so the stream is not a
    # sum of the sublayer outputs (additive decompositions such as DLA do not apply).
    post_norm: bool = False

    def site(self, layer: int, rel: str) -> str:
        """`site(3, "attn.hook_z")` -> `"{prefix}.3.attn.hook_z"`."""
        return f"{self.prefix}.{layer}.{rel}"

    def template(self, rel: str) -> str:
        """`template("attn.hook_z")` -> `"{prefix}.{}.attn.hook_z"` (for `.format(layer)`)."""
        return f"{self.prefix}.{{}}.{rel}"


@dataclasses.dataclass(frozen=True)
class Readout:
    """How the last stack's residual stream becomes the output (for logit attribution).

    output = site( W^T pool(norm(resid)) + b ), with `W, b = model.readout_weights(params)`.
    """

    stack: str  # prefix of the stack whose resid_post the readout reads
    norm: str | None  # prefix of the final norm's sites (`ln_final`), None if no final norm
    norm_type: str | None  # "LN" / "RMS" / None
    pool: str | None  # None (per position), "cls" (position 0) or "mean" (over positions)
    site: str | None  # the output site (`hook_logits`); None for an opaque head module


class HookedModel:
    """Mixin for modules implementing the protocol: shared helpers over `layer_stacks()`."""

    def stack(self, prefix: str) -> Stack:
        """The `Stack` named `prefix`; ValueError listing the valid ones otherwise."""
        stacks = self.layer_stacks()
        for s in stacks:
            if s.prefix == prefix:
                return s
        raise ValueError(
            f"{type(self).__name__} has no layer stack {prefix!r}; its stacks are "
            f"{[s.prefix for s in stacks]}."
        )

    def resume_sites(self, stack: str, layer: int) -> tuple[str, ...]:
        """Default for models whose stack depends only on its own residual stream."""
        self.stack(stack)
        return (f"{stack}.{layer}.hook_resid_pre",)

    def stack_of(self, site: str) -> tuple[Stack, int] | None:
        """(stack, layer) that site `site` belongs to, or None (embeddings, readout)."""
        for s in sorted(self.layer_stacks(), key=lambda s: -len(s.prefix)):
            head = s.prefix + "."
            if site.startswith(head):
                rest = site[len(head) :].split(".", 1)[0]
                if rest.isdigit():
                    return s, int(rest)
        return None


def split_inputs(inputs):
    """Token / vector / mixed inputs of a sequence stream -> `(tokens, vectors, is_vector)`."""
    if isinstance(inputs, dict):
        return inputs["tokens"], inputs["vectors"], inputs["is_vector"]
    if jnp.issubdtype(jnp.asarray(inputs).dtype, jnp.integer):
        return inputs, None, None
    return None, inputs, None


def is_model(model) -> bool:
    """True if `model` implements the protocol."""
    need = ("check_inputs", "example_inputs", "layer_stacks", "resume_sites", "resume")
    return all(hasattr(model, n) for n in need)


def _is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_token_ids(tokens, d_vocab: int, is_vec=None, what: str = "token id") -> None:
    """Host-side range check of int token ids (a JAX gather would clamp silently)."""
    if tokens is None or _is_tracer(tokens):
        return
    t = np.asarray(tokens)
    if is_vec is not None and not _is_tracer(is_vec):
        t = np.where(np.asarray(is_vec), 0, t)
    if t.size and (t.min() < 0 or t.max() >= d_vocab):
        bad = int(t.max()) if t.max() >= d_vocab else int(t.min())
        raise ValueError(
            f"{what} {bad} is outside the vocabulary [0, {d_vocab}); a JAX gather would "
            f"silently clamp it. Check the tokenizer matches the model."
        )


def check_sequence_inputs(cfg, inputs, attention_mask=None) -> None:
    """Input check of a token / vector sequence model (`mj.Transformer`, a decoder stream)."""
    if isinstance(inputs, dict):
        missing = {"tokens", "vectors", "is_vector"} - set(inputs)
        if missing:
            raise ValueError(
                f"mixed inputs need keys tokens, vectors, is_vector; missing {sorted(missing)}"
            )
        tokens, is_vec, seq = inputs["tokens"], inputs["is_vector"], np.shape(inputs["tokens"])
    else:
        arr = inputs
        seq = np.shape(arr)
        is_int = jnp.issubdtype(jnp.result_type(arr), jnp.integer)
        tokens, is_vec = (arr, None) if is_int else (None, None)
        if not is_int:
            if not getattr(cfg, "d_input", None):
                raise ValueError(
                    f"got float inputs of shape {seq} but the model has no vector embedding "
                    f"(d_input is None); pass int token ids [batch, pos] or set d_input."
                )
            if len(seq) != 3 or seq[-1] != cfg.d_input:
                raise ValueError(f"vector inputs must be [batch, pos, {cfg.d_input}], got {seq}")
    if len(seq) < 2:
        raise ValueError(f"inputs must have a batch axis: expected [batch, pos], got shape {seq}")
    if cfg.positional_embedding_type == "standard" and seq[1] > cfg.n_ctx:
        raise ValueError(f"sequence length {seq[1]} exceeds the model's n_ctx={cfg.n_ctx}")
    check_token_ids(tokens, cfg.d_vocab, is_vec)
    check_mask(seq[:2], attention_mask)


def check_mask(seq, attention_mask, what: str = "attention_mask") -> None:
    """`[batch, pos]` (padding) or `[batch, q_pos, k_pos]` mask for a `[batch, pos]` stream."""
    if attention_mask is None:
        return
    got = tuple(np.shape(attention_mask))
    valid = ((seq[0], seq[1]), (seq[0], seq[1], seq[1]))
    if got not in valid:
        raise ValueError(
            f"{what} has shape {got}; for inputs [batch, pos] = {list(seq)} it must be "
            f"[batch, pos] {valid[0]} (padding) or [batch, q_pos, k_pos] {valid[1]}."
        )
