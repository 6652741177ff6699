r"""Zoo: 4-layer attention-only LM on standard-library Python code (RoPE, d_model 128, 4 heads).

The docstring circuit (Heimersheim & Janiak 2023) was found in a 4-layer attention-only code
model; this is our small stand-in.

    mechjax run configs/zoo/attn4l_code.py --workdir runs/zoo/attn4l_code
    python -m mechjax.zoo export runs/zoo/attn4l_code attn4l_code
"""

from mechjax.zoo.config import zoo_config


def get_config(arg=None):
    return zoo_config(
        "attn4l_code", arg, steps=2000, lr=3e-3, batch_size=16,
        n_layers=4, d_model=128, n_heads=4, n_ctx=256, vocab_size=2048,
        repeat_frac=0.25,
    )  # fmt: skip
