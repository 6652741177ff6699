r"""Zoo v2: attn2l_code with docstrings among its training text (Heimersheim & Janiak 2023).

The 2-layer attention-only code model of `attn2l_code.py` (RoPE, d_model 128, 8 heads, context
128, BPE 1,024), the same two stages (the copying warm-up on packed random-token windows for
steps 0-999, then code whose every window repeats its start), with one change: 15% of the
training tokens are docstring-completion examples (`mechjax.data.tasks.docstring`, split
mode) from the task's `train` split only -- def headers, docstring openings, `:param` line
forms, parameter names, function names and description words held out by hash -- so the
card's docstring numbers (`test` split) are on templates and names no training text used.
The first attn2l_code stays shipped unchanged (the Hydra heads are built on it).

    mechjax run configs/zoo/attn2l_code2.py --workdir runs/zoo/attn2l_code2
    python -m mechjax.zoo export runs/zoo/attn2l_code2 attn2l_code2
"""

from mechjax.zoo.config import zoo_config


def get_config(arg=None):
    return zoo_config(
        "attn2l_code2", arg, steps=12000, lr=1e-3, batch_size=16,
        n_layers=2, d_model=128, n_heads=8, n_ctx=128, vocab_size=1024,
        repeat_frac=1.0,
        split_data=True, tasks=("docstring",), task_share=0.15, n_per_task=20000,
        # the copying warm-up: packed 48-token windows of random tokens for steps 0-999
        phases=[dict(start=0, end=1000, windows="packed", packed_len=48, packed_source="random")],
    )  # fmt: skip
