"""`mj.from_pretrained` on tiny random Hugging Face BART models built and saved locally.

Parity (fp32, max abs diff <= 1e-4) with and without padding masks: logits
(BartForConditionalGeneration; BartModel's last_hidden_state), every encoder and decoder
hidden state, and the encoder self-, decoder self- and cross-attention patterns
(`output_attentions=True`). Cases: tied / untied LM head, scale_embedding, relu / gelu /
gelu_new, different encoder and decoder depths, heads and MLP widths. Nothing is downloaded.
"""

import json

import jax
import numpy as np
import pytest

import mechjax as mj

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
st_numpy = pytest.importorskip("safetensors.numpy")

TOL = 1e-4
VOCAB = 40


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
    # GPUs default to TF32 matmuls (~1e-3 error), which would swamp the 1e-4 comparison.
    with jax.default_matmul_precision("highest"):
        yield


def _randomize(model, seed):
    """Large random weights (HF's 0.02 init would make every model nearly identical):
    norm weights around 1, biases around 0, embeddings ~N(0, 0.7^2), matrices ~1.5/sqrt(fan-in);
    final_logits_bias (a zero buffer) random too, so that b_U is checked."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "layer_norm" in name or "layernorm" in name:
                p.copy_(1.0 + 0.2 * noise if name.endswith("weight") else 0.2 * noise)
            elif p.ndim == 1:
                p.copy_(0.2 * noise)
            elif "embed" in name or "shared" in name:
                p.copy_(0.7 * noise)
            else:
                p.copy_(noise / p.shape[-1] ** 0.5 * 1.5)
        if hasattr(model, "final_logits_bias"):
            bias = model.final_logits_bias
            bias.copy_(0.3 * torch.randn(bias.shape, generator=g))
    return model.eval()


def _config(**kw):
    cfg = dict(
        vocab_size=VOCAB,
        d_model=16,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=2,
        encoder_ffn_dim=24,
        decoder_ffn_dim=20,
        max_position_embeddings=12,
        attn_implementation="eager",  # output_attentions needs the eager attention
    )
    cfg.update(kw)
    return transformers.BartConfig(**cfg)


CASES = {
    "generation_tied_scaled": lambda: transformers.BartForConditionalGeneration(
        _config(scale_embedding=True)
    ),
    "generation_untied_relu": lambda: transformers.BartForConditionalGeneration(
        _config(
            tie_word_embeddings=False,
            activation_function="relu",
            encoder_layers=1,
            decoder_layers=3,
            decoder_attention_heads=4,
        )
    ),
    "base_model_gelu_new": lambda: transformers.BartModel(
        _config(activation_function="gelu_new", encoder_attention_heads=2)
    ),
}


def _saved(tmp_path_factory, case, seed=0):
    hf_model = _randomize(CASES[case](), seed)
    folder = tmp_path_factory.mktemp(case)
    hf_model.save_pretrained(folder, safe_serialization=True)
    return hf_model, folder


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))))


def _inputs(seed=0, batch=3, n_enc=9, n_dec=7):
    rng = np.random.default_rng(seed)
    enc = rng.integers(0, VOCAB, (batch, n_enc)).astype(np.int32)
    dec = rng.integers(0, VOCAB, (batch, n_dec)).astype(np.int32)
    enc_mask = np.ones((batch, n_enc), np.int32)
    enc_mask[1, 6:] = 0
    enc_mask[2, 3:] = 0
    dec_mask = np.ones((batch, n_dec), np.int32)
    dec_mask[2, 4:] = 0
    return enc, dec, enc_mask, dec_mask


def _hf_forward(hf_model, enc, dec, enc_mask=None, dec_mask=None):
    kw = dict(input_ids=torch.tensor(enc), decoder_input_ids=torch.tensor(dec))
    if enc_mask is not None:
        kw["attention_mask"] = torch.tensor(enc_mask)
    if dec_mask is not None:
        kw["decoder_attention_mask"] = torch.tensor(dec_mask)
    with torch.no_grad():
        return hf_model(**kw, output_hidden_states=True, output_attentions=True)


ERRORS: dict[str, float] = {}  # case -> worst max abs diff (printed with pytest -s)


@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "padding_masks"])
@pytest.mark.parametrize("case", list(CASES))
def test_parity_logits_hidden_states_and_attention(tmp_path_factory, case, masked):
    hf_model, folder = _saved(tmp_path_factory, case)
    model, params = mj.from_pretrained(folder)
    c = model.cfg
    assert c.name == hf_model.config.architectures[0]
    enc, dec, enc_mask, dec_mask = _inputs()
    if not masked:
        enc_mask = dec_mask = None
    out = _hf_forward(hf_model, enc, dec, enc_mask, dec_mask)
    mask = None if not masked else {"encoder": enc_mask, "decoder": dec_mask}
    logits, cache = mj.run(
        model, params, {"encoder": enc, "decoder": dec}, cache=True, attention_mask=mask
    )
    errs = {}
    if hasattr(out, "logits"):  # BartForConditionalGeneration
        assert float(np.std(out.logits.numpy())) > 0.3  # varied, so the comparison means something
        errs["logits"] = _max_diff(logits, out.logits)
        last = out.decoder_hidden_states[-1]
    else:  # BartModel: logits through the tied shared embedding; last_hidden_state = hook_out
        last = out.last_hidden_state
        W_E = hf_model.shared.weight.detach().numpy()
        errs["logits"] = _max_diff(logits, last.numpy() @ W_E.T)
    errs["decoder.hook_out"] = _max_diff(cache["decoder.hook_out"], last)
    errs["encoder.hook_out"] = _max_diff(cache["encoder.hook_out"], out.encoder_last_hidden_state)
    for stack, n, hidden, attns in (
        ("encoder", c.n_encoder_layers, out.encoder_hidden_states, out.encoder_attentions),
        ("decoder", c.n_decoder_layers, out.decoder_hidden_states, out.decoder_attentions),
    ):
        assert len(hidden) == n + 1 and len(attns) == n
        for L in range(n):  # hidden_states[L] enters block L; [L + 1] leaves it
            b = f"{stack}.blocks.{L}"
            errs[f"{b}.hook_resid_pre"] = _max_diff(cache[f"{b}.hook_resid_pre"], hidden[L])
            errs[f"{b}.hook_resid_post"] = _max_diff(cache[f"{b}.hook_resid_post"], hidden[L + 1])
            errs[f"{b}.attn.hook_pattern"] = _max_diff(cache[f"{b}.attn.hook_pattern"], attns[L])
    for L in range(c.n_decoder_layers):
        site = f"decoder.blocks.{L}.cross_attn.hook_pattern"
        hf_pat = out.cross_attentions[L].numpy()  # [batch, head, dec_pos, enc_pos]
        assert cache[site].shape == hf_pat.shape
        errs[site] = _max_diff(cache[site], hf_pat)
        if masked:  # padded encoder positions get no cross-attention
            assert float(np.abs(np.asarray(cache[site])[2, :, :, 3:]).max()) == 0.0
    bad = {k: v for k, v in errs.items() if not v <= TOL}
    assert not bad, bad
    ERRORS[f"{case}/{'masked' if masked else 'plain'}"] = max(errs.values())
    print(f"\n{case} masked={masked}: max abs diff {max(errs.values()):.2e} over {len(errs)} sites")


def test_config_and_params_follow_hf(tmp_path_factory):
    hf_model, folder = _saved(tmp_path_factory, "generation_tied_scaled")
    model, params, tok = mj.from_pretrained(folder, return_tokenizer=True)
    assert tok is None  # no tokenizer.json in the folder
    c = model.cfg
    assert (c.norm_position, c.final_norm, c.pos_offset, c.layernorm_embedding) == (
        "post",
        False,
        2,
        True,
    )
    assert (c.scale_embedding, c.tie_embeddings, c.unembed_bias, c.act_fn) == (
        True,
        True,
        True,
        "gelu",
    )
    assert (c.n_heads, c.decoder_heads, c.encoder_mlp, c.decoder_mlp) == (4, 2, 24, 20)
    p = params["params"]
    assert "W_U" not in p and p["encoder"]["W_pos"].shape == (12 + 2, 16)
    shared = hf_model.model.shared.weight.detach().numpy()
    np.testing.assert_array_equal(p["W_E"], shared)
    np.testing.assert_array_equal(p["b_U"], hf_model.final_logits_bias.detach().numpy().reshape(-1))
    assert all(s.post_norm for s in model.layer_stacks()) and model.readout().norm is None
    W, b = model.readout_weights(params)
    np.testing.assert_array_equal(W, shared.T)
    # The untied head is written out as W_U.
    hf_model, folder = _saved(tmp_path_factory, "generation_untied_relu")
    model, params = mj.from_pretrained(folder)
    lm = hf_model.lm_head.weight.detach().numpy()
    np.testing.assert_array_equal(params["params"]["W_U"], lm.T)
    # transformers 5 unties encoder / decoder embed_tokens from `shared` too: two embeddings.
    assert not model.cfg.share_embeddings and not model.cfg.tie_embeddings
    for ours, theirs in ((("encoder", "W_E"), "encoder"), (("W_E",), "decoder")):
        got = params["params"]
        for k in ours:
            got = got[k]
        want = getattr(hf_model.model, theirs).embed_tokens.weight.detach().numpy()
        np.testing.assert_array_equal(got, want)
    # BartModel: no bias, tied readout.
    _, folder = _saved(tmp_path_factory, "base_model_gelu_new")
    model, params = mj.from_pretrained(folder)
    assert model.cfg.tie_embeddings and not model.cfg.unembed_bias
    assert "b_U" not in params["params"] and model.cfg.name == "BartModel"


def _edit_config(folder, **kw):
    f = folder / "config.json"
    cfg = json.loads(f.read_text())
    cfg.update(kw)
    f.write_text(json.dumps(cfg))


def test_host_side_errors(tmp_path_factory):
    _, folder = _saved(tmp_path_factory, "base_model_gelu_new")
    _edit_config(folder, normalize_before=True)
    with pytest.raises(NotImplementedError, match="normalize_before=True"):
        mj.from_pretrained(folder)
    _edit_config(folder, normalize_before=False, architectures=["BartForSequenceClassification"])
    with pytest.raises(NotImplementedError, match="BartForSequenceClassification"):
        mj.from_pretrained(folder)
    _edit_config(folder, architectures=["BartModel"], d_model=32)
    with pytest.raises(ValueError, match="has shape .* config.json implies"):
        mj.from_pretrained(folder)
    _edit_config(folder, d_model=16)
    tensors = st_numpy.load_file(str(folder / "model.safetensors"))
    tensors["encoder.extra_proj.weight"] = np.zeros((2, 2), np.float32)
    st_numpy.save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="does not use: \\['encoder.extra_proj.weight'\\]"):
        mj.from_pretrained(folder)
