"""TransformerConfig and the one table of model sizes."""

from __future__ import annotations

import dataclasses
import json

_ACTS = ("gelu_new", "gelu", "relu", "silu")
_NORMS = ("LN", "RMS", None)
_POS = ("standard", "rotary", "none")
_DTYPES = ("float32", "bfloat16", "float16")


class ConfigIO:
    """replace / to_dict / to_json / from_dict, shared by every family's frozen config."""

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"Unknown {cls.__name__} fields {unknown}; valid fields: {sorted(names)}"
            )
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class TransformerConfig(ConfigIO):
    """Every knob of :class:`mechjax.Transformer`; frozen, hashable, JSON-serialisable.

    Field names follow TransformerLens (`d_model`, `n_heads`, `d_head`, ...).
    """

    d_model: int
    n_layers: int
    n_heads: int
    d_head: int | None = None  # default d_model // n_heads
    d_mlp: int | None = None  # default 4 * d_model (ignored when attn_only)
    d_vocab: int = 0  # token vocabulary; 0 = no token embedding (vector inputs only)
    d_vocab_out: int | None = None  # unembedding width; default d_vocab
    n_ctx: int = 1024
    n_kv_heads: int | None = None  # grouped-query attention; default n_heads
    d_input: int | None = None  # width of continuous input vectors (linear embed), if any
    attn_only: bool = False
    act_fn: str = "gelu_new"  # gelu_new (tanh approx.), gelu (exact), relu, silu
    gated_mlp: bool = False  # SwiGLU-style: act(x W_gate) * (x W_in)
    normalization_type: str | None = "LN"  # "LN", "RMS" or None
    final_norm: bool = True
    positional_embedding_type: str = "standard"  # "standard" (learned), "rotary", "none"
    rotary_dim: int | None = None  # default d_head (NeoX uses a fraction)
    rotary_base: float = 10000.0
    parallel_attn_mlp: bool = False  # GPT-NeoX: resid + attn(ln1 x) + mlp(ln2 x)
    attn_bias: bool = True
    mlp_bias: bool = True
    unembed_bias: bool = True
    tie_embeddings: bool = False  # logits = x @ W_E.T (no W_U parameter)
    causal: bool = True
    eps: float = 1e-5
    init_range: float = 0.02
    dtype: str = "float32"  # activations
    param_dtype: str = "float32"
    name: str = ""  # free-form label (variant or HF architecture)
    # How the layers run (numerics, sites and interventions are the same either way; see
    # mechjax.models.stacking): remat recomputes each block's activations in the backward
    # pass (params unchanged); scan_layers runs the blocks as one nn.scan (one traced body,
    # compile time independent of depth; params stacked under "blocks" with a leading layer
    # axis, convert with mj.stack_layers / mj.unstack_layers).
    remat: bool = False
    scan_layers: bool = False

    def __post_init__(self):
        def bad(field, value, valid):
            raise ValueError(
                f"TransformerConfig.{field}={value!r} is not valid; use one of {valid}."
            )

        if self.act_fn not in _ACTS:
            bad("act_fn", self.act_fn, _ACTS)
        if self.normalization_type not in _NORMS:
            bad("normalization_type", self.normalization_type, _NORMS)
        if self.positional_embedding_type not in _POS:
            bad("positional_embedding_type", self.positional_embedding_type, _POS)
        for f in ("dtype", "param_dtype"):
            if getattr(self, f) not in _DTYPES:
                bad(f, getattr(self, f), _DTYPES)
        for f in ("d_model", "n_layers", "n_heads"):
            if not isinstance(getattr(self, f), int) or getattr(self, f) <= 0:
                raise ValueError(
                    f"TransformerConfig.{f} must be a positive int, got {getattr(self, f)!r}"
                )
        if self.d_head is None and self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; set d_head explicitly."
            )
        if self.n_heads % self.kv_heads:
            raise ValueError(
                f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.kv_heads}."
            )
        if self.d_vocab <= 0 and not self.d_input:
            raise ValueError("Set d_vocab (token inputs) and/or d_input (continuous inputs).")
        if self.tie_embeddings and (self.d_vocab <= 0 or self.vocab_out != self.d_vocab):
            raise ValueError("tie_embeddings needs d_vocab > 0 and d_vocab_out == d_vocab.")
        if self.positional_embedding_type == "rotary" and self.rot_dim % 2:
            raise ValueError(f"rotary_dim must be even, got {self.rot_dim}.")
        for f in ("remat", "scan_layers"):
            if not isinstance(getattr(self, f), bool):
                raise ValueError(
                    f"TransformerConfig.{f} must be True or False, got {getattr(self, f)!r}"
                )

    # Resolved sizes ---------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @property
    def mlp_dim(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def vocab_out(self) -> int:
        return self.d_vocab_out if self.d_vocab_out is not None else self.d_vocab

    @property
    def rot_dim(self) -> int:
        return self.rotary_dim if self.rotary_dim is not None else self.head_dim

    @classmethod
    def from_variant(cls, variant: str, **overrides) -> TransformerConfig:
        """A named size from VARIANTS, with overrides (`from_variant("attn-only-2l", d_vocab=50)`)."""
        if variant not in VARIANTS:
            raise ValueError(f"Unknown variant {variant!r}; known: {sorted(VARIANTS)}")
        return cls(**{"name": variant, **VARIANTS[variant], **overrides})


# The one size table. Families set architecture flags; sizes set widths.
_GPT2 = dict(
    act_fn="gelu_new",
    normalization_type="LN",
    positional_embedding_type="standard",
    unembed_bias=False,
)
_NEOX = dict(
    act_fn="gelu",
    normalization_type="LN",
    positional_embedding_type="rotary",
    parallel_attn_mlp=True,
    unembed_bias=False,
)
_LLAMA = dict(
    act_fn="silu",
    gated_mlp=True,
    normalization_type="RMS",
    positional_embedding_type="rotary",
    attn_bias=False,
    mlp_bias=False,
    unembed_bias=False,
    eps=1e-6,
)
_ATTN_ONLY = dict(attn_only=True, normalization_type="LN", positional_embedding_type="standard")

VARIANTS: dict[str, dict] = {
    "gpt2-small": dict(_GPT2, d_model=768, n_layers=12, n_heads=12, d_vocab=50257, n_ctx=1024),
    "gpt2-tiny": dict(_GPT2, d_model=64, n_layers=2, n_heads=4, d_vocab=512, n_ctx=128),
    "pythia-tiny": dict(
        _NEOX, d_model=64, n_layers=2, n_heads=4, d_vocab=512, n_ctx=128, rotary_dim=4
    ),
    "llama-tiny": dict(
        _LLAMA, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=128, d_vocab=512, n_ctx=128
    ),
    "attn-only-2l": dict(_ATTN_ONLY, d_model=64, n_layers=2, n_heads=8, d_vocab=64, n_ctx=64),
    "attn-only-4l": dict(_ATTN_ONLY, d_model=128, n_layers=4, n_heads=8, d_vocab=4096, n_ctx=256),
    "bench-4l-256": dict(_GPT2, d_model=256, n_layers=4, n_heads=8, d_vocab=1024, n_ctx=256),
}
