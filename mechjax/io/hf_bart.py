"""Hugging Face BART checkpoints (`model_type` "bart") -> `mj.EncoderDecoder` + params.

Read with `safetensors`' numpy API (no torch at run time). Both architectures load:

* `BartForConditionalGeneration`: `mj.run(model, params, {"encoder": input_ids,
  "decoder": decoder_input_ids})` returns HF's `logits` `[batch, dec_pos, vocab]`
  (`lm_head` tied to the shared embedding unless `tie_word_embeddings=False`, plus
  `final_logits_bias` as `b_U`).
* `BartModel` (no LM head): `mj.run` returns logits through the tied shared embedding,
  `decoder.hook_out @ W_E.T` (no bias), i.e. what the conditional-generation head computes
  on the same weights with a zero `final_logits_bias`, so logit metrics and attribution
  work; HF's `last_hidden_state` is the site `decoder.hook_out` and its
  `encoder_last_hidden_state` is `encoder.hook_out`.

HF passes `decoder_input_ids` explicitly here; BART's default of shifting `input_ids`
right (`shift_tokens_right`) is the caller's job. What the conversion encodes:

    post-LN blocks (LN after each residual add)            norm_position="post", no ln_final
    layernorm_embedding (encoder and decoder)              layernorm_embedding=True
    learned positions, rows offset by 2                    W_pos [max_pos + 2, d], pos_offset=2
    scale_embedding (token embeddings * sqrt(d_model))     scale_embedding from config.json
    q scaled by 1 / sqrt(d_head), biases everywhere        the shared Attention / MLP
    activation_function                                    act_fn (gelu = exact erf GELU)

Tensor layouts (Linear weights are `[out, in]`):

    shared [vocab, d] -> W_E (both streams, tied head)    tie_word_embeddings (default)
    decoder.embed_tokens -> W_E, encoder.embed_tokens -> encoder.W_E
                                  untied transformers-5 checkpoints (share_embeddings=False)
    {encoder,decoder}.embed_positions [max_pos + 2, d]   -> {encoder,decoder}.W_pos
    {encoder,decoder}.layernorm_embedding                -> {encoder,decoder}.ln_embed
    layers.{L}.self_attn.{q,k,v}_proj [h * e, d]         -> blocks_{L}.attn.W_Q/K/V [h, d, e]
    layers.{L}.self_attn.out_proj [d, h * e]             -> blocks_{L}.attn.W_O [h, e, d]
    decoder.layers.{L}.encoder_attn.*                    -> decoder.blocks_{L}.cross_attn.*
    self_attn_layer_norm / encoder_attn_layer_norm / final_layer_norm -> ln1 / ln_cross / ln2
    fc1 / fc2                                            -> mlp.W_in [d, d_mlp] / W_out
    lm_head [vocab, d] (untied only) -> W_U [d, vocab]   final_logits_bias [1, vocab] -> b_U
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mechjax.io.hf import _act, _dtype_name, _finish, _Tensors, _unsupported
from mechjax.models.encoder_decoder import EncoderDecoder, EncoderDecoderConfig

ARCHITECTURES = ("BartModel", "BartForConditionalGeneration")
POS_OFFSET = 2  # BartLearnedPositionalEmbedding.offset

# Tensors HF itself ignores when loading (`_keys_to_ignore_on_load_unexpected`).
_IGNORED = re.compile(r"^(model\.)?(encoder|decoder)\.version$")

# Old BartConfig / fairseq-port fields that change the computation; value = BART's setting.
_FIXED = {
    "normalize_before": False,
    "add_final_layer_norm": False,
    "normalize_embedding": True,
    "static_position_embeddings": False,
    "add_bias_logits": False,
    "extra_pos_embeddings": POS_OFFSET,
}


def _architecture(hf: dict, folder: Path | None = None) -> str:
    archs = hf.get("architectures") or []
    if not archs:  # no field: decide by whether the checkpoint nests the base model
        return "BartForConditionalGeneration" if folder and _has_head(folder) else "BartModel"
    arch = archs[0]
    if arch not in ARCHITECTURES:
        _unsupported("bart", f"architecture {arch!r} (supported: {list(ARCHITECTURES)})")
    return arch


def _has_head(folder: Path) -> bool:
    from mechjax.io.hf import _weight_files

    names = _weight_files(folder)
    return any(
        k.startswith("model.") or k in ("final_logits_bias", "lm_head.weight") for k in names
    )


def config_from_hf_bart(hf: dict, dtype="float32", arch: str | None = None) -> EncoderDecoderConfig:
    """The `EncoderDecoderConfig` for a HF BART `config.json` dict; NotImplementedError for
    settings `mj.EncoderDecoder` does not reproduce."""
    arch = arch or _architecture(hf)
    for key, want in _FIXED.items():
        if key in hf and hf[key] != want:
            _unsupported("bart", f"{key}={hf[key]!r} (BART's is {want!r})")
    d = hf["d_model"]
    for key in ("encoder_attention_heads", "decoder_attention_heads"):
        if d % hf[key]:
            _unsupported("bart", f"d_model={d} not divisible by {key}={hf[key]}")
    generate = arch == "BartForConditionalGeneration"
    tie = hf.get("tie_word_embeddings")
    tie = True if tie is None or not generate else bool(tie)
    name = _dtype_name(dtype)
    return EncoderDecoderConfig(
        d_model=d,
        n_encoder_layers=hf["encoder_layers"],
        n_decoder_layers=hf["decoder_layers"],
        n_heads=hf["encoder_attention_heads"],
        n_decoder_heads=hf["decoder_attention_heads"],
        d_mlp=hf["encoder_ffn_dim"],
        d_decoder_mlp=hf["decoder_ffn_dim"],
        d_vocab=hf["vocab_size"],
        n_ctx=hf["max_position_embeddings"],
        norm_position="post",
        normalization_type="LN",
        final_norm=False,
        positional_embedding_type="standard",
        pos_offset=POS_OFFSET,
        layernorm_embedding=True,
        scale_embedding=bool(hf.get("scale_embedding", False)),
        tie_embeddings=tie,
        unembed_bias=generate,
        act_fn=_act(hf, "activation_function"),
        eps=1e-5,  # torch.nn.LayerNorm's default; BART has no eps field
        dtype=name,
        param_dtype=name,
        name=arch,
    )


def _embeddings(t: _Tensors, V: int, D: int, tie: bool) -> tuple[np.ndarray, np.ndarray]:
    """(encoder, decoder) token embeddings, as transformers uses them.

    Tied (`tie_word_embeddings`, the default) both streams read `shared` (transformers 5 ties
    `encoder/decoder.embed_tokens` to it; 4.x used the one module). Untied, transformers 5
    reads each stream's own `embed_tokens` (and `shared` goes unused); a checkpoint without
    them (4.x stored only `shared`) falls back to `shared`. Every stored copy is
    shape-checked; the copies HF ignores are ignored here too.
    """
    names = ("shared", "encoder.embed_tokens", "decoder.embed_tokens")
    have = {n: t.get(f"{n}.weight", (V, D)) for n in names if t.has(f"{n}.weight")}
    if not have:
        t.get("shared.weight", (V, D))  # raises, naming the missing tensor
    first = next(iter(have.values()))
    if tie:
        W = have.get("shared", first)
        return W, W
    shared = have.get("shared", first)
    return have.get("encoder.embed_tokens", shared), have.get("decoder.embed_tokens", shared)


def _params(
    c: EncoderDecoderConfig, t: _Tensors, generate: bool, W_enc: np.ndarray, W_dec: np.ndarray
) -> dict:
    D, V = c.d_model, c.d_vocab
    n_pos = c.n_ctx + c.pos_offset

    def ln(name):
        return {"w": t.get(f"{name}.weight", (D,)), "b": t.get(f"{name}.bias", (D,))}

    def attn(name, H):
        e = D // H
        out = {}
        for k in ("q", "k", "v"):  # [head * d_head, d_model] -> [head, d_model, d_head]
            w = t.get(f"{name}.{k}_proj.weight", (H * e, D))
            out[f"W_{k.upper()}"] = w.reshape(H, e, D).transpose(0, 2, 1)
            out[f"b_{k.upper()}"] = t.get(f"{name}.{k}_proj.bias", (H * e,)).reshape(H, e)
        out["W_O"] = t.get(f"{name}.out_proj.weight", (D, H * e)).T.reshape(H, e, D)
        out["b_O"] = t.get(f"{name}.out_proj.bias", (D,))
        return out

    def mlp(name, M):
        return {
            "W_in": t.get(f"{name}.fc1.weight", (M, D)).T,  # [d_model, d_mlp]
            "b_in": t.get(f"{name}.fc1.bias", (M,)),
            "W_out": t.get(f"{name}.fc2.weight", (D, M)).T,  # [d_mlp, d_model]
            "b_out": t.get(f"{name}.fc2.bias", (D,)),
        }

    p = {"W_E": W_dec}
    if not c.share_embeddings:
        enc_own = {"W_E": W_enc}
    enc = {} if c.share_embeddings else enc_own
    enc["W_pos"] = t.get("encoder.embed_positions.weight", (n_pos, D))
    enc["ln_embed"] = ln("encoder.layernorm_embedding")
    for L in range(c.n_encoder_layers):
        b = f"encoder.layers.{L}"
        enc[f"blocks_{L}"] = {
            "attn": attn(f"{b}.self_attn", c.n_heads),
            "ln1": ln(f"{b}.self_attn_layer_norm"),
            "mlp": mlp(b, c.encoder_mlp),
            "ln2": ln(f"{b}.final_layer_norm"),
        }
    dec = {"W_pos": t.get("decoder.embed_positions.weight", (n_pos, D))}
    dec["ln_embed"] = ln("decoder.layernorm_embedding")
    for L in range(c.n_decoder_layers):
        b = f"decoder.layers.{L}"
        dec[f"blocks_{L}"] = {
            "attn": attn(f"{b}.self_attn", c.decoder_heads),
            "ln1": ln(f"{b}.self_attn_layer_norm"),
            "cross_attn": attn(f"{b}.encoder_attn", c.decoder_heads),
            "ln_cross": ln(f"{b}.encoder_attn_layer_norm"),
            "mlp": mlp(b, c.decoder_mlp),
            "ln2": ln(f"{b}.final_layer_norm"),
        }
    p["encoder"], p["decoder"] = enc, dec
    if generate:
        p["b_U"] = t.get("final_logits_bias", (1, V), base=False).reshape(V)
        if c.tie_embeddings:
            if t.has("lm_head.weight", base=False):  # a stored tied copy: ignored, as by HF
                t.get("lm_head.weight", (V, D), base=False)
        else:
            p["W_U"] = np.ascontiguousarray(t.get("lm_head.weight", (V, D), base=False).T)
    return p


def load(folder: Path, hf: dict, dtype="float32", return_tokenizer: bool = False):
    """`(mj.EncoderDecoder, params)` from a local HF BART folder (called by
    `mj.from_pretrained`); with `return_tokenizer`, the folder's tokenizer.json or None."""
    arch = _architecture(hf, folder)
    cfg = config_from_hf_bart(hf, dtype, arch)
    generate = arch == "BartForConditionalGeneration"
    with _Tensors(folder, "model.") as t:
        if generate and not t.prefix:
            raise ValueError(
                f"from_pretrained: config.json says {arch}, but the checkpoint in "
                f"{str(folder)!r} has no 'model.'-prefixed tensors (is it a BartModel?)."
            )
        tie = hf.get("tie_word_embeddings")
        W_enc, W_dec = _embeddings(t, cfg.d_vocab, cfg.d_model, True if tie is None else tie)
        # Two different token embeddings (untied transformers-5 checkpoints) stay two.
        cfg = cfg.replace(share_embeddings=bool(np.array_equal(W_enc, W_dec)))
        tree = _params(cfg, t, generate, W_enc, W_dec)
        t.check_all_used(
            lambda k: bool(_IGNORED.search(k)),
            "BART checkpoint",
            "mj.EncoderDecoder",
            f"(architectures {list(ARCHITECTURES)})?",
        )
    model = EncoderDecoder(cfg)
    params = _finish(model, tree, cfg)
    if not return_tokenizer:
        return model, params
    from mechjax.io.hf import load_tokenizer

    has = (folder / "tokenizer.json").is_file()
    return model, params, load_tokenizer(folder) if has else None
