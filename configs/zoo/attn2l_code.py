r"""Zoo: 2-layer attention-only LM on standard-library Python code (RoPE, d_model 128, 4 heads).

mechjax run configs/zoo/attn2l_code.py --workdir runs/zoo/attn2l_code
python -m mechjax.zoo export runs/zoo/attn2l_code attn2l_code   # -> mechjax/zoo/weights/
"""

from mechjax.zoo.config import zoo_config


def get_config(arg=None):
    return zoo_config(
        "attn2l_code", arg, steps=2000, lr=3e-3, batch_size=16,
        n_layers=2, d_model=128, n_heads=4, n_ctx=256, vocab_size=2048,
        repeat_frac=0.25,
    )  # fmt: skip
