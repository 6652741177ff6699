"""Hugging Face checkpoints -> `mj.Transformer` + params, read with `safetensors` (no torch).

Supported families (`config.json` `model_type`): GPT-2 (`gpt2`), GPT-NeoX / Pythia
(`gpt_neox`) and Llama (`llama`, grouped-query attention included). Weights come from
`model.safetensors` or a sharded `model.safetensors.index.json`; every tensor is checked by
name and shape on the host and converted to TransformerLens layouts:

    W_Q[head, d_model, d_head]   W_K, W_V[kv_head, d_model, d_head]   W_O[head, d_head, d_model]
    W_in, W_gate[d_model, d_mlp]   W_out[d_mlp, d_model]   W_E[d_vocab, d_model]   W_U[d_model, d_vocab]

Tied input/output embeddings are written out as an explicit `W_U = W_E.T`, so that weight
edits of the unembedding do not silently change the embedding.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mechjax.models.config import TransformerConfig
from mechjax.models.transformer import Transformer

_DTYPES = ("float32", "bfloat16", "float16")

# safetensors dtypes numpy can hold natively; the rest (BF16, F8_*) go through the flax reader.
_NUMPY_DTYPES = {"F64", "F32", "F16", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL"}

# HF activation names -> ours. gelu_pytorch_tanh and gelu_fast are the same tanh formula as
# gelu_new (up to float rounding).
_ACTS = {
    "gelu_new": "gelu_new",
    "gelu_pytorch_tanh": "gelu_new",
    "gelu_fast": "gelu_new",
    "gelu": "gelu",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}

_CONVERT_HINT = (
    "Only safetensors checkpoints are supported (no torch at run time). Convert once, where "
    "torch and transformers are installed:\n"
    "    from transformers import AutoModelForCausalLM\n"
    "    AutoModelForCausalLM.from_pretrained(path).save_pretrained(path)  # writes "
    "model.safetensors"
)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _folder(path) -> Path:
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"from_pretrained: {str(path)!r} does not exist. It must be a local Hugging Face "
            "folder (config.json + model.safetensors); nothing is downloaded. Fetch one with "
            "e.g. `huggingface-cli download gpt2 --local-dir DIR`."
        )
    if not p.is_dir():
        raise NotADirectoryError(
            f"from_pretrained: {str(path)!r} is a file; pass the folder that holds config.json "
            "and the safetensors weights."
        )
    return p


def _read_config(folder: Path) -> dict:
    f = folder / "config.json"
    if not f.is_file():
        raise FileNotFoundError(
            f"from_pretrained: no config.json in {str(folder)!r} (found: "
            f"{sorted(x.name for x in folder.iterdir())[:20]}). A Hugging Face model folder "
            "holds config.json next to model.safetensors."
        )
    with open(f) as fh:
        return json.load(fh)


def _weight_files(folder: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file holding it (single file or sharded index)."""
    index = folder / "model.safetensors.index.json"
    single = folder / "model.safetensors"
    if single.is_file():
        files = [single]
    elif index.is_file():
        with open(index) as fh:
            weight_map = json.load(fh).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f"{index} has no 'weight_map' (tensor name -> shard file).")
        missing = sorted({s for s in weight_map.values() if not (folder / s).is_file()})
        if missing:
            raise FileNotFoundError(
                f"{index.name} names shard files that are not in {str(folder)!r}: {missing}"
            )
        return {name: folder / shard for name, shard in weight_map.items()}
    else:
        files = sorted(folder.glob("*.safetensors"))
        if len(files) != 1:
            others = sorted(
                x.name for x in folder.iterdir() if x.suffix in (".bin", ".pt", ".pth", ".ckpt")
            )
            what = (
                f"found {[f.name for f in files]} but no model.safetensors.index.json to say "
                "which tensors they hold"
                if files
                else "found no model.safetensors or model.safetensors.index.json"
                + (f" (only PyTorch files {others}, which are not supported)" if others else "")
            )
            raise FileNotFoundError(f"from_pretrained: in {str(folder)!r} {what}.\n{_CONVERT_HINT}")
    out = {}
    for f in files:
        with _open(f) as h:
            out.update(dict.fromkeys(h.keys(), f))
    return out


def _open(file: Path, framework: str = "numpy"):
    from safetensors import safe_open

    return safe_open(str(file), framework=framework)


class _Tensors:
    """Reads checkpoint tensors by name, checking shape first and recording what was used."""

    def __init__(self, folder: Path, prefix: str):
        self.files = _weight_files(folder)
        self.folder = folder
        # Task-model checkpoints nest the base model under `prefix` ("transformer.", ...);
        # base-model checkpoints (e.g. the original gpt2 upload) do not.
        self.prefix = prefix if any(k.startswith(prefix) for k in self.files) else ""
        self.used: set[str] = set()
        self._stack = contextlib.ExitStack()
        self._handles: dict[tuple[Path, str], object] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def _handle(self, file: Path, framework: str):
        key = (file, framework)
        if key not in self._handles:
            self._handles[key] = self._stack.enter_context(_open(file, framework))
        return self._handles[key]

    def has(self, name: str, base: bool = True) -> bool:
        return ((self.prefix if base else "") + name) in self.files

    def get(self, name: str, shape: tuple[int, ...], base: bool = True) -> np.ndarray:
        """Tensor `name` (relative to the base model unless base=False), checked to be `shape`."""
        full = (self.prefix if base else "") + name
        if full not in self.files:
            tail = ".".join(name.split(".")[-2:])  # e.g. "c_attn.weight"
            near = [k for k in self.files if k.endswith(tail)]
            raise KeyError(
                f"from_pretrained: checkpoint in {str(self.folder)!r} has no tensor {full!r} "
                f"needed by this config."
                + (f" Tensors with a similar name: {sorted(near)[:5]}." if near else "")
                + f" ({len(self.files)} tensors present.)"
            )
        h = self._handle(self.files[full], "numpy")
        sl = h.get_slice(full)
        got, dt = tuple(sl.get_shape()), sl.get_dtype()
        if got != tuple(shape):
            raise ValueError(
                f"from_pretrained: tensor {full!r} has shape {list(got)}, but config.json implies "
                f"{list(shape)}. The weights do not match the config."
            )
        self.used.add(full)
        if dt in _NUMPY_DTYPES:
            return h.get_tensor(full)
        # numpy has no bfloat16: read through the flax reader onto the CPU, then view the result
        # as an ml_dtypes numpy array (no device round-trip on accelerators).
        with jax.default_device(jax.local_devices(backend="cpu")[0]):
            return np.asarray(self._handle(self.files[full], "flax").get_tensor(full))

    def check_all_used(
        self,
        ignore: Callable[[str], bool],
        what: str = "checkpoint",
        user: str = "this architecture",
        hint: str = "and is it a causal-LM checkpoint?",
    ):
        extra = sorted(k for k in self.files if k not in self.used and not ignore(k))
        if extra:
            raise ValueError(
                f"from_pretrained: {what} has {len(extra)} tensor(s) {user} does "
                f"not use: {extra[:8]}{' ...' if len(extra) > 8 else ''}. Is config.json for "
                f"these weights, {hint}"
            )


# --------------------------------------------------------------------------------------------
# Config helpers
# --------------------------------------------------------------------------------------------


def _unsupported(model_type: str, what: str):
    raise NotImplementedError(
        f"from_pretrained: {model_type} checkpoint uses {what}, which mechjax.Transformer does "
        "not implement; loading it would silently give different outputs."
    )


def _act(hf: dict, key: str) -> str:
    name = hf.get(key)
    if name not in _ACTS:
        _unsupported(hf["model_type"], f"{key}={name!r} (supported: {sorted(_ACTS)})")
    return _ACTS[name]


def _rope(hf: dict, theta_keys: tuple[str, ...], partial_keys: tuple[str, ...], partial_default):
    """(rope_theta, partial_rotary_factor) from either transformers-5 `rope_parameters` or the
    older top-level fields (`rope_theta`/`rotary_emb_base`, `rotary_pct`/`partial_rotary_factor`,
    `rope_scaling`), in transformers' order of precedence."""
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if not isinstance(params, dict) or any(isinstance(v, dict) for v in params.values()):
        _unsupported(hf["model_type"], f"per-layer rope_parameters {params!r}")
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        _unsupported(hf["model_type"], f"RoPE scaling rope_type={rope_type!r} (only 'default')")

    def first(keys, default):
        for k in keys:
            if params.get(k) is not None:
                return params[k]
            if hf.get(k) is not None:
                return hf[k]
        return default

    return float(first(theta_keys, 10000.0)), first(partial_keys, partial_default)


def _tie(hf: dict, default: bool) -> bool:
    tie = hf.get("tie_word_embeddings")
    return default if tie is None else bool(tie)


def _dtype_name(dtype) -> str:
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    if name not in _DTYPES:
        raise ValueError(f"from_pretrained: dtype={dtype!r} is not supported; use one of {_DTYPES}")
    return name


# --------------------------------------------------------------------------------------------
# Families: config.json -> TransformerConfig, and checkpoint tensors -> params
# --------------------------------------------------------------------------------------------


def _gpt2_config(hf: dict) -> TransformerConfig:
    mt = "gpt2"
    if hf.get("add_cross_attention"):
        _unsupported(mt, "add_cross_attention=True")
    if hf.get("scale_attn_weights", True) is not True:
        _unsupported(mt, "scale_attn_weights=False")
    if hf.get("scale_attn_by_inverse_layer_idx"):
        _unsupported(mt, "scale_attn_by_inverse_layer_idx=True")
    d = hf["n_embd"]
    return TransformerConfig(
        d_model=d,
        n_layers=hf["n_layer"],
        n_heads=hf["n_head"],
        d_mlp=hf.get("n_inner") or 4 * d,
        d_vocab=hf["vocab_size"],
        n_ctx=hf["n_positions"],
        act_fn=_act(hf, "activation_function"),
        normalization_type="LN",
        positional_embedding_type="standard",
        unembed_bias=False,
        eps=hf.get("layer_norm_epsilon", 1e-5),
    )


def _gpt2_params(c: TransformerConfig, hf: dict, t: _Tensors) -> dict:
    D, H, E, M, V = c.d_model, c.n_heads, c.head_dim, c.mlp_dim, c.d_vocab
    p = {"W_E": t.get("wte.weight", (V, D)), "W_pos": t.get("wpe.weight", (c.n_ctx, D))}
    for L in range(c.n_layers):
        b = f"h.{L}."
        # Conv1D stores [in, out]; c_attn's out axis is (q | k | v), each laid out as [head, d_head].
        w = t.get(b + "attn.c_attn.weight", (D, 3 * D)).reshape(D, 3, H, E)
        bias = t.get(b + "attn.c_attn.bias", (3 * D,)).reshape(3, H, E)
        attn = {
            "W_Q": w[:, 0].transpose(1, 0, 2),  # [head, d_model, d_head]
            "W_K": w[:, 1].transpose(1, 0, 2),
            "W_V": w[:, 2].transpose(1, 0, 2),
            "b_Q": bias[0],  # [head, d_head]
            "b_K": bias[1],
            "b_V": bias[2],
            "W_O": t.get(b + "attn.c_proj.weight", (D, D)).reshape(H, E, D),
            "b_O": t.get(b + "attn.c_proj.bias", (D,)),
        }
        mlp = {
            "W_in": t.get(b + "mlp.c_fc.weight", (D, M)),  # [d_model, d_mlp]
            "b_in": t.get(b + "mlp.c_fc.bias", (M,)),
            "W_out": t.get(b + "mlp.c_proj.weight", (M, D)),  # [d_mlp, d_model]
            "b_out": t.get(b + "mlp.c_proj.bias", (D,)),
        }
        p[f"blocks_{L}"] = {
            "ln1": {"w": t.get(b + "ln_1.weight", (D,)), "b": t.get(b + "ln_1.bias", (D,))},
            "ln2": {"w": t.get(b + "ln_2.weight", (D,)), "b": t.get(b + "ln_2.bias", (D,))},
            "attn": attn,
            "mlp": mlp,
        }
    p["ln_final"] = {"w": t.get("ln_f.weight", (D,)), "b": t.get("ln_f.bias", (D,))}
    p["W_U"] = _unembed(c, hf, t, ("lm_head.weight",), p["W_E"], tie_default=True)
    return p


def _neox_config(hf: dict) -> TransformerConfig:
    d, h = hf["hidden_size"], hf["num_attention_heads"]
    theta, pct = _rope(
        hf, ("rope_theta", "rotary_emb_base"), ("partial_rotary_factor", "rotary_pct"), 0.25
    )
    # GPTNeoXAttention: rotary_ndims = int(head_size * partial_rotary_factor)
    rot = int((d // h) * pct)
    if rot % 2:
        _unsupported("gpt_neox", f"an odd rotary dimension ({rot})")
    return TransformerConfig(
        d_model=d,
        n_layers=hf["num_hidden_layers"],
        n_heads=h,
        d_mlp=hf["intermediate_size"],
        d_vocab=hf["vocab_size"],
        n_ctx=hf.get("max_position_embeddings", 2048),
        act_fn=_act(hf, "hidden_act"),
        normalization_type="LN",
        positional_embedding_type="rotary",
        rotary_dim=rot,
        rotary_base=theta,
        parallel_attn_mlp=bool(hf.get("use_parallel_residual", True)),
        attn_bias=bool(hf.get("attention_bias", True)),
        mlp_bias=True,
        unembed_bias=False,
        eps=hf.get("layer_norm_eps", 1e-5),
    )


def _neox_params(c: TransformerConfig, hf: dict, t: _Tensors) -> dict:
    D, H, E, M, V = c.d_model, c.n_heads, c.head_dim, c.mlp_dim, c.d_vocab
    p = {"W_E": t.get("embed_in.weight", (V, D))}
    for L in range(c.n_layers):
        b = f"layers.{L}."
        # Linear stores [out, in]; query_key_value's out axis is [head, (q | k | v), d_head].
        w = t.get(b + "attention.query_key_value.weight", (3 * D, D)).reshape(H, 3, E, D)
        attn = {
            "W_Q": w[:, 0].transpose(0, 2, 1),  # [head, d_model, d_head]
            "W_K": w[:, 1].transpose(0, 2, 1),
            "W_V": w[:, 2].transpose(0, 2, 1),
            "W_O": t.get(b + "attention.dense.weight", (D, D)).T.reshape(H, E, D),
        }
        if c.attn_bias:
            bias = t.get(b + "attention.query_key_value.bias", (3 * D,)).reshape(H, 3, E)
            attn.update(b_Q=bias[:, 0], b_K=bias[:, 1], b_V=bias[:, 2])
            attn["b_O"] = t.get(b + "attention.dense.bias", (D,))
        mlp = {
            "W_in": t.get(b + "mlp.dense_h_to_4h.weight", (M, D)).T,  # [d_model, d_mlp]
            "b_in": t.get(b + "mlp.dense_h_to_4h.bias", (M,)),
            "W_out": t.get(b + "mlp.dense_4h_to_h.weight", (D, M)).T,  # [d_mlp, d_model]
            "b_out": t.get(b + "mlp.dense_4h_to_h.bias", (D,)),
        }
        ln = {
            n: {"w": t.get(b + f"{hf_n}.weight", (D,)), "b": t.get(b + f"{hf_n}.bias", (D,))}
            for n, hf_n in (("ln1", "input_layernorm"), ("ln2", "post_attention_layernorm"))
        }
        p[f"blocks_{L}"] = {**ln, "attn": attn, "mlp": mlp}
    p["ln_final"] = {
        "w": t.get("final_layer_norm.weight", (D,)),
        "b": t.get("final_layer_norm.bias", (D,)),
    }
    # Saved as `embed_out` (Pythia and transformers' save_pretrained) or `lm_head` (in memory).
    p["W_U"] = _unembed(
        c, hf, t, ("embed_out.weight", "lm_head.weight"), p["W_E"], tie_default=False
    )
    return p


def _llama_config(hf: dict) -> TransformerConfig:
    d, h = hf["hidden_size"], hf["num_attention_heads"]
    # LlamaRotaryEmbedding rotates all of head_dim and ignores partial_rotary_factor.
    theta, _ = _rope(hf, ("rope_theta",), (), 1.0)
    return TransformerConfig(
        d_model=d,
        n_layers=hf["num_hidden_layers"],
        n_heads=h,
        d_head=hf.get("head_dim") or d // h,
        n_kv_heads=hf.get("num_key_value_heads") or h,
        d_mlp=hf["intermediate_size"],
        d_vocab=hf["vocab_size"],
        n_ctx=hf.get("max_position_embeddings", 2048),
        act_fn=_act(hf, "hidden_act"),
        gated_mlp=True,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_base=theta,
        attn_bias=bool(hf.get("attention_bias", False)),
        mlp_bias=bool(hf.get("mlp_bias", False)),
        unembed_bias=False,
        eps=hf.get("rms_norm_eps", 1e-6),
    )


def _llama_params(c: TransformerConfig, hf: dict, t: _Tensors) -> dict:
    D, H, K, E, M, V = c.d_model, c.n_heads, c.kv_heads, c.head_dim, c.mlp_dim, c.d_vocab
    p = {"W_E": t.get("embed_tokens.weight", (V, D))}

    def heads(name, n):  # Linear [n * d_head, d_model] -> [n, d_model, d_head]
        return t.get(name, (n * E, D)).reshape(n, E, D).transpose(0, 2, 1)

    for L in range(c.n_layers):
        b = f"layers.{L}."
        attn = {
            "W_Q": heads(b + "self_attn.q_proj.weight", H),
            "W_K": heads(b + "self_attn.k_proj.weight", K),  # [kv_head, d_model, d_head]
            "W_V": heads(b + "self_attn.v_proj.weight", K),
            "W_O": t.get(b + "self_attn.o_proj.weight", (D, H * E)).T.reshape(H, E, D),
        }
        if c.attn_bias:
            attn["b_Q"] = t.get(b + "self_attn.q_proj.bias", (H * E,)).reshape(H, E)
            attn["b_K"] = t.get(b + "self_attn.k_proj.bias", (K * E,)).reshape(K, E)
            attn["b_V"] = t.get(b + "self_attn.v_proj.bias", (K * E,)).reshape(K, E)
            attn["b_O"] = t.get(b + "self_attn.o_proj.bias", (D,))
        # SwiGLU: down(act(gate x) * up x); our W_gate feeds the activation, W_in is linear.
        mlp = {
            "W_gate": t.get(b + "mlp.gate_proj.weight", (M, D)).T,  # [d_model, d_mlp]
            "W_in": t.get(b + "mlp.up_proj.weight", (M, D)).T,
            "W_out": t.get(b + "mlp.down_proj.weight", (D, M)).T,  # [d_mlp, d_model]
        }
        if c.mlp_bias:
            mlp["b_gate"] = t.get(b + "mlp.gate_proj.bias", (M,))
            mlp["b_in"] = t.get(b + "mlp.up_proj.bias", (M,))
            mlp["b_out"] = t.get(b + "mlp.down_proj.bias", (D,))
        p[f"blocks_{L}"] = {
            "ln1": {"w": t.get(b + "input_layernorm.weight", (D,))},
            "ln2": {"w": t.get(b + "post_attention_layernorm.weight", (D,))},
            "attn": attn,
            "mlp": mlp,
        }
    p["ln_final"] = {"w": t.get("norm.weight", (D,))}
    p["W_U"] = _unembed(c, hf, t, ("lm_head.weight",), p["W_E"], tie_default=False)
    return p


def _unembed(c, hf, t: _Tensors, names, W_E, tie_default: bool) -> np.ndarray:
    """W_U [d_model, d_vocab]: the output head if untied, else W_E.T written out explicitly."""
    V, D = c.d_vocab, c.d_model
    found = [n for n in names if t.has(n, base=False)]
    if _tie(hf, tie_default):
        for n in found:  # some savers also store the tied copy; HF ignores it, so do we
            t.get(n, (V, D), base=False)
        return np.ascontiguousarray(W_E.T)
    if not found:
        t.get(names[0], (V, D), base=False)  # raises: names the missing tensor
    return np.ascontiguousarray(t.get(found[0], (V, D), base=False).T)


# Buffers older checkpoints carry that are recomputed, not learned.
_IGNORED = re.compile(r"(\.attn\.(masked_)?bias|\.attention\.(masked_)?bias|rotary_emb\.inv_freq)$")

_FAMILIES = {
    "gpt2": ("transformer.", _gpt2_config, _gpt2_params),
    "gpt_neox": ("gpt_neox.", _neox_config, _neox_params),
    "llama": ("model.", _llama_config, _llama_params),
}

SUPPORTED_MODEL_TYPES = tuple(sorted(_FAMILIES))


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def config_from_hf(hf: dict, dtype="float32") -> TransformerConfig:
    """The `TransformerConfig` for a Hugging Face `config.json` dict.

    Raises NotImplementedError for model types or settings (RoPE scaling, cross-attention, ...)
    that `mj.Transformer` does not reproduce.
    """
    mt = hf.get("model_type")
    if mt not in _FAMILIES:
        arch = hf.get("architectures")
        raise NotImplementedError(
            f"from_pretrained: model_type {mt!r}"
            + (f" (architectures {arch})" if arch else "")
            + f" is not supported; supported model_type values: {list(SUPPORTED_MODEL_TYPES)} "
            "(GPT-2, GPT-NeoX/Pythia, Llama)."
        )
    if hf.get("quantization_config"):
        method = hf["quantization_config"].get("quant_method", "?")
        _unsupported(mt, f"quantized weights (quantization_config, quant_method={method!r})")
    name = _dtype_name(dtype)
    cfg = _FAMILIES[mt][1](hf)
    arch = (hf.get("architectures") or [mt])[0]
    return cfg.replace(dtype=name, param_dtype=name, name=arch)


def from_pretrained(path, dtype="float32", return_tokenizer: bool = False):
    """Loads a local Hugging Face folder as `(model, params)` (or `(model, params, tokenizer)`).

    Args:
      path: folder with `config.json` and `model.safetensors` (or a sharded
        `model.safetensors.index.json`). GPT-2, GPT-NeoX/Pythia and Llama families; ViT
        (`model_type` "vit": `mj.ViT`, see `mechjax.io.hf_vit`); BART (`model_type` "bart":
        `mj.EncoderDecoder`, see `mechjax.io.hf_bart`).
      dtype: params and activations dtype: "float32", "bfloat16" or "float16" (norms and
        softmax still run in fp32). Checkpoint tensors of any float dtype are cast to it.
      return_tokenizer: also return `load_tokenizer(path)`, or None if the folder has no
        `tokenizer.json`.

    Returns:
      `model` (`mj.Transformer`, `model.cfg.name` = the HF architecture) and flax variables
      `{'params': ...}` in TransformerLens layout (`W_U` written out even when tied).
    """
    folder = _folder(path)
    hf = _read_config(folder)
    if hf.get("model_type") == "vit":  # vision transformers -> mj.ViT
        from mechjax.io import hf_vit

        return hf_vit.load(folder, hf, dtype, return_tokenizer)
    if hf.get("model_type") == "bart":  # encoder-decoders -> mj.EncoderDecoder
        from mechjax.io import hf_bart

        return hf_bart.load(folder, hf, dtype, return_tokenizer)
    cfg = config_from_hf(hf, dtype)
    prefix, _, convert = _FAMILIES[hf["model_type"]]
    with _Tensors(folder, prefix) as t:
        tree = convert(cfg, hf, t)
        t.check_all_used(lambda k: bool(_IGNORED.search(k)))
    model = Transformer(cfg)
    params = _finish(model, tree, cfg)
    if return_tokenizer:
        has = (folder / "tokenizer.json").is_file()
        return model, params, load_tokenizer(folder) if has else None
    return model, params


def _finish(model, tree: dict, cfg) -> dict:
    """Checks the converted tree against the model's own param shapes; casts to cfg.dtype.

    Any family: the expected shapes come from `model.example_inputs()` (the protocol)."""
    expected = jax.eval_shape(lambda: model.init(jax.random.key(0), model.example_inputs()))
    exp, got = _shapes(expected["params"]), _shapes(tree)
    if exp != got:  # a converter bug, not a user error: say exactly what differs
        diff = sorted(set(exp.items()) ^ set(got.items()))
        raise AssertionError(f"from_pretrained: converted params differ from the model's: {diff}")
    target = jnp.dtype(cfg.param_dtype)
    params = jax.tree.map(lambda a: jnp.asarray(np.asarray(a).astype(target)), tree)
    return {"params": params}


def _shapes(tree) -> dict[str, tuple[int, ...]]:
    return {
        jax.tree_util.keystr(k): tuple(v.shape)
        for k, v in jax.tree_util.tree_leaves_with_path(tree)
    }


def load_tokenizer(path):
    """A `tokenizers.Tokenizer` from a folder's `tokenizer.json` (or that file's own path)."""
    from tokenizers import Tokenizer

    p = Path(os.fspath(path)).expanduser()
    f = p / "tokenizer.json" if p.is_dir() else p
    if not f.is_file():
        has_slow = p.is_dir() and (p / "vocab.json").is_file()
        raise FileNotFoundError(
            f"load_tokenizer: no tokenizer.json at {str(f)!r}."
            + (
                " The folder has a slow tokenizer (vocab.json/merges.txt); write tokenizer.json "
                "once with transformers: AutoTokenizer.from_pretrained(path).save_pretrained(path)."
                if has_slow
                else ""
            )
        )
    return Tokenizer.from_file(str(f))
