r"""Zoo: 4-layer attention-only LM on standard-library Python code (RoPE, d_model 128, 8 heads).

Context 128 tokens, BPE vocabulary 1,024 trained on the same code. Two phases, as in
attn2l_code, with one change:

1. steps 0-999, the copying warm-up (packed 48-token windows of random tokens, each
   repeating its start), with layers 2 and 3 switched off: their attention output is
   zero-ablated by the phase's interventions (`mj.ablate("blocks.2.hook_attn_out")`, likewise
   layer 3, each `.when((step >= 0) & (step < 1000))` in `Task.interventions`), so the model
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
        repeat_frac=1.0,
        # the copying warm-up of attn2l_code, with layers 2 and 3 switched off
        phases=[dict(start=0, end=1000, windows="packed", packed_len=48, packed_source="random",
                     interventions=("blocks.2.hook_attn_out", "blocks.3.hook_attn_out"))],
    )  # fmt: skip
