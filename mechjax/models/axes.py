"""The axis vocabulary, written once: every site declares its axes with these names.

    batch    independent examples (sequences, images)
    pos      position in the stream: tokens of a sequence; for a ViT the class token (if
             any) then the patches in row-major order (row 0 left to right, then row 1 ...);
             for learned-query decoders, the query slots
    q_pos    the query position of an attention pattern / score
    k_pos    its key position (for cross-attention: positions of the encoder output)
    head     query heads
    kv_head  key/value heads (fewer than `head` under grouped-query attention)
    d_model  residual stream width
    d_head   per-head width of q, k, v, z
    d_mlp    MLP hidden width (the "neurons")
    d_vocab  output vocabulary of a language model
    class    output classes of a class head
    one      a kept singleton axis (e.g. a norm's scale)

The tuples below are the shapes of the standard sites; modules pass them to
`hooks(name, x, axes)` where the site is defined, and shape comments use the same words.
"""

RESID = ("batch", "pos", "d_model")  # embeddings, resid_pre/mid/post, attn_out, mlp_out
Q = ("batch", "pos", "head", "d_head")  # hook_q, hook_rot_q, hook_z
KV = ("batch", "pos", "kv_head", "d_head")  # hook_k, hook_v, hook_rot_k
Z = Q
PATTERN = ("batch", "head", "q_pos", "k_pos")  # hook_attn_scores, hook_pattern
RESULT = ("batch", "pos", "head", "d_model")  # hook_result: per-head output
NEURONS = ("batch", "pos", "d_mlp")  # mlp.hook_pre / hook_pre_linear / hook_post
SCALE = ("batch", "pos", "one")  # norm hook_scale
LOGITS = ("batch", "pos", "d_vocab")  # a language model's hook_logits
CLASS_LOGITS = ("batch", "class")  # a class head's hook_logits
POOLED = ("batch", "d_model")  # a pooled representation (class token or mean)

# Which axes a selection addresses (interventions' heads= / positions=) and a sweep index.
HEAD_AXES = ("head", "kv_head")
POS_AXES = ("pos", "q_pos")
