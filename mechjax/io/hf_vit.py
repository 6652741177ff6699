"""Hugging Face ViT checkpoints (`model_type` "vit") -> `mj.ViT` + params, via safetensors.

`ViTForImageClassification` loads with its class head (`n_classes` = the config's labels;
`mj.run` returns logits `[batch, class]` from the final-normed class token, as HF).
`ViTModel` loads without a head (`n_classes=0`): `mj.run` returns HF's
`last_hidden_state`, the final-normed stream `[batch, 1 + patches, d_model]`; its pooler
(dense + tanh on the class token, HF's `pooler_output`) is not part of `mj.ViT` and its
weights are skipped.

Images are channels-last `[batch, h, w, c]` where HF takes `pixel_values [batch, c, h, w]`
(`pixel_values.transpose(0, 2, 3, 1)`); normalisation (the image processor) is not applied.
Tensor layouts:

    patch conv kernel [d_model, c, p, p] -> W_patch [p * p * c, d_model]  ((row, col, channel))
    cls_token [1, 1, d] -> cls_token [d]   position_embeddings [1, pos, d] -> W_pos [pos, d]
    query/key/value [d, d] (Linear, [out, in]) -> W_Q/K/V [head, d_model, d_head]
    attention.output.dense -> W_O [head, d_head, d_model]
    intermediate.dense / output.dense -> W_in [d_model, d_mlp] / W_out [d_mlp, d_model]
    layernorm_before / layernorm_after / layernorm -> ln1 / ln2 / ln_final
    classifier [class, d] -> W_U [d, class]

Both the checkpoint names `save_pretrained` writes (`encoder.layer.{L}.attention.attention.
query`, ...) and transformers-5's in-memory names (`layers.{L}.attention.q_proj`, ...) load.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mechjax.io.hf import _act, _dtype_name, _finish, _Tensors, _unsupported
from mechjax.models.vit import ViT, ViTConfig

ARCHITECTURES = ("ViTModel", "ViTForImageClassification")

# HF tensor names per layer, in the two spellings (saved checkpoints / transformers-5 modules).
_LEGACY = {
    "layer": "encoder.layer.{L}.",
    "q": "attention.attention.query",
    "k": "attention.attention.key",
    "v": "attention.attention.value",
    "o": "attention.output.dense",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
}
_V5 = {
    "layer": "layers.{L}.",
    "q": "attention.q_proj",
    "k": "attention.k_proj",
    "v": "attention.v_proj",
    "o": "attention.o_proj",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
}

# Tensors of HF's ViT that mj.ViT does not use: ViTModel's pooler, the masked-image token.
_IGNORED = re.compile(r"^(vit\.)?(pooler\.dense\.(weight|bias)|embeddings\.mask_token)$")


def config_from_hf_vit(hf: dict, dtype="float32") -> ViTConfig:
    """The `ViTConfig` for a HF ViT `config.json` dict; NotImplementedError for settings
    `mj.ViT` does not reproduce."""
    arch = (hf.get("architectures") or ["ViTModel"])[0]
    if arch not in ARCHITECTURES:
        _unsupported("vit", f"architecture {arch!r} (supported: {list(ARCHITECTURES)})")
    patch = hf.get("patch_size", 16)
    if not isinstance(patch, int):
        ph, pw = patch
        if ph != pw:
            _unsupported("vit", f"non-square patches {patch}")
        patch = ph
    n_classes = 0
    if arch == "ViTForImageClassification":
        labels = hf.get("id2label")
        n_classes = len(labels) if labels else int(hf.get("num_labels", 2))
    d, h = hf["hidden_size"], hf["num_attention_heads"]
    if hf.get("head_dim") not in (None, d // h):
        _unsupported("vit", f"head_dim={hf['head_dim']} != hidden_size / num_attention_heads")
    name = _dtype_name(dtype)
    image = hf.get("image_size", 224)
    return ViTConfig(
        image_size=image if isinstance(image, int) else tuple(image),
        patch_size=patch,
        n_channels=hf.get("num_channels", 3),
        d_model=d,
        n_layers=hf["num_hidden_layers"],
        n_heads=h,
        d_mlp=hf["intermediate_size"],
        n_classes=n_classes,
        pool="cls",
        class_token=True,
        act_fn=_act(hf, "hidden_act"),
        eps=hf.get("layer_norm_eps", 1e-12),
        dtype=name,
        param_dtype=name,
        name=arch,
    )


def _params(c: ViTConfig, hf: dict, t: _Tensors) -> dict:
    D, H, E, M, C, P = c.d_model, c.n_heads, c.head_dim, c.mlp_dim, c.n_channels, c.patch_size
    n = _LEGACY if t.has(_LEGACY["layer"].format(L=0) + _LEGACY["q"] + ".weight") else _V5
    conv = t.get("embeddings.patch_embeddings.projection.weight", (D, C, P, P))
    p = {
        # Conv2d [out, in, kh, kw] -> [kh, kw, in, out] (HWIO) -> rows in (row, col, channel)
        "W_patch": conv.transpose(2, 3, 1, 0).reshape(P * P * C, D),
        "b_patch": t.get("embeddings.patch_embeddings.projection.bias", (D,)),
        "cls_token": t.get("embeddings.cls_token", (1, 1, D)).reshape(D),
        # HF's row order is the conv output flattened over (h, w): row-major, as ours.
        "W_pos": t.get("embeddings.position_embeddings", (1, c.n_pos(), D)).reshape(-1, D),
    }
    qkv_bias = bool(hf.get("qkv_bias", True))

    for L in range(c.n_layers):
        b = n["layer"].format(L=L)

        def lin(key, shape, b=b):  # Linear weight [out, in] and bias [out]
            return t.get(f"{b}{n[key]}.weight", shape)

        def bias(key, size, b=b):
            return t.get(f"{b}{n[key]}.bias", (size,))

        attn = {}
        for k in ("q", "k", "v"):  # [head * d_head, d_model] -> [head, d_model, d_head]
            attn[f"W_{k.upper()}"] = lin(k, (H * E, D)).reshape(H, E, D).transpose(0, 2, 1)
            attn[f"b_{k.upper()}"] = (
                bias(k, H * E).reshape(H, E) if qkv_bias else np.zeros((H, E), np.float32)
            )
        attn["W_O"] = lin("o", (D, H * E)).T.reshape(H, E, D)  # [head, d_head, d_model]
        attn["b_O"] = bias("o", D)
        mlp = {
            "W_in": lin("fc1", (M, D)).T,  # [d_model, d_mlp]
            "b_in": bias("fc1", M),
            "W_out": lin("fc2", (D, M)).T,  # [d_mlp, d_model]
            "b_out": bias("fc2", D),
        }
        ln = {
            ours: {"w": t.get(f"{b}{theirs}.weight", (D,)), "b": t.get(f"{b}{theirs}.bias", (D,))}
            for ours, theirs in (("ln1", "layernorm_before"), ("ln2", "layernorm_after"))
        }
        p[f"blocks_{L}"] = {**ln, "attn": attn, "mlp": mlp}
    p["ln_final"] = {"w": t.get("layernorm.weight", (D,)), "b": t.get("layernorm.bias", (D,))}
    if c.n_classes:
        K = c.n_classes
        p["W_U"] = np.ascontiguousarray(t.get("classifier.weight", (K, D), base=False).T)
        p["b_U"] = t.get("classifier.bias", (K,), base=False)
    return p


def load(folder: Path, hf: dict, dtype="float32", return_tokenizer: bool = False):
    """`(mj.ViT, params)` from a local HF ViT folder (called by `mj.from_pretrained`);
    with `return_tokenizer`, a third element None (image models have no tokenizer)."""
    cfg = config_from_hf_vit(hf, dtype)
    with _Tensors(folder, "vit.") as t:
        tree = _params(cfg, hf, t)
        t.check_all_used(
            lambda k: bool(_IGNORED.search(k)),
            "ViT checkpoint",
            "mj.ViT",
            f"(architectures {list(ARCHITECTURES)})?",
        )
    model = ViT(cfg)
    params = _finish(model, tree, cfg)
    return (model, params, None) if return_tokenizer else (model, params)
