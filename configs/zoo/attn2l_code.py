r"""Zoo: 2-layer attention-only LM on standard-library Python code (RoPE, d_model 128, 8 heads).

Context 128 tokens, BPE vocabulary 1,024 trained on the same code. Two stages (the first is
the config's one curriculum phase, `task.phases`; the steps after it use the base windows):

1. steps 0-999, a copying warm-up: each row packs independent 48-token windows of uniformly
   random tokens (behind `mj.document_mask`), each repeating its first m ~ U[4, 24] tokens.
   Over 48 keys the gradient towards a layer-0 previous-token head is strong enough to form
   one within ~1,000 steps; over 128 keys, or on code, it is not (see
   experiments/zoo/README.md: on code from step 0 the previous-token head lands in the
   last layer, where no induction head can read it);
2. steps 1,000-11,999: code. Every training window shows its first m ~ U[16, 64] tokens twice,
   then continues with the code that followed them, so copying stays rewarded.

mechjax run configs/zoo/attn2l_code.py --workdir runs/zoo/attn2l_code
python -m mechjax.zoo export runs/zoo/attn2l_code attn2l_code   # -> mechjax/zoo/weights/
"""

from mechjax.zoo.config import zoo_config


def get_config(arg=None):
    return zoo_config(
        "attn2l_code", arg, steps=12000, lr=1e-3, batch_size=16,
        n_layers=2, d_model=128, n_heads=8, n_ctx=128, vocab_size=1024,
        repeat_frac=1.0,
        # the copying warm-up: packed 48-token windows of random tokens for steps 0-999
        phases=[dict(start=0, end=1000, windows="packed", packed_len=48, packed_source="random")],
    )  # fmt: skip
