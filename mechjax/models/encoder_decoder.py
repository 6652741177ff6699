"""Encoder-decoder transformer with cross-attention (BART, UniTAB; DETR-style learned queries).

    inputs["encoder"] (tokens / vectors / both) -> embed (+ positions) (-> ln_embed)
      -> encoder.blocks (non-causal; the shared TransformerBlock) (-> encoder.ln_final)
      -> encoder.hook_out: the memory [batch, enc_pos, d_model]
    inputs["decoder"] tokens -> embed (+ positions) (-> ln_embed)   | or n_queries learned
      -> decoder.blocks: causal self-attn, cross-attn to the memory, MLP  | queries, non-causal
      (-> decoder.ln_final) -> decoder.hook_out -> unembed -> hook_logits [batch, dec_pos, d_vocab]

Sites (every `hooks` call declares its axes from `mechjax.models.axes`; `pos` is the
position in the stream the site belongs to, encoder or decoder):

    encoder.hook_embed, encoder.hook_pos_embed, encoder.ln_embed.*       [batch, enc_pos, d_model]
    encoder.blocks.{L}.*            exactly the sites of an LM block (`attn.hook_pattern`, ...)
    encoder.ln_final.*, encoder.hook_out                                  [batch, enc_pos, d_model]
    decoder.hook_embed (token embeddings or the learned queries), decoder.hook_pos_embed,
    decoder.ln_embed.*                                                    [batch, dec_pos, d_model]
    decoder.blocks.{L}.hook_resid_pre                 the stream entering the block
    decoder.blocks.{L}.attn.*, hook_attn_out          self-attention (causal over decoder tokens)
    decoder.blocks.{L}.hook_resid_mid                 the stream after self-attention
    decoder.blocks.{L}.cross_attn.hook_q                      [batch, dec_pos, head, d_head]
    decoder.blocks.{L}.cross_attn.hook_k / hook_v             [batch, enc_pos, kv_head, d_head]
    decoder.blocks.{L}.cross_attn.hook_z / hook_result        [batch, dec_pos, head, ...]
    decoder.blocks.{L}.cross_attn.hook_attn_scores / hook_pattern
                                                  [batch, head, q_pos (decoder), k_pos (encoder)]
    decoder.blocks.{L}.hook_cross_attn_out            what cross-attention adds
    decoder.blocks.{L}.hook_resid_cross               the stream after cross-attention
    decoder.blocks.{L}.mlp.*, hook_mlp_out, hook_resid_post
    decoder.blocks.{L}.ln1 / ln_cross / ln2.*         the norms of self-attn / cross-attn / MLP
    decoder.ln_final.*, decoder.hook_out              the stream the unembedding reads
    hook_logits                                       [batch, dec_pos, d_vocab]

Order inside a decoder block: self-attention, cross-attention, MLP (BART, UniTAB, DETR), or
with `cross_attn_first` cross-attention, self-attention, MLP (Mask2Former, Faceptor); the
resid names keep their meaning either way (`hook_resid_mid` follows self-attention,
`hook_resid_cross` cross-attention).

Norm position: "pre" (`x + f(ln(x))`, the LMs') or "post" (`ln(x + f(x))`, BART's and the
original transformer's). Post-norm blocks keep the same site names: a sublayer's norm
(`ln1` after self-attention, `ln_cross` after cross-attention, `ln2` after the MLP) is
applied after its residual add, and `hook_resid_mid` / `hook_resid_cross` /
`hook_resid_post` are the normed streams the next sublayer reads, so `hook_resid_post` of
layer L is `hook_resid_pre` of layer L + 1 in both. (In a post-norm stack the final stream
is not a sum of the sublayer outputs; `Stack.post_norm` says so to analyses.)

Learned queries (`n_queries > 0`, DETR / Mask2Former-style): the decoder stream starts as
`n_queries` learned vectors `decoder.W_query` (no decoder inputs, no decoder positions) and
its self-attention is non-causal; the output is `[batch, n_queries, d_vocab_out]` (per-query
class logits, `d_vocab_out` wide) or the final query stream with `d_vocab_out=0`. (DETR
also re-adds a query position embedding to q and k in every layer; this model does not.)

Parameters (TransformerLens layouts, as `mj.Transformer`'s):

    W_E [d_vocab, d_model]          the token embedding of the decoder, the (tied) unembedding
                                    and, with share_embeddings (default), the encoder (BART's
                                    `shared`)
    encoder: W_E (only with share_embeddings=False), W_vec [d_input, d_model], b_vec
             (continuous inputs), W_pos [n_encoder_ctx + pos_offset, d_model], ln_embed,
             blocks_{L} (ln1, attn, ln2, mlp), ln_final
    decoder: W_pos [n_ctx + pos_offset, d_model] or W_query [n_queries, d_model], ln_embed,
             blocks_{L} (ln1, attn, ln_cross, cross_attn, ln2, mlp), ln_final
    W_U [d_model, d_vocab_out] (untied), b_U [d_vocab_out] (unembed_bias; BART's
    final_logits_bias)

Position p of a stream reads row `p + pos_offset` of its `W_pos` (BART's offset of 2).

Generation (`mj.generate`, token decoders): `cross_kv` runs the encoder once and returns
each decoder layer's cross-attention keys / values; `decode` is one KV-cached decoder
forward against them (as `Transformer.decode`).
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mechjax.hooks import NO_HOOKS
from mechjax.models import axes as A
from mechjax.models.config import ConfigIO, TransformerConfig
from mechjax.models.protocol import HookedModel, Readout, Stack, check_token_ids, split_inputs
from mechjax.models.transformer import (
    MLP,
    Attention,
    Norm,
    TransformerBlock,
    block_stack,
    dtype_of,
)

_ACTS = ("gelu", "gelu_new", "relu", "silu")
_NORMS = ("LN", "RMS")
_NORM_POSITIONS = ("pre", "post")
_POS = ("standard", "none")
_DTYPES = ("float32", "bfloat16", "float16")
STACKS = ("encoder.blocks", "decoder.blocks")


@dataclasses.dataclass(frozen=True)
class EncoderDecoderConfig(ConfigIO):
    """Every knob of :class:`mechjax.EncoderDecoder`; frozen, hashable, JSON-serialisable.

    Sizes: `d_model` (both stacks; the decoder reads the memory at this width), `n_heads`
    (encoder; `n_decoder_heads` defaults to it), `d_head` (default d_model // heads),
    `d_mlp` (encoder, default 4 * d_model; `d_decoder_mlp` defaults to it).

    Inputs: the encoder takes int tokens `[batch, enc_pos]` (needs `d_vocab`), float
    vectors `[batch, enc_pos, d_input]` through a linear input projection (needs `d_input`:
    image patches, region features), or the mixed dict `{"tokens", "vectors", "is_vector"}`
    (as `mj.Transformer`). The decoder takes int tokens `[batch, dec_pos]` from the same
    vocabulary, or nothing with `n_queries` learned queries.

    Output: logits `[batch, dec_pos, d_vocab_out]` (`d_vocab_out` defaults to `d_vocab`;
    `tie_embeddings` reads them through `W_E.T`); `d_vocab_out=0` returns the decoder's
    final stream `[batch, dec_pos, d_model]` instead.
    """

    d_model: int
    n_encoder_layers: int
    n_decoder_layers: int
    n_heads: int
    n_decoder_heads: int | None = None  # default n_heads
    d_head: int | None = None  # default d_model // heads
    d_mlp: int | None = None  # encoder MLP width; default 4 * d_model
    d_decoder_mlp: int | None = None  # default d_mlp
    d_vocab: int = 0  # token vocabulary (encoder and decoder); 0 = no token inputs
    d_vocab_out: int | None = None  # unembedding width; default d_vocab; 0 = no unembedding
    n_ctx: int = 1024  # longest decoder sequence (learned positions)
    n_encoder_ctx: int | None = None  # longest encoder sequence; default n_ctx
    d_input: int | None = None  # width of continuous encoder inputs (linear projection)
    n_queries: int = 0  # > 0: learned decoder queries instead of decoder tokens
    norm_position: str = "pre"  # "pre" (x + f(ln x)) or "post" (ln(x + f(x)), BART)
    normalization_type: str = "LN"  # "LN" or "RMS"
    final_norm: bool | None = None  # encoder/decoder ln_final; default: True iff pre-norm
    positional_embedding_type: str = "standard"  # "standard" (learned) or "none"
    pos_offset: int = 0  # position p reads W_pos[p + pos_offset] (BART: 2)
    layernorm_embedding: bool = False  # a norm after embedding + positions (BART)
    scale_embedding: bool = False  # token embeddings times sqrt(d_model)
    share_embeddings: bool = True  # one W_E for both streams; False: encoder.W_E of its own
    tie_embeddings: bool = False  # logits = x @ W_E.T (no W_U)
    unembed_bias: bool = True  # b_U (BART's final_logits_bias)
    cross_attn_first: bool = False  # decoder block order cross-attn, self-attn, MLP
    act_fn: str = "gelu"  # gelu (exact), gelu_new (tanh approx.), relu, silu
    attn_bias: bool = True
    mlp_bias: bool = True
    eps: float = 1e-5
    init_range: float = 0.02
    dtype: str = "float32"  # activations
    param_dtype: str = "float32"
    name: str = ""  # free-form label (e.g. the HF architecture)

    def __post_init__(self):
        def bad(field, value, valid):
            raise ValueError(
                f"EncoderDecoderConfig.{field}={value!r} is not valid; use one of {valid}."
            )

        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        for f in ("d_model", "n_encoder_layers", "n_decoder_layers", "n_heads", "n_ctx"):
            v = getattr(self, f)
            if not is_int(v) or v <= 0:
                raise ValueError(f"EncoderDecoderConfig.{f} must be a positive int, got {v!r}")
        for f in ("n_decoder_heads", "d_head", "d_mlp", "d_decoder_mlp", "n_encoder_ctx"):
            v = getattr(self, f)
            if v is not None and (not is_int(v) or v <= 0):
                raise ValueError(
                    f"EncoderDecoderConfig.{f} must be a positive int or None, got {v!r}"
                )
        for f in ("d_vocab", "n_queries", "pos_offset"):
            v = getattr(self, f)
            if not is_int(v) or v < 0:
                raise ValueError(f"EncoderDecoderConfig.{f} must be an int >= 0, got {v!r}")
        if self.d_vocab_out is not None and (not is_int(self.d_vocab_out) or self.d_vocab_out < 0):
            raise ValueError(
                f"EncoderDecoderConfig.d_vocab_out must be an int >= 0 or None, got "
                f"{self.d_vocab_out!r}"
            )
        if self.d_input is not None and (not is_int(self.d_input) or self.d_input <= 0):
            raise ValueError(
                f"EncoderDecoderConfig.d_input must be a positive int or None, got {self.d_input!r}"
            )
        if self.act_fn not in _ACTS:
            bad("act_fn", self.act_fn, _ACTS)
        if self.normalization_type not in _NORMS:
            bad("normalization_type", self.normalization_type, _NORMS)
        if self.norm_position not in _NORM_POSITIONS:
            bad("norm_position", self.norm_position, _NORM_POSITIONS)
        if self.positional_embedding_type not in _POS:
            bad("positional_embedding_type", self.positional_embedding_type, _POS)
        for f in ("dtype", "param_dtype"):
            if getattr(self, f) not in _DTYPES:
                bad(f, getattr(self, f), _DTYPES)
        for f in (
            "layernorm_embedding",
            "scale_embedding",
            "share_embeddings",
            "tie_embeddings",
            "unembed_bias",
            "cross_attn_first",
            "attn_bias",
            "mlp_bias",
        ):
            if not isinstance(getattr(self, f), bool):
                raise ValueError(
                    f"EncoderDecoderConfig.{f} must be True or False, got {getattr(self, f)!r}"
                )
        if self.final_norm is not None and not isinstance(self.final_norm, bool):
            raise ValueError(
                f"EncoderDecoderConfig.final_norm must be True, False or None, got "
                f"{self.final_norm!r}"
            )
        if self.d_head is None:
            for f in ("n_heads", "n_decoder_heads"):
                h = getattr(self, f)
                if h is not None and self.d_model % h:
                    raise ValueError(
                        f"EncoderDecoderConfig: d_model={self.d_model} is not divisible by "
                        f"{f}={h}; set d_head explicitly."
                    )
        if self.d_vocab == 0 and not self.d_input:
            raise ValueError(
                "EncoderDecoderConfig: the encoder needs an input: set d_vocab (token inputs) "
                "and/or d_input (continuous vectors, e.g. image patches)."
            )
        if self.n_queries == 0 and self.d_vocab == 0:
            raise ValueError(
                "EncoderDecoderConfig: the decoder reads tokens (needs d_vocab > 0) or "
                "n_queries learned queries; set one of them."
            )
        if self.tie_embeddings and (self.d_vocab == 0 or self.vocab_out != self.d_vocab):
            raise ValueError(
                "EncoderDecoderConfig: tie_embeddings needs d_vocab > 0 and d_vocab_out == "
                f"d_vocab (got d_vocab={self.d_vocab}, d_vocab_out={self.d_vocab_out})."
            )
        if not self.share_embeddings and self.d_vocab == 0:
            raise ValueError(
                "EncoderDecoderConfig: share_embeddings=False gives the encoder its own token "
                "embedding, which needs d_vocab > 0."
            )
        if not self.eps > 0:
            raise ValueError(f"EncoderDecoderConfig.eps must be > 0, got {self.eps!r}")

    # Resolved sizes ---------------------------------------------------------------------------
    @property
    def decoder_heads(self) -> int:
        return self.n_decoder_heads if self.n_decoder_heads is not None else self.n_heads

    @property
    def encoder_mlp(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    @property
    def decoder_mlp(self) -> int:
        return self.d_decoder_mlp if self.d_decoder_mlp is not None else self.encoder_mlp

    @property
    def encoder_ctx(self) -> int:
        return self.n_encoder_ctx if self.n_encoder_ctx is not None else self.n_ctx

    @property
    def vocab_out(self) -> int:
        return self.d_vocab_out if self.d_vocab_out is not None else self.d_vocab

    @property
    def post_norm(self) -> bool:
        return self.norm_position == "post"

    @property
    def has_final_norm(self) -> bool:
        return (not self.post_norm) if self.final_norm is None else self.final_norm

    @property
    def learned_queries(self) -> bool:
        return self.n_queries > 0

    def _block_config(self, n_layers, n_heads, d_mlp, causal) -> TransformerConfig:
        # d_input only satisfies TransformerConfig's "some input" check: blocks never read it.
        return TransformerConfig(
            d_model=self.d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            d_head=self.d_head,
            d_mlp=d_mlp,
            d_input=self.d_model,
            act_fn=self.act_fn,
            normalization_type=self.normalization_type,
            positional_embedding_type="none",
            attn_bias=self.attn_bias,
            mlp_bias=self.mlp_bias,
            causal=causal,
            eps=self.eps,
            init_range=self.init_range,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=self.name,
        )

    @property
    def encoder_block_config(self) -> TransformerConfig:
        """The encoder blocks' config (non-causal, no positions inside the blocks)."""
        return self._block_config(self.n_encoder_layers, self.n_heads, self.encoder_mlp, False)

    @property
    def decoder_block_config(self) -> TransformerConfig:
        """The decoder blocks' config (causal over tokens; non-causal over learned queries)."""
        return self._block_config(
            self.n_decoder_layers, self.decoder_heads, self.decoder_mlp, not self.learned_queries
        )


# --------------------------------------------------------------------------------------------
# Blocks and stacks
# --------------------------------------------------------------------------------------------


class DecoderBlock(nn.Module):
    """Self-attention, cross-attention to the memory, MLP; pre- or post-norm (see module doc).

    `cfg` is the decoder's block config (`EncoderDecoderConfig.decoder_block_config`); sites
    under `prefix` (`decoder.blocks.{L}`); params `ln1, attn, ln_cross, cross_attn, ln2, mlp`.
    """

    cfg: TransformerConfig
    prefix: str
    post_norm: bool = False
    cross_attn_first: bool = False

    def setup(self):
        c, p = self.cfg, self.prefix
        dt, pd = dtype_of(c.dtype), dtype_of(c.param_dtype)

        def attn(name, causal):
            return Attention(
                c.n_heads,
                c.kv_heads,
                c.d_model,
                c.head_dim,
                f"{p}.{name}",
                c.attn_bias,
                causal,
                0,
                c.rotary_base,
                c.init_range,
                dt,
                pd,
            )

        def norm(name):
            return Norm(c.normalization_type, c.d_model, c.eps, f"{p}.{name}", dt, pd)

        self.ln1 = norm("ln1")
        self.attn = attn("attn", c.causal)
        self.ln_cross = norm("ln_cross")
        self.cross_attn = attn("cross_attn", False)
        self.ln2 = norm("ln2")
        self.mlp = MLP(
            c.d_model,
            c.mlp_dim,
            c.act_fn,
            f"{p}.mlp",
            False,
            c.mlp_bias,
            c.init_range,
            dt,
            pd,
        )

    def _sublayer(self, x, hooks, ln, fn, out_site, resid_site):
        """resid -> resid + f(ln(resid)) (pre-norm) or ln(resid + f(resid)) (post-norm)."""
        p, R = self.prefix, A.RESID
        if self.post_norm:
            out = hooks(f"{p}.{out_site}", fn(x), R)
            return hooks(f"{p}.{resid_site}", ln(x + out, hooks), R)
        out = hooks(f"{p}.{out_site}", fn(ln(x, hooks)), R)
        return hooks(f"{p}.{resid_site}", x + out, R)

    def __call__(
        self,
        resid,
        memory,
        hooks=NO_HOOKS,
        self_mask=None,
        cross_mask=None,
        *,
        kv_cache=None,
        cache_index=None,
        memory_kv=None,
    ):
        """resid `[batch, dec_pos, d_model]`; memory `[batch, enc_pos, d_model]`; self_mask
        `[batch, dec_pos]` / `[batch, dec_pos, dec_pos]`; cross_mask `[batch, enc_pos]`.

        KV-cached decoding (`mj.generate`): `kv_cache` `{"k", "v"}` self-attention buffers
        `[batch, total_len, kv_head, d_head]` written at slot `cache_index` (self_mask is then
        the buffer's key mask `[batch, total_len]`), `memory_kv` this layer's cross-attention
        keys / values from `cross_kv` (memory unused); returns `(resid_post, new_kv_cache)`.
        """
        p = self.prefix
        resid = hooks(f"{p}.hook_resid_pre", resid, A.RESID)  # [batch, dec_pos, d_model]
        new = {}

        def self_attn_fn(h):
            if kv_cache is None:
                return self.attn(h, hooks, self_mask)
            out, new["kv"] = self.attn(
                h, hooks, self_mask, kv_cache=kv_cache, cache_index=cache_index
            )
            return out

        def self_attn(x):
            return self._sublayer(
                x, hooks, self.ln1, self_attn_fn, "hook_attn_out", "hook_resid_mid"
            )

        def cross_attn(x):
            return self._sublayer(
                x,
                hooks,
                self.ln_cross,
                lambda h: self.cross_attn(h, hooks, cross_mask, kv=memory, memory_kv=memory_kv),
                "hook_cross_attn_out",
                "hook_resid_cross",
            )

        order = (cross_attn, self_attn) if self.cross_attn_first else (self_attn, cross_attn)
        for sub in order:
            resid = sub(resid)
        out = self._sublayer(
            resid, hooks, self.ln2, lambda h: self.mlp(h, hooks), "hook_mlp_out", "hook_resid_post"
        )
        return out if kv_cache is None else (out, new["kv"])

    def cross_kv(self, memory, hooks=NO_HOOKS):
        """This layer's cross-attention `{"k", "v"}` `[batch, enc_pos, kv_head, d_head]` of
        the memory (sites `cross_attn.hook_k` / `hook_v`), computed once for decoding."""
        k, v = self.cross_attn(memory, hooks, None, kv=memory, return_kv=True)
        return {"k": k, "v": v}


def _embed_tokens(W_E, tokens, cfg, dt, is_vec=None):
    safe = tokens if is_vec is None else jnp.where(is_vec, 0, tokens)
    emb = W_E[safe].astype(dt)  # [batch, pos, d_model]
    if cfg.scale_embedding:
        emb = emb * jnp.asarray(math.sqrt(cfg.d_model), dt)
    return emb


class Encoder(nn.Module):
    """The encoder: input embedding, positions, `encoder.blocks`, final norm, `hook_out`."""

    cfg: EncoderDecoderConfig

    def setup(self):
        c, P = self.cfg, "encoder"
        dt, pd = dtype_of(c.dtype), dtype_of(c.param_dtype)
        init = nn.initializers.normal(c.init_range)
        if not c.share_embeddings:
            self.W_E = self.param("W_E", init, (c.d_vocab, c.d_model), pd)
        if c.d_input:
            self.W_vec = self.param(
                "W_vec", nn.initializers.lecun_normal(), (c.d_input, c.d_model), pd
            )
            self.b_vec = self.param("b_vec", nn.initializers.zeros, (c.d_model,), pd)
        if c.positional_embedding_type == "standard":
            self.W_pos = self.param("W_pos", init, (c.encoder_ctx + c.pos_offset, c.d_model), pd)
        if c.layernorm_embedding:
            self.ln_embed = Norm(c.normalization_type, c.d_model, c.eps, f"{P}.ln_embed", dt, pd)
        bc = c.encoder_block_config
        self.blocks = [
            TransformerBlock(bc, i, prefix=f"{P}.blocks.{i}", post_norm=c.post_norm)
            for i in range(c.n_encoder_layers)
        ]
        if c.has_final_norm:
            self.ln_final = Norm(c.normalization_type, c.d_model, c.eps, f"{P}.ln_final", dt, pd)

    def embed(self, inputs, W_E, hooks=NO_HOOKS):
        """Encoder inputs -> the stream entering `encoder.blocks.0`, `[batch, enc_pos, d_model]`
        (`W_E`: the shared token embedding; unused with share_embeddings=False)."""
        c, dt = self.cfg, dtype_of(self.cfg.dtype)
        if not c.share_embeddings:
            W_E = self.W_E
        tokens, vectors, is_vec = split_inputs(inputs)
        emb = None
        if tokens is not None:
            emb = _embed_tokens(W_E, jnp.asarray(tokens), c, dt, is_vec)
        if vectors is not None:
            vec = jnp.asarray(vectors).astype(dt) @ self.W_vec.astype(dt) + self.b_vec.astype(dt)
            emb = vec if emb is None else jnp.where(jnp.asarray(is_vec)[..., None], vec, emb)
        emb = hooks("encoder.hook_embed", emb, A.RESID)  # [batch, enc_pos, d_model]
        if c.positional_embedding_type == "standard":
            n, o = emb.shape[1], c.pos_offset
            pos = jnp.broadcast_to(self.W_pos[o : o + n].astype(dt)[None], emb.shape)
            emb = emb + hooks("encoder.hook_pos_embed", pos, A.RESID)
        if c.layernorm_embedding:
            emb = self.ln_embed(emb, hooks)
        return emb

    def run(self, resid, hooks=NO_HOOKS, mask=None, start: int = 0):
        """Blocks `start, ...` and the final norm on `resid` -> the memory (`encoder.hook_out`)."""
        for block in self.blocks[start:]:
            resid = block(resid, hooks, mask)
        if self.cfg.has_final_norm:
            resid = self.ln_final(resid, hooks)
        return hooks("encoder.hook_out", resid, A.RESID)  # [batch, enc_pos, d_model]


class Decoder(nn.Module):
    """The decoder: token embedding or learned queries, `decoder.blocks`, final norm."""

    cfg: EncoderDecoderConfig

    def setup(self):
        c, P = self.cfg, "decoder"
        dt, pd = dtype_of(c.dtype), dtype_of(c.param_dtype)
        init = nn.initializers.normal(c.init_range)
        if c.learned_queries:
            self.W_query = self.param("W_query", init, (c.n_queries, c.d_model), pd)
        elif c.positional_embedding_type == "standard":
            self.W_pos = self.param("W_pos", init, (c.n_ctx + c.pos_offset, c.d_model), pd)
        if c.layernorm_embedding:
            self.ln_embed = Norm(c.normalization_type, c.d_model, c.eps, f"{P}.ln_embed", dt, pd)
        bc = c.decoder_block_config
        self.blocks = [
            DecoderBlock(bc, f"{P}.blocks.{i}", c.post_norm, c.cross_attn_first)
            for i in range(c.n_decoder_layers)
        ]
        if c.has_final_norm:
            self.ln_final = Norm(c.normalization_type, c.d_model, c.eps, f"{P}.ln_final", dt, pd)

    def embed(self, tokens, W_E, hooks=NO_HOOKS, batch: int = 1, pos_ids=None):
        """Decoder tokens (or the learned queries, `batch` copies) -> `decoder.blocks.0`'s input.

        `pos_ids`: optional int `[batch, dec_pos]` token positions (KV-cached decoding);
        None = `0 .. dec_pos-1`."""
        c, dt = self.cfg, dtype_of(self.cfg.dtype)
        if c.learned_queries:
            emb = jnp.broadcast_to(self.W_query.astype(dt)[None], (batch, c.n_queries, c.d_model))
            emb = hooks("decoder.hook_embed", emb, A.RESID)  # [batch, n_queries, d_model]
        else:
            emb = hooks("decoder.hook_embed", _embed_tokens(W_E, tokens, c, dt), A.RESID)
            if c.positional_embedding_type == "standard":
                n, o = emb.shape[1], c.pos_offset
                if pos_ids is None:
                    pos = jnp.broadcast_to(self.W_pos[o : o + n].astype(dt)[None], emb.shape)
                else:
                    pos = self.W_pos[jnp.asarray(pos_ids) + o]  # [batch, dec_pos, d_model]
                    pos = pos.astype(dt)
                emb = emb + hooks("decoder.hook_pos_embed", pos, A.RESID)
        if c.layernorm_embedding:
            emb = self.ln_embed(emb, hooks)
        return emb

    def run(
        self,
        resid,
        memory,
        hooks=NO_HOOKS,
        self_mask=None,
        cross_mask=None,
        start: int = 0,
        positions=None,
    ):
        """Blocks `start, ...` and the final norm -> `decoder.hook_out` `[batch, dec_pos, d_model]`
        (only `positions`, a static tuple, when given)."""
        for block in self.blocks[start:]:
            resid = block(resid, memory, hooks, self_mask, cross_mask)
        if positions is not None:
            resid = resid[:, list(positions)]  # [batch, len(positions), d_model]
        if self.cfg.has_final_norm:
            resid = self.ln_final(resid, hooks)
        return hooks("decoder.hook_out", resid, A.RESID)

    def decode(
        self, resid, hooks, self_mask, cross_mask, *, kv_cache, cache_index, memory_kv, positions
    ):
        """`run` against the KV cache (see `DecoderBlock`) -> `(decoder.hook_out, new_cache)`."""
        new_cache = []
        for block, layer_cache, layer_kv in zip(self.blocks, kv_cache, memory_kv):
            resid, nc = block(
                resid,
                None,
                hooks,
                self_mask,
                cross_mask,
                kv_cache=layer_cache,
                cache_index=cache_index,
                memory_kv=layer_kv,
            )
            new_cache.append(nc)
        if positions is not None:
            resid = resid[:, list(positions)]  # [batch, len(positions), d_model]
        if self.cfg.has_final_norm:
            resid = self.ln_final(resid, hooks)
        return hooks("decoder.hook_out", resid, A.RESID), new_cache


# --------------------------------------------------------------------------------------------
# Host-side input checks
# --------------------------------------------------------------------------------------------


def _is_int(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.integer)


def _check_encoder(c: EncoderDecoderConfig, enc) -> tuple[int, int]:
    """(batch, enc_pos) of valid encoder inputs; ValueError naming the problem otherwise."""
    what = "inputs['encoder']"
    kinds = []
    if c.d_vocab:
        kinds.append("int tokens [batch, enc_pos]")
    if c.d_input:
        kinds.append(f"float vectors [batch, enc_pos, {c.d_input}]")
    if c.d_vocab and c.d_input:
        kinds.append("a dict {'tokens', 'vectors', 'is_vector'}")
    valid = " or ".join(kinds)
    if isinstance(enc, dict):
        if not (c.d_vocab and c.d_input):
            raise ValueError(f"{what} is a dict {sorted(enc)}; this model takes {valid}.")
        missing = {"tokens", "vectors", "is_vector"} - set(enc)
        if missing:
            raise ValueError(
                f"{what}: mixed inputs need keys tokens, vectors, is_vector; missing "
                f"{sorted(missing)}"
            )
        seq = tuple(np.shape(enc["tokens"]))
        if len(seq) != 2 or not _is_int(enc["tokens"]):
            raise ValueError(f"{what}['tokens'] must be int [batch, enc_pos], got shape {seq}")
        want = (*seq, c.d_input)
        if tuple(np.shape(enc["vectors"])) != want:
            raise ValueError(
                f"{what}['vectors'] must be [batch, enc_pos, d_input] = {list(want)}, got "
                f"{list(np.shape(enc['vectors']))}"
            )
        if tuple(np.shape(enc["is_vector"])) != seq:
            raise ValueError(
                f"{what}['is_vector'] must be bool [batch, enc_pos] = {list(seq)}, got "
                f"{list(np.shape(enc['is_vector']))}"
            )
        check_token_ids(enc["tokens"], c.d_vocab, enc["is_vector"], what=f"{what} token id")
    else:
        seq = tuple(np.shape(enc))
        if _is_int(enc):
            if not c.d_vocab:
                raise ValueError(
                    f"{what} are int tokens (shape {seq}) but the model has no token "
                    f"embedding (d_vocab=0); it takes {valid}."
                )
            if len(seq) != 2:
                raise ValueError(f"{what}: int tokens must be [batch, enc_pos], got shape {seq}")
            check_token_ids(enc, c.d_vocab, what=f"{what} token id")
        else:
            if not c.d_input:
                raise ValueError(
                    f"{what} are floats of shape {seq} (dtype {jnp.result_type(enc)}) but the "
                    f"model has no vector input projection (d_input=None); it takes {valid}."
                )
            if len(seq) != 3 or seq[-1] != c.d_input:
                raise ValueError(
                    f"{what}: vectors must be [batch, enc_pos, {c.d_input}], got shape {seq}"
                )
    if seq[1] < 1:
        raise ValueError(f"{what} is empty (enc_pos = 0)")
    if c.positional_embedding_type == "standard" and seq[1] > c.encoder_ctx:
        raise ValueError(
            f"{what} has length {seq[1]}, longer than the encoder's n_encoder_ctx="
            f"{c.encoder_ctx} learned positions"
        )
    return int(seq[0]), int(seq[1])


def _check_decoder(c: EncoderDecoderConfig, dec) -> tuple[int, int]:
    what = "inputs['decoder']"
    seq = tuple(np.shape(dec))
    if not _is_int(dec):
        raise ValueError(
            f"{what} must be int token ids [batch, dec_pos], got dtype {jnp.result_type(dec)}"
        )
    if len(seq) != 2:
        hint = " (add a batch axis: tokens[None])" if len(seq) == 1 else ""
        raise ValueError(f"{what} must be int tokens [batch, dec_pos], got shape {seq}{hint}")
    if seq[1] < 1:
        raise ValueError(f"{what} is empty (dec_pos = 0)")
    if c.positional_embedding_type == "standard" and seq[1] > c.n_ctx:
        raise ValueError(
            f"{what} has length {seq[1]}, longer than the decoder's n_ctx={c.n_ctx} positions"
        )
    check_token_ids(dec, c.d_vocab, what=f"{what} token id")
    return int(seq[0]), int(seq[1])


def _masks(attention_mask):
    """(encoder mask, decoder mask) from the `attention_mask` dict (None where absent)."""
    if attention_mask is None:
        return None, None
    return attention_mask.get("encoder"), attention_mask.get("decoder")


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class EncoderDecoder(nn.Module, HookedModel):
    """Encoder-decoder transformer with TransformerLens sites (see the module docstring).

    Inputs: `{"encoder": tokens [batch, enc_pos] | vectors [batch, enc_pos, d_input] | the
    mixed dict, "decoder": int tokens [batch, dec_pos]}` (no "decoder" with learned
    queries). `attention_mask`: optional `{"encoder": [batch, enc_pos], "decoder": [batch,
    dec_pos] or [batch, dec_pos, dec_pos]}` (1 = real token / may attend); the encoder's
    padding mask also masks the cross-attention keys. Output: logits
    `[batch, dec_pos, d_vocab_out]` (`[batch, n_queries, ...]` with learned queries), or
    the decoder's final stream with `d_vocab_out=0`.

    Layer stacks: `encoder.blocks` and `decoder.blocks` (attention modules `attn` and
    `cross_attn`); `resume` restarts at either (see `resume`).
    """

    cfg: EncoderDecoderConfig

    def setup(self):
        c = self.cfg
        pd = dtype_of(c.param_dtype)
        init = nn.initializers.normal(c.init_range)
        if c.d_vocab > 0:
            self.W_E = self.param("W_E", init, (c.d_vocab, c.d_model), pd)
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        if c.vocab_out > 0:
            if not c.tie_embeddings:
                self.W_U = self.param("W_U", init, (c.d_model, c.vocab_out), pd)
            if c.unembed_bias:
                self.b_U = self.param("b_U", nn.initializers.zeros, (c.vocab_out,), pd)

    # -- the model protocol (see mechjax.models) ----------------------------------------------

    def check_inputs(self, inputs, attention_mask=None) -> None:
        """Host-side: the inputs dict, each stream's dtype / shape / token ids / length, and
        the attention_mask dict's shapes."""
        c = self.cfg
        keys = ("encoder",) if c.learned_queries else ("encoder", "decoder")
        want = "{'encoder': ...}" if c.learned_queries else "{'encoder': ..., 'decoder': tokens}"
        if not isinstance(inputs, dict):
            raise ValueError(
                f"EncoderDecoder takes a dict {want}; got {type(inputs).__name__} of shape "
                f"{tuple(np.shape(inputs))}."
            )
        unknown = sorted(set(inputs) - set(keys))
        if unknown and c.learned_queries and "decoder" in unknown:
            raise ValueError(
                f"this EncoderDecoder decodes n_queries={c.n_queries} learned queries and "
                f"takes no decoder inputs; pass {want} only."
            )
        if unknown:
            raise ValueError(f"inputs has unknown keys {unknown}; expected {want}.")
        missing = [k for k in keys if k not in inputs]
        if missing:
            raise ValueError(f"inputs lacks {missing}; expected {want}.")
        b_enc, n_enc = _check_encoder(c, inputs["encoder"])
        n_dec = c.n_queries
        if not c.learned_queries:
            b_dec, n_dec = _check_decoder(c, inputs["decoder"])
            if b_dec != b_enc:
                raise ValueError(
                    f"inputs['encoder'] has batch {b_enc} but inputs['decoder'] has batch {b_dec}"
                )
        if attention_mask is None:
            return
        if not isinstance(attention_mask, dict):
            raise ValueError(
                f"attention_mask of an EncoderDecoder is a dict {{'encoder': [batch, enc_pos], "
                f"'decoder': [batch, dec_pos]}} (either key optional); got "
                f"{type(attention_mask).__name__} of shape {tuple(np.shape(attention_mask))}."
            )
        bad = sorted(set(attention_mask) - {"encoder", "decoder"})
        if bad:
            raise ValueError(
                f"attention_mask has unknown keys {bad}; valid keys: 'encoder', 'decoder'."
            )
        enc_m, dec_m = _masks(attention_mask)
        if enc_m is not None and tuple(np.shape(enc_m)) != (b_enc, n_enc):
            raise ValueError(
                f"attention_mask['encoder'] has shape {tuple(np.shape(enc_m))}; it must be the "
                f"encoder's padding mask [batch, enc_pos] = {(b_enc, n_enc)} (1 = real token; "
                f"it also masks the cross-attention keys)."
            )
        if dec_m is not None:
            if c.learned_queries:
                raise ValueError(
                    "attention_mask['decoder'] given, but this model decodes learned queries "
                    "(every query attends to every query); pass only attention_mask['encoder']."
                )
            valid = ((b_enc, n_dec), (b_enc, n_dec, n_dec))
            if tuple(np.shape(dec_m)) not in valid:
                raise ValueError(
                    f"attention_mask['decoder'] has shape {tuple(np.shape(dec_m))}; it must be "
                    f"[batch, dec_pos] {valid[0]} (padding) or [batch, q_pos, k_pos] {valid[1]}."
                )

    def example_inputs(self):
        c = self.cfg
        enc = (
            jnp.zeros((1, 2), jnp.int32)
            if c.d_vocab > 0
            else jnp.zeros((1, 2, c.d_input), jnp.float32)
        )
        if c.learned_queries:
            return {"encoder": enc}
        return {"encoder": enc, "decoder": jnp.zeros((1, 2), jnp.int32)}

    def layer_stacks(self) -> tuple[Stack, ...]:
        c = self.cfg
        return (
            block_stack(c.encoder_block_config, "encoder.blocks", post_norm=c.post_norm),
            block_stack(
                c.decoder_block_config, "decoder.blocks", cross_attn=True, post_norm=c.post_norm
            ),
        )

    def resume_sites(self, stack: str, layer: int) -> tuple[str, ...]:
        """Encoder layer L: its resid_pre (the decoder is recomputed from the inputs);
        decoder layer L: its resid_pre and the memory `encoder.hook_out`."""
        self.stack(stack)
        if stack == "encoder.blocks":
            return (f"encoder.blocks.{layer}.hook_resid_pre",)
        return (f"decoder.blocks.{layer}.hook_resid_pre", "encoder.hook_out")

    def resume(
        self,
        inputs,
        state,
        hooks=NO_HOOKS,
        attention_mask=None,
        *,
        stack="decoder.blocks",
        layer=0,
        positions=None,
    ):
        """Runs everything from `stack` layer `layer` on, from `state` (the values of
        `resume_sites(stack, layer)`); `positions` (static tuple) restricts the decoder's
        final norm and unembedding to those decoder positions."""
        enc_mask, dec_mask = _masks(attention_mask)
        if stack == "encoder.blocks":
            memory = self.encoder.run(
                state[f"encoder.blocks.{layer}.hook_resid_pre"], hooks, enc_mask, layer
            )
            resid = self._decoder_embed(inputs, memory, hooks)
            start = 0
        elif stack == "decoder.blocks":
            memory = state["encoder.hook_out"]
            resid, start = state[f"decoder.blocks.{layer}.hook_resid_pre"], layer
        else:
            self.stack(stack)  # raises, naming the valid stacks
        x = self.decoder.run(resid, memory, hooks, dec_mask, enc_mask, start, positions)
        return self.unembed(x, hooks)

    def readout(self) -> Readout:
        c = self.cfg
        norm = "decoder.ln_final" if c.has_final_norm else None
        return Readout(
            stack="decoder.blocks",
            norm=norm,
            norm_type=c.normalization_type if norm else None,
            pool=None,
            site="hook_logits" if c.vocab_out > 0 else None,
        )

    def readout_weights(self, params):
        """`(W [d_model, d_vocab_out], b or None)` (`W_E.T` when tied); None with d_vocab_out=0."""
        c = self.cfg
        if c.vocab_out == 0:
            return None
        p = params.get("params", params)
        W = jnp.asarray(p["W_E"]).T if c.tie_embeddings else jnp.asarray(p["W_U"])
        return W, (jnp.asarray(p["b_U"]) if c.unembed_bias else None)

    # -- forward ------------------------------------------------------------------------------

    def encode(self, inputs, hooks=NO_HOOKS, attention_mask=None):
        """The memory `encoder.hook_out` `[batch, enc_pos, d_model]` for `inputs["encoder"]`."""
        enc_mask, _ = _masks(attention_mask)
        W_E = self.W_E if self.cfg.d_vocab > 0 else None
        return self.encoder.run(self.encoder.embed(inputs["encoder"], W_E, hooks), hooks, enc_mask)

    def _decoder_embed(self, inputs, memory, hooks):
        W_E = self.W_E if self.cfg.d_vocab > 0 else None
        tokens = None if self.cfg.learned_queries else jnp.asarray(inputs["decoder"])
        return self.decoder.embed(tokens, W_E, hooks, batch=memory.shape[0])

    def unembed(self, x, hooks=NO_HOOKS):
        """Decoder final stream `[batch, dec_pos, d_model]` -> `hook_logits` (or `x` itself
        with d_vocab_out=0)."""
        c = self.cfg
        if c.vocab_out == 0:
            return x
        W = self.W_E.T if c.tie_embeddings else self.W_U
        logits = x @ W.astype(x.dtype)
        if c.unembed_bias:
            logits = logits + self.b_U.astype(x.dtype)
        return hooks("hook_logits", logits, A.LOGITS)  # [batch, dec_pos, d_vocab_out]

    # -- KV-cached decoding (`mj.generate`) -----------------------------------------------

    def cross_kv(self, inputs, hooks=NO_HOOKS, attention_mask=None):
        """Runs the encoder once and returns every decoder layer's cross-attention keys and
        values of its output: a list of `{"k", "v"}` `[batch, enc_pos, kv_head, d_head]`
        (every `encoder.*` site and `decoder.blocks.{L}.cross_attn.hook_k / hook_v` fire
        here, once per generation)."""
        if self.cfg.learned_queries:
            raise ValueError("a learned-query decoder has no token decoding to prepare")
        memory = self.encode(inputs, hooks, attention_mask)
        return [block.cross_kv(memory, hooks) for block in self.decoder.blocks]

    def decode(
        self,
        inputs,
        hooks=NO_HOOKS,
        attention_mask=None,
        *,
        pos_ids,
        kv_cache,
        cache_index,
        memory_kv,
        memory_mask=None,
        positions=None,
    ):
        """One KV-cached decoder forward (prefill or step of `mj.generate`), mirroring
        `Transformer.decode`.

        inputs: decoder tokens `[batch, q_pos]` occupying buffer slots `cache_index ..`;
        pos_ids: their decoder positions `[batch, q_pos]`; kv_cache: a list (one per decoder
        layer) of self-attention `{"k", "v"}` buffers `[batch, total_len, kv_head, d_head]`;
        attention_mask: the decoder's key mask `[batch, total_len]` (1 = real token);
        memory_kv: `cross_kv(...)`; memory_mask: the encoder's padding mask
        `[batch, enc_pos]` (masks the cross-attention keys). `positions`: static readout
        positions. Returns `(logits, new_kv_cache)`.
        """
        c = self.cfg
        if c.learned_queries:
            raise ValueError("a learned-query decoder (n_queries > 0) cannot decode tokens")
        W_E = self.W_E if c.d_vocab > 0 else None
        resid = self.decoder.embed(jnp.asarray(inputs), W_E, hooks, pos_ids=pos_ids)
        x, new_cache = self.decoder.decode(
            resid,
            hooks,
            attention_mask,
            memory_mask,
            kv_cache=kv_cache,
            cache_index=cache_index,
            memory_kv=memory_kv,
            positions=positions,
        )
        return self.unembed(x, hooks), new_cache

    def __call__(self, inputs, hooks=NO_HOOKS, attention_mask=None):
        enc_mask, dec_mask = _masks(attention_mask)
        memory = self.encode(inputs, hooks, attention_mask)
        resid = self._decoder_embed(inputs, memory, hooks)
        return self.unembed(self.decoder.run(resid, memory, hooks, dec_mask, enc_mask), hooks)
