"""Models: the decoder LMs, the vision and encoder-decoder families, and head modules.

The model protocol
==================

Every model is a flax.linen Module whose `__call__(inputs, hooks, attention_mask)` calls
`hooks(name, x, axes)` at each of its sites. To get `mj.run`, `mj.site_names`, the
interventions and every analysis, it also provides these methods (they read only the
module's config, never its parameters, so they work on an unbound module):

`check_inputs(inputs, attention_mask=None)`
    Host-side validation before tracing: raises ValueError naming what is wrong (shape,
    dtype, token ids outside the vocabulary, a mask that does not fit) and what is valid.
`example_inputs()`
    Small valid inputs (used by `mj.init` and `mj.site_names(model)`).
sites and their axes
    Declared where each site is defined: `hooks(name, x, axes)` with axis names from the
    vocabulary below (`mechjax.models.axes`). `mj.site_axes(model, name)` reads them back;
    two families may use the same suffix with different axes.
`layer_stacks() -> tuple[Stack, ...]`
    The stacks of identical blocks in forward order (`blocks`; `encoder.blocks`,
    `decoder.blocks`), each with its layer count, heads, attention modules and whether it
    has MLPs: analyses enumerate layers, heads and residual sites from these.
`resume_sites(stack, layer) -> tuple[str, ...]` and
`resume(inputs, state, hooks, attention_mask, *, stack, layer, positions=None)`
    A partial forward: given the values of `resume_sites(stack, layer)` from a run
    (`state`, a dict site -> array; always includes `{stack}.{layer}.hook_resid_pre`), and
    the inputs (for parts that are cheap to recompute), run everything from that layer on
    and return the output. Sweeps that patch inside layer L compute the layers before L
    once. `positions` (static tuple) restricts a per-position readout to those positions.
`readout() -> Readout` and `readout_weights(params) -> (W [d_model, n_out], b) | None`
    The final norm, pooling and linear map from the last stack to the output, for direct
    logit attribution (unembedding of an LM, class head of a ViT).

Head modules (class heads, draft heads, task-query decoders) are submodules whose sites
live under their own prefix (`draft_heads.{k}.*`); they call `hooks` with axes like any
block. No analysis names a family: a new architecture gets the toolkit by implementing
the methods above (see `mj.Transformer`, `mj.ViT`, `mj.EncoderDecoder`).

The axis vocabulary (batch, pos, q_pos, k_pos, head, kv_head, d_model, d_head, d_mlp,
d_vocab, class, one; what each means, e.g. a ViT's `pos`) is written once, in
`mechjax.models.axes`.
"""

from mechjax.models import axes
from mechjax.models.config import VARIANTS, TransformerConfig
from mechjax.models.encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from mechjax.models.protocol import HookedModel, Readout, Stack, is_model
from mechjax.models.transformer import Transformer
from mechjax.models.vit import ViT, ViTConfig

__all__ = [
    "VARIANTS",
    "EncoderDecoder",
    "EncoderDecoderConfig",
    "HookedModel",
    "Readout",
    "Stack",
    "Transformer",
    "TransformerConfig",
    "ViT",
    "ViTConfig",
    "axes",
    "is_model",
]
