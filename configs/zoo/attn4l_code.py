r"""Zoo: 4-layer attention-only LM on standard-library Python code (RoPE, d_model 128, 8 heads).

Context 128 tokens, BPE vocabulary 1,024 trained on the same code. Every training window
shows its first m ~ U[16, 64] tokens twice, then continues with the code that followed them:
natural text teaches copying (induction) only after billions of tokens, and this run sees
~6M, so the repeats supply the signal.

The docstring circuit (Heimersheim & Janiak 2023) was found in a 4-layer attention-only code
model; this is our small stand-in.

    mechjax run configs/zoo/attn4l_code.py --workdir runs/zoo/attn4l_code
    python -m mechjax.zoo export runs/zoo/attn4l_code attn4l_code
"""

from mechjax.zoo.config import zoo_config


def get_config(arg=None):
    return zoo_config(
        "attn4l_code", arg, steps=3000, lr=1e-3, batch_size=16,
        n_layers=4, d_model=128, n_heads=8, n_ctx=128, vocab_size=1024,
        repeat_frac=1.0,
    )  # fmt: skip
