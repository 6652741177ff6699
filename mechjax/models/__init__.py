"""Models: the transformer family and the heads of the seed architectures.

Axis vocabulary, used in every shape comment (see also `mechjax.hooks`):
batch, pos (q_pos / k_pos in attention patterns), head, kv_head, d_model,
d_head, d_mlp, d_vocab.
"""

from mechjax.models.config import VARIANTS, TransformerConfig
from mechjax.models.transformer import Transformer

__all__ = ["VARIANTS", "Transformer", "TransformerConfig"]
