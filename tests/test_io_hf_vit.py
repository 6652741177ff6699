"""`mj.from_pretrained` on tiny random Hugging Face ViTs built and saved locally.

Parity (fp32, max abs diff <= 1e-4): logits (ViTForImageClassification), the final-normed
stream (ViTModel's last_hidden_state), every layer's hidden state and attention pattern.
Cases: square and non-square images, 1 and 3 channels, qkv_bias off, tanh-gelu, eps.
Nothing is downloaded.
"""

import json

import jax
import numpy as np
import pytest

import mechjax as mj

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors.numpy")

TOL = 1e-4


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
    # GPUs default to TF32 matmuls (~1e-3 error), which would swamp the 1e-4 comparison.
    with jax.default_matmul_precision("highest"):
        yield


def _randomize(model, seed):
    """Large random weights (HF's 0.02 init would make the models nearly constant)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "layernorm" in name:
                p.copy_(1.0 + 0.2 * noise if name.endswith("weight") else 0.2 * noise)
            elif p.ndim == 1:
                p.copy_(0.2 * noise)
            elif name.endswith(("cls_token", "position_embeddings")):
                p.copy_(0.5 * noise)
            else:
                fan_in = p[0].numel()
                p.copy_(noise / fan_in**0.5 * 1.5)
    return model.eval()


def _config(**kw):
    cfg = dict(
        image_size=16,
        patch_size=4,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        num_labels=5,
        attn_implementation="eager",  # output_attentions needs the eager attention
    )
    cfg.update(kw)
    return transformers.ViTConfig(**cfg)


CASES = {
    "classifier": lambda: transformers.ViTForImageClassification(_config()),
    "classifier_nonsquare_gray_noqkvbias": lambda: transformers.ViTForImageClassification(
        _config(
            image_size=(12, 20),
            num_channels=1,
            qkv_bias=False,
            hidden_act="gelu_new",
            layer_norm_eps=1e-6,
            num_labels=3,
        )
    ),
    "base_model_with_pooler": lambda: transformers.ViTModel(_config()),
}


def _saved(tmp_path_factory, case, seed=0):
    hf_model = _randomize(CASES[case](), seed)
    folder = tmp_path_factory.mktemp(case)
    hf_model.save_pretrained(folder, safe_serialization=True)
    return hf_model, folder


def _images(cfg, seed=0, batch=3):
    h, w = cfg.image_hw
    return np.random.default_rng(seed).normal(size=(batch, h, w, cfg.n_channels)).astype(np.float32)


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))))


@pytest.mark.parametrize("case", list(CASES))
def test_parity_outputs_hidden_states_and_patterns(tmp_path_factory, case):
    hf_model, folder = _saved(tmp_path_factory, case)
    model, params = mj.from_pretrained(folder)
    cfg = model.cfg
    assert isinstance(model, mj.ViT) and cfg.name == type(hf_model).__name__
    images = _images(cfg)
    with torch.no_grad():
        out = hf_model(
            torch.tensor(images.transpose(0, 3, 1, 2)),  # HF: pixel_values [b, c, h, w]
            output_hidden_states=True,
            output_attentions=True,
        )
    L = cfg.n_layers
    got, cache = mj.run(
        model,
        params,
        images,
        cache=(
            "blocks.*.hook_resid_pre",
            f"blocks.{L - 1}.hook_resid_post",
            "blocks.*.attn.hook_pattern",
        ),
    )
    if cfg.n_classes:
        ref = out.logits.numpy()
        assert got.shape == (3, cfg.n_classes)
    else:  # ViTModel: mj.run returns last_hidden_state (the pooler is not imported)
        ref = out.last_hidden_state.numpy()
        assert got.shape == (3, cfg.n_pos(), cfg.d_model)
    assert float(np.std(ref)) > 0.3  # varied outputs, or the comparison proves nothing
    assert _max_diff(got, ref) <= TOL
    hidden = [h.numpy() for h in out.hidden_states]
    assert len(hidden) == L + 1
    for layer in range(L):  # hidden_states[i] is the input of block i
        assert _max_diff(cache[f"blocks.{layer}.hook_resid_pre"], hidden[layer]) <= TOL, layer
    assert _max_diff(cache[f"blocks.{L - 1}.hook_resid_post"], hidden[L]) <= TOL
    for layer in range(L):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        assert pattern.shape == (3, cfg.n_heads, cfg.n_pos(), cfg.n_pos())
        assert _max_diff(pattern, out.attentions[layer].numpy()) <= TOL, layer


def test_config_and_layouts(tmp_path_factory):
    hf_model, folder = _saved(tmp_path_factory, "classifier_nonsquare_gray_noqkvbias")
    model, params = mj.from_pretrained(folder)
    c = model.cfg
    assert (c.image_hw, c.patch_size, c.n_channels, c.n_classes) == ((12, 20), 4, 1, 3)
    assert (c.act_fn, c.eps, c.pool, c.class_token) == ("gelu_new", 1e-6, "cls", True)
    p = params["params"]
    assert p["W_patch"].shape == (4 * 4 * 1, 32) and p["W_pos"].shape == (1 + 3 * 5, 32)
    assert float(np.abs(p["blocks_0"]["attn"]["b_Q"]).max()) == 0.0  # qkv_bias=False
    # W_patch rows are the patch pixels in (row, column, channel) order.
    conv = hf_model.vit.embeddings.patch_embeddings.projection.weight.detach().numpy()
    np.testing.assert_array_equal(p["W_patch"].reshape(4, 4, 1, 32), conv.transpose(2, 3, 1, 0))
    _, folder = _saved(tmp_path_factory, "base_model_with_pooler")
    model, params = mj.from_pretrained(folder, return_tokenizer=False)
    assert model.cfg.n_classes == 0 and "W_U" not in params["params"]
    assert model.readout_weights(params) is None
    assert mj.from_pretrained(folder, return_tokenizer=True)[2] is None


def test_flexivit_on_imported_weights(tmp_path_factory):
    """An imported ViT runs at another patch size with the same params (PI-resize)."""
    _, folder = _saved(tmp_path_factory, "classifier")
    model, params = mj.from_pretrained(folder)
    logits, cache = mj.run(
        model.with_patch_size(2), params, _images(model.cfg), cache="blocks.0.attn.hook_pattern"
    )
    assert logits.shape == (3, 5) and np.isfinite(np.asarray(logits)).all()
    assert cache["blocks.0.attn.hook_pattern"].shape == (3, 4, 1 + 64, 1 + 64)


def test_unsupported_and_mismatched(tmp_path_factory):
    _, folder = _saved(tmp_path_factory, "classifier")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**cfg, "architectures": ["ViTForMaskedImageModeling"]})
    )
    with pytest.raises(NotImplementedError, match="ViTForMaskedImageModeling"):
        mj.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "hidden_size": 64}))
    with pytest.raises(ValueError, match="does not match|shape"):
        mj.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "architectures": ["ViTModel"]}))
    with pytest.raises(ValueError, match="classifier"):  # the head's tensors would be unused
        mj.from_pretrained(folder)
