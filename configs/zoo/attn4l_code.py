r"""Zoo: 4-layer attention-only LM on standard-library Python code (RoPE, d_model 128, 8 heads).

Context 128 tokens, BPE vocabulary 1,024 trained on the same code. Two phases, as in
attn2l_code, with one change:

1. steps 0-999, the copying warm-up (packed 48-token windows of random tokens, each
   repeating its start), with layers 2 and 3 switched off: their attention output is
   zero-ablated by `mj.ablate("blocks.{2,3}.hook_attn_out").when(step < 1000)`, so the model
   is a 2-layer one while it learns to copy. With all four layers on, the previous-token head
   formed in layer 2 and no induction head followed (experiments/zoo/README.md);
2. steps 1,000-7,999: code, every window repeating its first m ~ U[16, 64] tokens once.

The docstring circuit (Heimersheim & Janiak 2023) was found in a 4-layer attention-only code
model; this is our small stand-in.

    mechjax run configs/zoo/attn4l_code.py --workdir runs/zoo/attn4l_code
    python -m mechjax.zoo export runs/zoo/attn4l_code attn4l_code
"""

from mechjax.zoo.config import zoo_config


def get_config(arg=None):
    return zoo_config(
        "attn4l_code", arg, steps=8000, lr=1e-3, batch_size=16,
        n_layers=4, d_model=128, n_heads=8, n_ctx=128, vocab_size=1024,
        repeat_frac=1.0, short_len=48, short_steps=1000, short_source="random",
        warmup_off_layers=(2, 3),
    )  # fmt: skip
