"""mechjax: mechanistic interpretability in JAX/Flax.

import mechjax as mj
model = mj.Transformer(mj.TransformerConfig.from_variant("gpt2-tiny"))
params = mj.init(model, jax.random.key(0))
logits, cache = mj.run(model, params, tokens, cache="blocks.*.attn.hook_pattern",
                       interventions=[mj.ablate("blocks.0.attn.hook_z", heads=[1])])
"""

from mechjax import edit, hooks, zoo
from mechjax.analysis import metrics, patching
from mechjax.generate import generate
from mechjax.interventions import (
    Intervention,
    ablate,
    clamp,
    from_batch,
    hook,
    patch,
    register_op,
    steer,
    two_pass,
)
from mechjax.io import from_pretrained, load_tokenizer
from mechjax.models import (
    VARIANTS,
    EncoderDecoder,
    EncoderDecoderConfig,
    Transformer,
    TransformerConfig,
    ViT,
    ViTConfig,
)
from mechjax.models.stacking import stack_layers, unstack_layers
from mechjax.run import document_mask, init, run, site_axes, site_names, site_shapes
from mechjax.speculative import speculative_generate
from mechjax.train.load import load_run

__version__ = "0.1.0"

__all__ = [
    "VARIANTS",
    "EncoderDecoder",
    "EncoderDecoderConfig",
    "Intervention",
    "Transformer",
    "TransformerConfig",
    "ViT",
    "ViTConfig",
    "ablate",
    "clamp",
    "document_mask",
    "from_pretrained",
    "edit",
    "from_batch",
    "generate",
    "hook",
    "hooks",
    "metrics",
    "patching",
    "init",
    "load_run",
    "load_tokenizer",
    "patch",
    "register_op",
    "run",
    "site_axes",
    "site_names",
    "site_shapes",
    "speculative_generate",
    "stack_layers",
    "steer",
    "two_pass",
    "unstack_layers",
    "zoo",
]
