r"""Zoo: 4-layer GPT-style LM (MLPs, RoPE, d_model 256, 8 heads) on code + every text task.

Half the training tokens are standard-library code, half are task examples (IOI,
greater-than, docstring, colored objects, successor, factual recall, arithmetic, multiple
choice, needle in a haystack, repeated words), each `<|endoftext|>` + prompt + answer.
A quarter of the 256-token windows repeat their first m ~ U[16, 128] tokens, as an aid to
copying. (The code models' random-token warm-up did not help this model: see
experiments/zoo/README.md.)

    mechjax run configs/zoo/gpt4l_mix.py --workdir runs/zoo/gpt4l_mix
    python -m mechjax.zoo export runs/zoo/gpt4l_mix gpt4l_mix
"""

from mechjax.zoo.config import zoo_config


def get_config(arg=None):
    return zoo_config(
        "gpt4l_mix", arg, steps=3500, lr=2e-3, batch_size=16,
        n_layers=4, d_model=256, n_heads=8, d_mlp=1024, n_ctx=256, vocab_size=4096,
        task_share=0.5, n_per_task=20000, repeat_frac=0.25,
    )  # fmt: skip
