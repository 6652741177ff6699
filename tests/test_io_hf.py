"""`mj.from_pretrained` against tiny random Hugging Face models built and saved locally.

Parity: logits and every hidden state match `transformers` (fp32, max abs diff <= 1e-4) for
GPT-2 (tied / untied), GPT-NeoX (partial rotary, parallel and sequential residual) and Llama
(grouped-query attention, tied / untied, biases, head_dim != d_model / n_heads). Also sharded
and bf16 checkpoints, tokenizer.json, and every host-side error. Nothing is downloaded.
"""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
st_numpy = pytest.importorskip("safetensors.numpy")

# Float32 agreement, relative to the tensor's scale: residual streams of magnitude ~6 differ
# by ~1e-4 between BLAS builds (CI saw 1.35e-4 on one), while a real bug differs by > 1e-2.
TOL = 1e-4
VOCAB = 80


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
    # GPUs default to TF32 matmuls (~1e-3 error), which would swamp the 1e-4 comparison.
    with jax.default_matmul_precision("highest"):
        yield


def _randomize(model, seed):
    """Large random weights (HF's 0.02 init would make every model nearly identical):
    norm weights around 1, biases around 0, matrices ~N(0, 0.3^2 / fan-in scale)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name or name.split(".")[-2].startswith("ln"):
                p.copy_(1.0 + 0.2 * noise if name.endswith("weight") else 0.2 * noise)
            elif p.ndim == 1:
                p.copy_(0.2 * noise)
            else:
                p.copy_(noise / p.shape[-1] ** 0.5 * 1.5)
    return model.eval()


def _gpt2(**kw):
    cfg = dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=24)
    cfg.update(kw)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**cfg))


def _neox(**kw):
    cfg = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
    )
    cfg.update(kw)
    return transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**cfg))


def _llama(**kw):
    cfg = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
    )
    cfg.update(kw)
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg))


CASES = {
    "gpt2_tied": lambda: _gpt2(),
    "gpt2_untied": lambda: _gpt2(tie_word_embeddings=False, activation_function="gelu"),
    "neox_parallel_partial_rotary": lambda: _neox(rotary_pct=0.5, rotary_emb_base=5000),
    "neox_sequential_nobias": lambda: _neox(
        use_parallel_residual=False, rotary_pct=0.25, attention_bias=False, layer_norm_eps=1e-3
    ),
    "llama_gqa_tied": lambda: _llama(tie_word_embeddings=True, rope_theta=500.0),
    "llama_gqa_untied_biases_headdim": lambda: _llama(
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        attention_bias=True,
        mlp_bias=True,
        rms_norm_eps=1e-4,
    ),
}


def _final_norm(hf_model):
    base = hf_model.base_model
    for name in ("ln_f", "final_layer_norm", "norm"):
        if hasattr(base, name):
            return getattr(base, name)
    raise AssertionError("no final norm found")


def _hf_forward(hf_model, tokens):
    """HF logits, hidden states (embeddings, after each block but the last, final-normed last)
    and the last block's output before the final norm."""
    seen = {}

    def grab(module, args):  # returns None: the input is left unchanged
        seen["pre_norm"] = args[0].detach().numpy().copy()

    hook = _final_norm(hf_model).register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            out = hf_model(torch.tensor(tokens), output_hidden_states=True)
    finally:
        hook.remove()
    return out.logits.numpy(), [h.numpy() for h in out.hidden_states], seen["pre_norm"]


def _max_diff(a, b):
    """Largest absolute difference, divided by the reference's largest magnitude when above 1."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def _tokens(seed=0, batch=3, pos=12):
    return np.random.default_rng(seed).integers(0, VOCAB, (batch, pos)).astype(np.int32)


def _saved(tmp_path_factory, case, seed=0, **save_kw):
    hf_model = _randomize(CASES[case](), seed)
    folder = tmp_path_factory.mktemp(case)
    hf_model.save_pretrained(folder, **save_kw)
    return hf_model, folder


@pytest.mark.parametrize("case", list(CASES))
def test_parity_logits_and_hidden_states(tmp_path_factory, case):
    hf_model, folder = _saved(tmp_path_factory, case)
    model, params = mj.from_pretrained(folder)
    cfg = model.cfg
    assert cfg.name == hf_model.config.architectures[0]
    tokens = _tokens()
    hf_logits, hf_hidden, hf_pre_norm = _hf_forward(hf_model, tokens)
    L = cfg.n_layers
    logits, cache = mj.run(
        model,
        params,
        tokens,
        cache=("blocks.*.hook_resid_pre", f"blocks.{L - 1}.hook_resid_post", "ln_final.*"),
    )
    # The models must actually produce varied logits, or the comparison proves nothing.
    assert float(np.std(hf_logits)) > 0.3
    assert _max_diff(logits, hf_logits) <= TOL
    assert len(hf_hidden) == L + 1
    for layer in range(L):  # hidden_states[i] is the input of block i
        assert _max_diff(cache[f"blocks.{layer}.hook_resid_pre"], hf_hidden[layer]) <= TOL, layer
    assert _max_diff(cache[f"blocks.{L - 1}.hook_resid_post"], hf_pre_norm) <= TOL
    # transformers replaces the last hidden state by the final-normed one (tie_last_hidden_states).
    ln = params["params"]["ln_final"]
    final = cache["ln_final.hook_normalized"] * ln["w"] + ln.get("b", 0.0)
    assert _max_diff(final, hf_hidden[L]) <= TOL


def test_config_fields_follow_hf(tmp_path_factory):
    _, folder = _saved(tmp_path_factory, "neox_sequential_nobias")
    cfg = mj.from_pretrained(folder)[0].cfg
    assert (cfg.rotary_dim, cfg.parallel_attn_mlp, cfg.attn_bias, cfg.eps) == (
        2,
        False,
        False,
        1e-3,
    )
    _, folder = _saved(tmp_path_factory, "llama_gqa_untied_biases_headdim")
    model, params = mj.from_pretrained(folder)
    assert (model.cfg.n_kv_heads, model.cfg.head_dim, model.cfg.rotary_base) == (1, 16, 10000.0)
    attn = params["params"]["blocks_0"]["attn"]
    assert attn["W_Q"].shape == (4, 32, 16) and attn["W_K"].shape == (1, 32, 16)
    assert set(params["params"]["blocks_0"]["mlp"]) == {
        "W_gate",
        "W_in",
        "W_out",
        "b_gate",
        "b_in",
        "b_out",
    }


def test_pre_v5_config_fields(tmp_path_factory):
    """config.json written by transformers 4.x: top-level rotary_pct / rotary_emb_base /
    rope_theta / rope_scaling instead of transformers 5's `rope_parameters`."""
    _, folder = _saved(tmp_path_factory, "neox_parallel_partial_rotary")
    new = mj.from_pretrained(folder)[0].cfg
    _edit_config(folder, rope_parameters=None, rotary_pct=0.5, rotary_emb_base=5000)
    old = mj.from_pretrained(folder)[0].cfg
    assert (old.rotary_dim, old.rotary_base) == (4, 5000.0) and old == new
    _, folder = _saved(tmp_path_factory, "llama_gqa_tied")
    new = mj.from_pretrained(folder)[0].cfg
    _edit_config(folder, rope_parameters=None, rope_theta=500.0, rope_scaling=None)
    old = mj.from_pretrained(folder)[0].cfg
    assert old.rotary_base == 500.0 and old == new


def test_tied_embeddings_written_as_untied_W_U(tmp_path_factory):
    hf_model, folder = _saved(tmp_path_factory, "gpt2_tied")
    _, params = mj.from_pretrained(folder)
    p = params["params"]
    np.testing.assert_array_equal(p["W_U"], p["W_E"].T)
    wte = hf_model.transformer.wte.weight.detach().numpy()
    np.testing.assert_array_equal(p["W_E"], wte)


def test_sharded_checkpoint(tmp_path_factory):
    hf_model, folder = _saved(tmp_path_factory, "llama_gqa_tied", max_shard_size="20KB")
    shards = sorted(p.name for p in folder.glob("*.safetensors"))
    assert (folder / "model.safetensors.index.json").is_file() and len(shards) > 1
    model, params = mj.from_pretrained(folder)
    tokens = _tokens(1)
    logits, _ = mj.run(model, params, tokens)
    assert _max_diff(logits, _hf_forward(hf_model, tokens)[0]) <= TOL


def test_bf16_checkpoint(tmp_path_factory):
    hf_model = _randomize(CASES["neox_parallel_partial_rotary"](), 3)
    folder = tmp_path_factory.mktemp("bf16")
    hf_model.to(torch.bfloat16).save_pretrained(folder)
    with open(folder / "model.safetensors", "rb") as fh:  # really a bf16 file
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"BF16"}

    # Reference: the bf16 weights in a fresh fp32 model (casting the bf16 model back with
    # .float() would keep its bf16-rounded rotary inv_freq buffer).
    ref = CASES["neox_parallel_partial_rotary"]().eval()
    ref.load_state_dict({k: v.float() for k, v in hf_model.state_dict().items()})
    tokens = _tokens(2)
    hf_logits = _hf_forward(ref, tokens)[0]
    model, params = mj.from_pretrained(folder)  # default float32
    assert params["params"]["W_E"].dtype == jnp.float32
    logits, _ = mj.run(model, params, tokens)
    assert _max_diff(logits, hf_logits) <= TOL

    model16, params16 = mj.from_pretrained(folder, dtype="bfloat16")
    assert model16.cfg.dtype == model16.cfg.param_dtype == "bfloat16"
    assert params16["params"]["blocks_0"]["attn"]["W_Q"].dtype == jnp.bfloat16
    # bf16 weights are exact in both loads; only the activations are rounded.
    np.testing.assert_array_equal(
        params16["params"]["W_E"].astype(jnp.float32), params["params"]["W_E"]
    )
    logits16, _ = mj.run(model16, params16, tokens)
    assert logits16.dtype == jnp.bfloat16
    err = _max_diff(logits16, hf_logits) / float(np.abs(hf_logits).max())
    assert err < 0.05


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["[UNK]"])
    tok.train_from_iterator(["the cat sat on the mat", "a dog sat on a log"] * 5, trainer)
    return tok


def test_tokenizer(tmp_path_factory):
    hf_model, folder = _saved(tmp_path_factory, "gpt2_tied")
    model, params, tok = mj.from_pretrained(folder, return_tokenizer=True)
    assert tok is None  # no tokenizer.json in the folder
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        mj.load_tokenizer(folder)

    trained = _tiny_tokenizer()
    trained.save(str(folder / "tokenizer.json"))
    model, params, tok = mj.from_pretrained(folder, return_tokenizer=True)
    text = "the cat sat on a log"
    ids = tok.encode(text).ids
    assert ids == trained.encode(text).ids and len(ids) > 0 and max(ids) < VOCAB
    assert tok.decode(ids) == trained.decode(ids)
    assert mj.load_tokenizer(folder / "tokenizer.json").encode(text).ids == ids
    logits, _ = mj.run(model, params, np.array([ids], np.int32))
    assert _max_diff(logits, _hf_forward(hf_model, np.array([ids]))[0]) <= TOL


# -- errors --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    return _saved(tmp_path_factory, "gpt2_untied")[1]


def _copy(src, tmp_path, skip=()):
    dst = tmp_path / "ckpt"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*skip))
    return dst


def _edit_config(folder, **changes):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def test_error_missing_path_and_file_path(tmp_path, gpt2_folder):
    with pytest.raises(FileNotFoundError, match="does not exist.*local Hugging Face folder"):
        mj.from_pretrained(tmp_path / "nope")
    with pytest.raises(NotADirectoryError, match="is a file"):
        mj.from_pretrained(gpt2_folder / "config.json")


def test_error_no_config(tmp_path, gpt2_folder):
    folder = _copy(gpt2_folder, tmp_path, skip=("config.json",))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        mj.from_pretrained(folder)


def test_error_no_safetensors(tmp_path, gpt2_folder):
    folder = _copy(gpt2_folder, tmp_path, skip=("*.safetensors",))
    (folder / "pytorch_model.bin").write_bytes(b"\0")
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin.*not supported") as e:
        mj.from_pretrained(folder)
    assert "save_pretrained" in str(e.value)


def test_error_unsupported_model_type(tmp_path, gpt2_folder):
    folder = _copy(gpt2_folder, tmp_path)
    _edit_config(folder, model_type="bert", architectures=["BertModel"])
    with pytest.raises(NotImplementedError, match=r"'bert'.*'gpt2', 'gpt_neox', 'llama'"):
        mj.from_pretrained(folder)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}}, "linear"),
        ({"rope_scaling": {"type": "dynamic", "factor": 2.0}, "rope_parameters": None}, "dynamic"),
        ({"hidden_act": "mish"}, "hidden_act='mish'"),
        ({"quantization_config": {"quant_method": "gptq", "bits": 4}}, "gptq"),
    ],
    ids=["rope_parameters_linear", "old_rope_scaling", "activation", "quantized"],
)
def test_error_unsupported_settings(tmp_path_factory, changes, match):
    _, folder = _saved(tmp_path_factory, "llama_gqa_tied")
    _edit_config(folder, **changes)
    with pytest.raises(NotImplementedError, match=match):
        mj.from_pretrained(folder)


def test_error_gpt2_attention_scaling(tmp_path, gpt2_folder):
    folder = _copy(gpt2_folder, tmp_path)
    _edit_config(folder, scale_attn_by_inverse_layer_idx=True)
    with pytest.raises(NotImplementedError, match="scale_attn_by_inverse_layer_idx"):
        mj.from_pretrained(folder)


def _rewrite_weights(folder, fn):
    tensors = st_numpy.load_file(folder / "model.safetensors")
    st_numpy.save_file(fn(tensors), folder / "model.safetensors", metadata={"format": "pt"})


def test_error_missing_tensor(tmp_path, gpt2_folder):
    folder = _copy(gpt2_folder, tmp_path)
    name = "transformer.h.1.mlp.c_fc.bias"
    _rewrite_weights(folder, lambda t: {k: v for k, v in t.items() if k != name})
    with pytest.raises(KeyError, match=name.replace(".", r"\.")):
        mj.from_pretrained(folder)
    folder2 = _copy(gpt2_folder, tmp_path / "b")
    _rewrite_weights(folder2, lambda t: {k: v for k, v in t.items() if k != "lm_head.weight"})
    with pytest.raises(KeyError, match="lm_head.weight"):  # untied model without its head
        mj.from_pretrained(folder2)


def test_error_unexpected_tensor(tmp_path, gpt2_folder):
    folder = _copy(gpt2_folder, tmp_path)
    _rewrite_weights(folder, lambda t: {**t, "score.weight": np.zeros((2, 32), np.float32)})
    with pytest.raises(ValueError, match="score.weight"):
        mj.from_pretrained(folder)


def test_base_model_layout_and_recomputed_buffers(tmp_path, gpt2_folder):
    """The original GPT-2 upload: no `transformer.` prefix, plus causal-mask buffers."""
    folder = _copy(gpt2_folder, tmp_path)
    mask = np.tril(np.ones((1, 1, 24, 24), np.float32))

    def old_layout(t):
        t = {k.removeprefix("transformer."): v for k, v in t.items()}
        return {**t, "h.0.attn.bias": mask, "h.1.attn.bias": mask}

    _rewrite_weights(folder, old_layout)
    _, params = mj.from_pretrained(folder)
    _, reference = mj.from_pretrained(gpt2_folder)
    jax.tree.map(np.testing.assert_array_equal, params, reference)


def test_error_wrong_shape(tmp_path, gpt2_folder):
    folder = _copy(gpt2_folder, tmp_path)
    _edit_config(folder, n_inner=64)  # weights have d_mlp = 128
    with pytest.raises(ValueError, match=r"c_fc\.weight.*\[32, 128\].*\[32, 64\]"):
        mj.from_pretrained(folder)


def test_error_bad_dtype(gpt2_folder):
    with pytest.raises(ValueError, match="dtype='int8'"):
        mj.from_pretrained(gpt2_folder, dtype="int8")
