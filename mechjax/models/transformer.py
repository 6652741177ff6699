"""One decoder-only transformer covering GPT-2, GPT-NeoX/Pythia, Llama and attention-only models.

Parameters use TransformerLens names and layouts so that analyses read them
directly (`W_Q[head, d_model, d_head]`, `W_O[head, d_head, d_model]`, ...).
Every module takes a `hooks` context and calls it at each named site; see
`mechjax.models.axes` for the axis vocabulary used in the shape comments below.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mechjax.hooks import NO_HOOKS
from mechjax.models import axes as A
from mechjax.models.config import TransformerConfig
from mechjax.models.protocol import HookedModel, Readout, Stack, split_inputs

_DT = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def dtype_of(name: str):
    return _DT[name]


def _resid_axes(x):
    """RESID for `[batch, pos, d_model]`, POOLED for `[batch, d_model]`."""
    return A.RESID if x.ndim == 3 else A.POOLED


def activation(name: str):
    return {
        "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
        "gelu": lambda x: jax.nn.gelu(x, approximate=False),
        "relu": jax.nn.relu,
        "silu": jax.nn.silu,
    }[name]


class Norm(nn.Module):
    """LayerNorm ("LN") or RMSNorm ("RMS"), computed in fp32. Sites: `hook_scale`, `hook_normalized`."""

    kind: str
    d_model: int
    eps: float
    prefix: str
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, hooks=NO_HOOKS):
        w = self.param("w", nn.initializers.ones, (self.d_model,), self.param_dtype)
        x32 = x.astype(jnp.float32)  # [batch, pos, d_model]
        if self.kind == "LN":
            b = self.param("b", nn.initializers.zeros, (self.d_model,), self.param_dtype)
            x32 = x32 - x32.mean(-1, keepdims=True)
        scale = jnp.sqrt((x32**2).mean(-1, keepdims=True) + self.eps)  # [batch, pos, 1]
        scale = hooks(f"{self.prefix}.hook_scale", scale, A.SCALE[: scale.ndim - 1] + ("one",))
        out = hooks(
            f"{self.prefix}.hook_normalized", x32 / scale, _resid_axes(x32)
        )  # [batch, pos, d_model]
        out = out * w.astype(jnp.float32)
        if self.kind == "LN":
            out = out + b.astype(jnp.float32)
        return out.astype(self.dtype)


def rotary(x, rot_dim: int, base: float, pos_ids=None):
    """Rotate-half RoPE (HF Llama / GPT-NeoX convention) on the first `rot_dim` dims.

    x: [batch, pos, head, d_head]; pos_ids: optional int `[batch, pos]` position of each
    token (left-padded rows, KV-cached decoding); None = `0 .. pos-1` for every row.
    """
    if pos_ids is None:
        pos = jnp.arange(x.shape[1], dtype=jnp.float32)
        inv_freq = 1.0 / (base ** (jnp.arange(0, rot_dim, 2, dtype=jnp.float32) / rot_dim))
        freqs = pos[:, None] * inv_freq[None, :]  # [pos, rot_dim/2]
        emb = jnp.concatenate([freqs, freqs], axis=-1)  # [pos, rot_dim]
        cos = jnp.cos(emb)[None, :, None, :].astype(x.dtype)  # [1, pos, 1, rot_dim]
        sin = jnp.sin(emb)[None, :, None, :].astype(x.dtype)
    else:
        pos = jnp.asarray(pos_ids).astype(jnp.float32)  # [batch, pos]
        inv_freq = 1.0 / (base ** (jnp.arange(0, rot_dim, 2, dtype=jnp.float32) / rot_dim))
        freqs = pos[..., None] * inv_freq  # [batch, pos, rot_dim/2]
        emb = jnp.concatenate([freqs, freqs], axis=-1)  # [batch, pos, rot_dim]
        cos = jnp.cos(emb)[:, :, None, :].astype(x.dtype)  # [batch, pos, 1, rot_dim]
        sin = jnp.sin(emb)[:, :, None, :].astype(x.dtype)
    x_rot, x_pass = x[..., :rot_dim], x[..., rot_dim:]
    half = rot_dim // 2
    rotated = jnp.concatenate([-x_rot[..., half:], x_rot[..., :half]], axis=-1)
    return jnp.concatenate([x_rot * cos + rotated * sin, x_pass], axis=-1)


class Attention(nn.Module):
    """Multi-head (optionally grouped-query) self-attention with TL sites under `{prefix}`."""

    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    prefix: str
    use_bias: bool = True
    causal: bool = True
    rotary_dim: int = 0  # 0 = no rotary
    rotary_base: float = 10000.0
    init_range: float = 0.02
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self,
        x,
        hooks=NO_HOOKS,
        attention_mask=None,
        kv=None,
        *,
        pos_ids=None,
        kv_cache=None,
        cache_index=None,
        tree_mask=None,
        memory_kv=None,
        return_kv=False,
    ):
        """x: queries' stream `[batch, q_pos, d_model]`; kv: keys'/values' stream
        `[batch, k_pos, d_model]` for cross-attention (None: self-attention on x).

        KV-cached decoding (used by `mj.generate`; all None = the plain forward): `kv_cache`
        is `{"k": ..., "v": ...}`, fixed-size buffers `[batch, total_len, kv_head, d_head]`
        (rotated keys); this call's keys/values are written at slot `cache_index` (traced
        int) and the queries attend to every slot `<= cache_index + i` that
        `attention_mask` (`[batch, total_len]`, 1 = real token) allows. `pos_ids`
        `[batch, q_pos]` are the tokens' positions for RoPE. Returns `(out, new_kv_cache)`
        when `kv_cache` is given. `tree_mask` (bool `[q_pos, q_pos]`, with `kv_cache`):
        replaces the causal mask *within* this block of queries (query i may see block
        key j iff `tree_mask[i, j]`; every earlier slot stays visible), for tree-attention
        verification in `mj.speculative_generate`; None = causal.

        Cross-attention decoding (the encoder-decoder's decode path): `return_kv=True`
        returns this layer's hooked `(k, v)` of `kv` (the memory) without attending, once
        per generation; `memory_kv={"k", "v"}` then attends to those instead of projecting
        `kv` again. Neither is used with rotary attention.
        """
        p, H, K, E, D = self.prefix, self.n_heads, self.n_kv_heads, self.d_head, self.d_model
        src = x if kv is None else kv
        init = nn.initializers.normal(self.init_range)
        pd, dt = self.param_dtype, self.dtype
        W_Q = self.param("W_Q", init, (H, D, E), pd).astype(dt)
        W_K = self.param("W_K", init, (K, D, E), pd).astype(dt)
        W_V = self.param("W_V", init, (K, D, E), pd).astype(dt)
        W_O = self.param("W_O", init, (H, E, D), pd).astype(dt)
        if (return_kv or memory_kv is not None) and self.rotary_dim:
            raise ValueError("return_kv / memory_kv are for cross-attention (no rotary)")
        project_kv = memory_kv is None
        q = None
        if not return_kv:
            q = jnp.einsum("bpd,hde->bphe", x, W_Q)  # [batch, pos, head, d_head]
        if project_kv:
            k = jnp.einsum("bpd,hde->bphe", src, W_K)  # [batch, k_pos, kv_head, d_head]
            v = jnp.einsum("bpd,hde->bphe", src, W_V)  # [batch, k_pos, kv_head, d_head]
        else:  # computed (biased and hooked) once per generation by `return_kv`
            k, v = memory_kv["k"], memory_kv["v"]
        if self.use_bias:
            zeros = nn.initializers.zeros
            b_Q = self.param("b_Q", zeros, (H, E), pd).astype(dt)
            b_K = self.param("b_K", zeros, (K, E), pd).astype(dt)
            b_V = self.param("b_V", zeros, (K, E), pd).astype(dt)
            b_O = self.param("b_O", zeros, (D,), pd).astype(dt)
            if q is not None:
                q = q + b_Q
            if project_kv:
                k, v = k + b_K, v + b_V
        if q is not None:
            q = hooks(f"{p}.hook_q", q, A.Q)
        if project_kv:
            k, v = hooks(f"{p}.hook_k", k, A.KV), hooks(f"{p}.hook_v", v, A.KV)
        if return_kv:
            return k, v
        if self.rotary_dim:
            rd, rb = self.rotary_dim, self.rotary_base
            q = hooks(f"{p}.hook_rot_q", rotary(q, rd, rb, pos_ids), A.Q)
            k = hooks(f"{p}.hook_rot_k", rotary(k, rd, rb, pos_ids), A.KV)
        if kv_cache is not None:
            return self._cached(
                q,
                k,
                v,
                hooks,
                attention_mask,
                kv_cache,
                cache_index,
                W_O,
                b_O if self.use_bias else None,
                tree_mask,
            )
        if K != H:  # GQA: each kv head serves H // K consecutive query heads
            k = jnp.repeat(k, H // K, axis=2)  # [batch, pos, head, d_head]
            v = jnp.repeat(v, H // K, axis=2)
        scores = jnp.einsum("bqhe,bkhe->bhqk", q.astype(jnp.float32), k.astype(jnp.float32))
        scores = scores / jnp.sqrt(jnp.float32(E))  # [batch, head, q_pos, k_pos]
        n_q, n_k = scores.shape[-2:]
        allowed = None
        if self.causal:
            allowed = jnp.tril(jnp.ones((n_q, n_k), bool), k=n_k - n_q)[None, None]
        if attention_mask is not None:  # [batch, k_pos] or [batch, q_pos, k_pos]; 1 = attend
            m = attention_mask.astype(bool)
            keys = m[:, None, None, :] if m.ndim == 2 else m[:, None, :, :]
            allowed = keys if allowed is None else allowed & keys
        if allowed is not None:
            scores = jnp.where(allowed, scores, -jnp.inf)
        scores = hooks(f"{p}.hook_attn_scores", scores, A.PATTERN)
        pattern = jax.nn.softmax(scores, axis=-1)
        if attention_mask is not None:  # a padded query row may have every key masked
            pattern = jnp.where(jnp.isnan(pattern), 0.0, pattern)
        pattern = hooks(
            f"{p}.hook_pattern", pattern.astype(dt), A.PATTERN
        )  # [batch, head, q_pos, k_pos]
        z = jnp.einsum("bhqk,bkhe->bqhe", pattern, v)
        z = hooks(f"{p}.hook_z", z, A.Z)  # [batch, pos, head, d_head]
        if hooks.active(f"{p}.hook_result"):
            result = jnp.einsum("bqhe,hed->bqhd", z, W_O)  # [batch, pos, head, d_model]
            out = hooks(f"{p}.hook_result", result, A.RESULT).sum(axis=2)
        else:
            out = jnp.einsum("bqhe,hed->bqd", z, W_O)  # [batch, pos, d_model]
        if self.use_bias:
            out = out + b_O
        return out

    def _cached(
        self, q, k, v, hooks, attention_mask, kv_cache, cache_index, W_O, b_O, tree_mask=None
    ):
        """The rest of `__call__` against the KV cache (see there); -> (out, new_cache)."""
        p, H, K, E, dt = self.prefix, self.n_heads, self.n_kv_heads, self.d_head, self.dtype
        idx = jnp.asarray(cache_index, jnp.int32)
        zero = jnp.zeros((), jnp.int32)
        start = (zero, idx, zero, zero)
        k_all = jax.lax.dynamic_update_slice(kv_cache["k"], k.astype(kv_cache["k"].dtype), start)
        v_all = jax.lax.dynamic_update_slice(kv_cache["v"], v.astype(kv_cache["v"].dtype), start)
        new_cache = {"k": k_all, "v": v_all}
        kk, vv = k_all.astype(dt), v_all.astype(dt)
        if K != H:
            kk = jnp.repeat(kk, H // K, axis=2)  # [batch, total_len, head, d_head]
            vv = jnp.repeat(vv, H // K, axis=2)
        scores = jnp.einsum("bqhe,bkhe->bhqk", q.astype(jnp.float32), kk.astype(jnp.float32))
        scores = scores / jnp.sqrt(jnp.float32(E))  # [batch, head, q_pos, total_len]
        n_q, n_k = scores.shape[-2:]
        if tree_mask is None:
            q_slot = idx + jnp.arange(n_q)  # each query's slot in the buffer
            allowed = (jnp.arange(n_k)[None, :] <= q_slot[:, None])[None, None]  # causal, written
        else:  # every slot before the block, and within it the tree (ancestors and self)
            block = jnp.zeros((n_q, n_k), bool)  # [q_pos, total_len]
            block = jax.lax.dynamic_update_slice(block, jnp.asarray(tree_mask, bool), (zero, idx))
            allowed = ((jnp.arange(n_k)[None, :] < idx) | block)[None, None]
        if attention_mask is not None:  # [batch, total_len], 1 = real token
            allowed = allowed & attention_mask.astype(bool)[:, None, None, :]
        scores = jnp.where(allowed, scores, -jnp.inf)
        scores = hooks(f"{p}.hook_attn_scores", scores, A.PATTERN)
        pattern = jax.nn.softmax(scores, axis=-1)
        pattern = jnp.where(jnp.isnan(pattern), 0.0, pattern)  # a pad query sees no key
        pattern = hooks(f"{p}.hook_pattern", pattern.astype(dt), A.PATTERN)
        z = jnp.einsum("bhqk,bkhe->bqhe", pattern, vv)
        z = hooks(f"{p}.hook_z", z, A.Z)  # [batch, q_pos, head, d_head]
        if hooks.active(f"{p}.hook_result"):
            result = jnp.einsum("bqhe,hed->bqhd", z, W_O)
            out = hooks(f"{p}.hook_result", result, A.RESULT).sum(axis=2)
        else:
            out = jnp.einsum("bqhe,hed->bqd", z, W_O)
        if b_O is not None:
            out = out + b_O
        return out, new_cache


class MLP(nn.Module):
    """Dense or gated MLP; sites `{prefix}.hook_pre`, `hook_pre_linear` (gated), `hook_post`."""

    d_model: int
    d_mlp: int
    act_fn: str
    prefix: str
    gated: bool = False
    use_bias: bool = True
    init_range: float = 0.02
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, hooks=NO_HOOKS):
        init, zeros = nn.initializers.normal(self.init_range), nn.initializers.zeros
        pd, dt, p = self.param_dtype, self.dtype, self.prefix
        W_in = self.param("W_in", init, (self.d_model, self.d_mlp), pd).astype(dt)
        W_out = self.param("W_out", init, (self.d_mlp, self.d_model), pd).astype(dt)
        act = activation(self.act_fn)
        if self.gated:
            W_gate = self.param("W_gate", init, (self.d_model, self.d_mlp), pd).astype(dt)
            pre = x @ W_gate  # [batch, pos, d_mlp]
            lin = x @ W_in
            if self.use_bias:  # HF Llama's mlp_bias puts a bias on gate, up and down
                pre = pre + self.param("b_gate", zeros, (self.d_mlp,), pd).astype(dt)
                lin = lin + self.param("b_in", zeros, (self.d_mlp,), pd).astype(dt)
            pre = hooks(f"{p}.hook_pre", pre, A.NEURONS)
            lin = hooks(f"{p}.hook_pre_linear", lin, A.NEURONS)
            post = act(pre) * lin
        else:
            pre = x @ W_in
            if self.use_bias:
                pre = pre + self.param("b_in", zeros, (self.d_mlp,), pd).astype(dt)
            post = act(hooks(f"{p}.hook_pre", pre, A.NEURONS))
        post = hooks(f"{p}.hook_post", post, A.NEURONS)  # [batch, pos, d_mlp]
        out = post @ W_out
        if self.use_bias:
            out = out + self.param("b_out", zeros, (self.d_model,), pd).astype(dt)
        return out


class TransformerBlock(nn.Module):
    """Pre-norm block: resid_pre -> (+attn) resid_mid -> (+mlp) resid_post.

    `cfg` is any config with the block fields of `TransformerConfig` (d_model, n_heads,
    kv_heads, head_dim, mlp_dim, act_fn, normalization_type, eps, attn_only, gated_mlp,
    parallel_attn_mlp, attn_bias, mlp_bias, positional_embedding_type, rot_dim,
    rotary_base, causal, init_range, dtype, param_dtype): every family (decoder LMs, ViT,
    the encoder of an encoder-decoder) builds its stack from this one block. Its sites live
    under `prefix` (default `blocks.{layer}`).

    `post_norm=True` makes it a post-norm block (BART, the original transformer): resid_pre
    -> ln1(resid_pre + attn(resid_pre)) = resid_mid -> ln2(resid_mid + mlp(resid_mid)) =
    resid_post; same sites and params (each norm follows its residual add). Sequential
    blocks with a norm only.
    """

    cfg: Any
    layer: int
    prefix: str | None = None
    post_norm: bool = False

    @property
    def site_prefix(self) -> str:
        return self.prefix if self.prefix is not None else f"blocks.{self.layer}"

    def setup(self):
        c, p = self.cfg, self.site_prefix
        dt, pd = dtype_of(c.dtype), dtype_of(c.param_dtype)
        if c.normalization_type is not None:
            self.ln1 = Norm(c.normalization_type, c.d_model, c.eps, f"{p}.ln1", dt, pd)
            if not c.attn_only:
                self.ln2 = Norm(c.normalization_type, c.d_model, c.eps, f"{p}.ln2", dt, pd)
        rot = c.rot_dim if c.positional_embedding_type == "rotary" else 0
        self.attn = Attention(
            c.n_heads,
            c.kv_heads,
            c.d_model,
            c.head_dim,
            f"{p}.attn",
            c.attn_bias,
            c.causal,
            rot,
            c.rotary_base,
            c.init_range,
            dt,
            pd,
        )
        if not c.attn_only:
            self.mlp = MLP(
                c.d_model,
                c.mlp_dim,
                c.act_fn,
                f"{p}.mlp",
                c.gated_mlp,
                c.mlp_bias,
                c.init_range,
                dt,
                pd,
            )

    def _norm(self, which, x, hooks):
        return x if self.cfg.normalization_type is None else getattr(self, which)(x, hooks)

    def __call__(
        self,
        resid,
        hooks=NO_HOOKS,
        attention_mask=None,
        *,
        pos_ids=None,
        kv_cache=None,
        cache_index=None,
        tree_mask=None,
    ):
        """`pos_ids` / `kv_cache` / `cache_index` / `tree_mask`: KV-cached decoding (see
        `Attention`); with `kv_cache` the block returns `(resid_post, new_kv_cache)`."""
        if kv_cache is not None:
            new = {}

            def attn_fn(x, h, m):
                out, new["kv"] = self.attn(
                    x,
                    h,
                    m,
                    pos_ids=pos_ids,
                    kv_cache=kv_cache,
                    cache_index=cache_index,
                    tree_mask=tree_mask,
                )
                return out

            return self._pre_norm(resid, hooks, attention_mask, attn_fn), new["kv"]
        return self._pre_norm(resid, hooks, attention_mask, None)

    def _pre_norm(self, resid, hooks, attention_mask, attn_fn):
        c, p, R = self.cfg, self.site_prefix, A.RESID
        resid = hooks(f"{p}.hook_resid_pre", resid, R)  # [batch, pos, d_model]
        if self.post_norm:
            if attn_fn is not None:
                raise NotImplementedError("KV-cached decoding of post-norm blocks")
            return self._post_norm(resid, hooks, attention_mask)
        if attn_fn is None:
            attn = self.attn(self._norm("ln1", resid, hooks), hooks, attention_mask)
        else:
            attn = attn_fn(self._norm("ln1", resid, hooks), hooks, attention_mask)
        attn_out = hooks(f"{p}.hook_attn_out", attn, R)
        if c.attn_only:
            return hooks(f"{p}.hook_resid_post", resid + attn_out, R)
        if c.parallel_attn_mlp:
            mlp = self.mlp(self._norm("ln2", resid, hooks), hooks)
            mlp_out = hooks(f"{p}.hook_mlp_out", mlp, R)
            return hooks(f"{p}.hook_resid_post", resid + attn_out + mlp_out, R)
        mid = hooks(f"{p}.hook_resid_mid", resid + attn_out, R)
        mlp_out = hooks(f"{p}.hook_mlp_out", self.mlp(self._norm("ln2", mid, hooks), hooks), R)
        return hooks(f"{p}.hook_resid_post", mid + mlp_out, R)

    def _post_norm(self, resid, hooks, attention_mask):
        c, p, R = self.cfg, self.site_prefix, A.RESID
        if c.normalization_type is None or c.parallel_attn_mlp:
            raise ValueError("post_norm blocks need a norm and sequential attention / MLP")
        attn_out = hooks(f"{p}.hook_attn_out", self.attn(resid, hooks, attention_mask), R)
        if c.attn_only:
            return hooks(f"{p}.hook_resid_post", self.ln1(resid + attn_out, hooks), R)
        mid = hooks(f"{p}.hook_resid_mid", self.ln1(resid + attn_out, hooks), R)
        mlp_out = hooks(f"{p}.hook_mlp_out", self.mlp(mid, hooks), R)
        return hooks(f"{p}.hook_resid_post", self.ln2(mid + mlp_out, hooks), R)


def block_stack(
    cfg, prefix: str = "blocks", cross_attn: bool = False, post_norm: bool = False
) -> Stack:
    """The `Stack` description of `cfg.n_layers` blocks under `prefix` (see the protocol)."""
    return Stack(
        prefix=prefix,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        n_kv_heads=cfg.kv_heads,
        d_model=cfg.d_model,
        d_head=cfg.head_dim,
        mlp=not cfg.attn_only,
        parallel=bool(cfg.parallel_attn_mlp),
        norm=cfg.normalization_type,
        attn=("attn", "cross_attn") if cross_attn else ("attn",),
        post_norm=post_norm,
    )


class Transformer(nn.Module, HookedModel):
    """Decoder-only transformer with TransformerLens sites.

    Inputs (`__call__(inputs)`), one of:
      * int tokens `[batch, pos]`;
      * float vectors `[batch, pos, d_input]` (linear embedding, needs `cfg.d_input`);
      * a dict `{"tokens": int[batch, pos], "vectors": float[batch, pos, d_input],
        "is_vector": bool[batch, pos]}` mixing both position by position.
    Output: logits `[batch, pos, d_vocab_out]`, or `head(final_resid, hooks=...)` when a
    head module is given.
    """

    cfg: TransformerConfig
    head: nn.Module | None = None

    def setup(self):
        c = self.cfg
        dt, pd = dtype_of(c.dtype), dtype_of(c.param_dtype)
        init = nn.initializers.normal(c.init_range)
        if c.d_vocab > 0:
            self.W_E = self.param("W_E", init, (c.d_vocab, c.d_model), pd)
        if c.d_input:
            self.W_vec = self.param(
                "W_vec", nn.initializers.lecun_normal(), (c.d_input, c.d_model), pd
            )
            self.b_vec = self.param("b_vec", nn.initializers.zeros, (c.d_model,), pd)
        if c.positional_embedding_type == "standard":
            self.W_pos = self.param("W_pos", init, (c.n_ctx, c.d_model), pd)
        if c.scan_layers:  # one block, params stacked over layers (mechjax.models.stacking)
            from mechjax.models.stacking import PLACEHOLDER

            self.blocks = TransformerBlock(c, 0, prefix=f"blocks.{PLACEHOLDER}")
        else:
            self.blocks = [TransformerBlock(c, i) for i in range(c.n_layers)]
        if c.normalization_type is not None and c.final_norm:
            self.ln_final = Norm(c.normalization_type, c.d_model, c.eps, "ln_final", dt, pd)
        if self.head is None and not c.tie_embeddings:
            self.W_U = self.param("W_U", init, (c.d_model, c.vocab_out), pd)
            if c.unembed_bias:
                self.b_U = self.param("b_U", nn.initializers.zeros, (c.vocab_out,), pd)

    # -- the model protocol (see mechjax.models) ----------------------------------------------

    def check_inputs(self, inputs, attention_mask=None) -> None:
        from mechjax.models.protocol import check_sequence_inputs

        check_sequence_inputs(self.cfg, inputs, attention_mask)

    def example_inputs(self):
        if self.cfg.d_vocab > 0:
            return jnp.zeros((1, 2), jnp.int32)
        return jnp.zeros((1, 2, self.cfg.d_input), jnp.float32)

    def layer_stacks(self) -> tuple[Stack, ...]:
        return (block_stack(self.cfg),)

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
        return self.forward_from(
            state[f"blocks.{layer}.hook_resid_pre"], hooks, attention_mask, layer, positions
        )

    def readout(self) -> Readout:
        c = self.cfg
        norm = "ln_final" if c.normalization_type is not None and c.final_norm else None
        return Readout(
            stack="blocks",
            norm=norm,
            norm_type=c.normalization_type if norm else None,
            pool=None,
            site="hook_logits" if self.head is None else None,
        )

    def readout_weights(self, params):
        p = params.get("params", params)
        if self.head is not None:
            return None
        if self.cfg.tie_embeddings:
            return jnp.asarray(p["W_E"]).T, None
        return jnp.asarray(p["W_U"]), (jnp.asarray(p["b_U"]) if self.cfg.unembed_bias else None)

    # -- forward ------------------------------------------------------------------------------

    def embed(self, inputs, hooks=NO_HOOKS, pos_ids=None):
        """Token and/or vector embedding plus learned positions -> resid `[batch, pos, d_model]`.

        `pos_ids`: optional int `[batch, pos]` positions (left padding, decoding); None =
        `0 .. pos-1`."""
        c, dt = self.cfg, dtype_of(self.cfg.dtype)
        tokens, vectors, is_vec = split_inputs(inputs)
        emb = None
        if tokens is not None:
            safe = tokens if is_vec is None else jnp.where(is_vec, 0, tokens)
            emb = self.W_E[safe].astype(dt)  # [batch, pos, d_model]
        if vectors is not None:
            vec = vectors.astype(dt) @ self.W_vec.astype(dt) + self.b_vec.astype(dt)
            emb = vec if emb is None else jnp.where(is_vec[..., None], vec, emb)
        emb = hooks("hook_embed", emb, A.RESID)
        if c.positional_embedding_type == "standard":
            if pos_ids is None:
                n = emb.shape[1]
                pos = jnp.broadcast_to(self.W_pos[:n].astype(dt)[None], emb.shape)
            else:
                pos = self.W_pos[jnp.asarray(pos_ids)].astype(dt)  # [batch, pos, d_model]
            emb = emb + hooks("hook_pos_embed", pos, A.RESID)
        return emb

    def __call__(self, inputs, hooks=NO_HOOKS, attention_mask=None):
        return self.forward_from(self.embed(inputs, hooks), hooks, attention_mask)

    def decode(
        self,
        inputs,
        hooks=NO_HOOKS,
        attention_mask=None,
        *,
        pos_ids,
        kv_cache,
        cache_index,
        positions=None,
        tree_mask=None,
        return_hidden=False,
    ):
        """One KV-cached forward (prefill or decode step of `mj.generate`).

        inputs: tokens `[batch, q_pos]` occupying buffer slots `cache_index ..`; pos_ids:
        their positions `[batch, q_pos]`; kv_cache: a list (one per layer) of
        `{"k", "v"}` buffers `[batch, total_len, kv_head, d_head]`; attention_mask:
        `[batch, total_len]` (1 = real token). `positions`: static readout positions as in
        `forward_from`. `tree_mask`: bool `[q_pos, q_pos]` replacing the causal mask within
        this block (tree verification of `mj.speculative_generate`, see `Attention`); None =
        causal. Returns `(logits, new_kv_cache)`, or `(logits, new_kv_cache, hidden)` with
        `return_hidden=True`: `hidden` is the stream the unembedding reads (after
        `ln_final`), `[batch, q_pos or len(positions), d_model]`. Unrolled blocks only (use
        `mechjax.models.stacking.unrolled` for a `scan_layers` model); remat is ignored.
        """
        if self.cfg.scan_layers:
            raise NotImplementedError("decode: unroll the model first (stacking.unrolled)")
        resid = self.embed(inputs, hooks, pos_ids=pos_ids)
        new_cache = []
        for block, layer_cache in zip(self.blocks, kv_cache):
            resid, nc = block(
                resid,
                hooks,
                attention_mask,
                pos_ids=pos_ids,
                kv_cache=layer_cache,
                cache_index=cache_index,
                tree_mask=tree_mask,
            )
            new_cache.append(nc)
        if return_hidden:
            logits, hidden = self._readout(resid, hooks, positions, return_hidden=True)
            return logits, new_cache, hidden
        return self._readout(resid, hooks, positions), new_cache

    def forward_from(
        self, resid, hooks=NO_HOOKS, attention_mask=None, start_layer: int = 0, positions=None
    ):
        """Runs blocks `start_layer, ...` and the unembed (or head) on `resid`.

        Used by analyses that patch inside layer L: layers < L cannot change, so they run once
        and the patched forwards start here (`model.apply(v, resid, ..., method="forward_from")`).

        Args:
          resid: the value entering `blocks.{start_layer}.hook_resid_pre`, `[batch, pos, d_model]`.
          start_layer: static int in `[0, n_layers]`.
          positions: optional static tuple of positions; the final norm and unembed (or head)
            see only these, so logits are `[batch, len(positions), d_vocab_out]`. For metrics
            that read only some positions (e.g. the last); None keeps every position.

        With `cfg.remat` each block runs under `nn.remat`; with `cfg.scan_layers` the blocks
        run as one `nn.scan` and `start_layer > 0` scans the slice `params[start_layer:]` of
        the stacked params (so patching sweeps through `resume` work either way). Sites,
        caches and interventions are the same as unrolled (`mechjax.models.stacking`).
        """
        c = self.cfg
        if c.scan_layers or c.remat:
            from mechjax.models import stacking

            if c.scan_layers:  # start_layer > 0 scans the slice params[start_layer:]
                resid = stacking.scan_blocks(
                    self.blocks,
                    resid,
                    hooks,
                    attention_mask,
                    n_layers=c.n_layers,
                    start=start_layer,
                    remat=c.remat,
                )
            else:
                for block in self.blocks[start_layer:]:
                    resid = stacking.remat_block(block, resid, hooks, attention_mask)
        else:
            for block in self.blocks[start_layer:]:
                resid = block(resid, hooks, attention_mask)
        return self._readout(resid, hooks, positions)

    def _readout(self, resid, hooks, positions, return_hidden=False):
        """Final norm and unembed (or head); `(out, normed resid)` with `return_hidden`."""
        if positions is not None:
            resid = resid[:, list(positions)]  # [batch, len(positions), d_model]
        if self.cfg.normalization_type is not None and self.cfg.final_norm:
            resid = self.ln_final(resid, hooks)
        out = self._unembed(resid, hooks)
        return (out, resid) if return_hidden else out

    def _unembed(self, resid, hooks):
        if self.head is not None:
            return self.head(resid, hooks=hooks)
        if self.cfg.tie_embeddings:
            logits = resid @ self.W_E.astype(resid.dtype).T
        else:
            logits = resid @ self.W_U.astype(resid.dtype)
            if self.cfg.unembed_bias:
                logits = logits + self.b_U.astype(resid.dtype)
        return hooks("hook_logits", logits, A.LOGITS)  # [batch, pos, d_vocab_out]
