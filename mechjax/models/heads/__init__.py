"""Head modules attached to a base model; their sites live under their own prefix.

Draft heads for speculative decoding (`mechjax.models.heads.draft`): `DraftModel` wraps a
base `mj.Transformer` with Medusa, Hydra or Hydra++ heads (sites `draft_heads.{k}.*`,
`draft_heads.prefix.*`), and `draft_tree` drafts a candidate `Tree` (`.tree`) for a
speculative decoder.

    import mechjax as mj
    from mechjax.models import heads as H

    base, base_params, tok = mj.zoo.load("attn2l_code")
    model = H.DraftModel(base, H.DraftConfig.from_variant("hydra", n_heads=4))
    params = H.init_from_base(model, jax.random.key(0), base_params)
    logits, drafts = H.head_logits(model, params, tokens)    # [b, pos, V], [b, pos, K, V]
    _, hidden = H.base_hidden(model, params, tokens)          # [b, pos, d_model]
    tree = H.Tree(((0,), (1,), (0, 0), (0, 0, 0)))
    nodes = H.draft_tree(model, params, hidden[:, -1], logits[:, -1].argmax(-1), tree)
    out = mj.speculative_generate(base, base_params, tokens, 32, tree=tree,
                                  drafter=H.Drafter(model), drafter_params=params)
"""

from mechjax.models.heads.draft import (
    DRAFT_VARIANTS,
    DraftConfig,
    Drafter,
    DraftHead,
    DraftModel,
    accept_length,
    base_hidden,
    base_params,
    draft_loss,
    draft_tree,
    head_accuracy,
    head_logits,
    init_from_base,
)
from mechjax.models.heads.tree import Tree

__all__ = [
    "DRAFT_VARIANTS",
    "DraftConfig",
    "Drafter",
    "DraftHead",
    "DraftModel",
    "Tree",
    "accept_length",
    "base_hidden",
    "base_params",
    "draft_loss",
    "draft_tree",
    "head_accuracy",
    "head_logits",
    "init_from_base",
]
