"""Weight import: Hugging Face safetensors folders -> `mj.Transformer` params (no torch)."""

from mechjax.io.hf import SUPPORTED_MODEL_TYPES, config_from_hf, from_pretrained, load_tokenizer

__all__ = ["SUPPORTED_MODEL_TYPES", "config_from_hf", "from_pretrained", "load_tokenizer"]
