r"""Zoo: 4-layer GPT-style LM (MLPs, RoPE, d_model 256, 8 heads) on code + every text task.

Half the training tokens are standard-library code, half are task examples (IOI,
greater-than, docstring, colored objects, successor, factual recall, arithmetic, multiple
choice, needle in a haystack, repeated words), each `<|endoftext|>` + prompt + answer.

    mechjax run configs/zoo/gpt4l_mix.py --workdir runs/zoo/gpt4l_mix
    python -m mechjax.zoo export runs/zoo/gpt4l_mix gpt4l_mix
"""

from mechjax.zoo.config import zoo_config


def get_config(arg=None):
    return zoo_config(
        "gpt4l_mix", arg, steps=1500, lr=2e-3, batch_size=16,
        n_layers=4, d_model=256, n_heads=8, d_mlp=1024, n_ctx=256, vocab_size=4096,
        task_share=0.5, n_per_task=20000,
    )  # fmt: skip
