r"""Zoo v2: attn4l_code with docstrings among its training text (Heimersheim & Janiak 2023).

The 4-layer attention-only code model of `attn4l_code.py` (the copying warm-up with layers 2
and 3 switched off, then code), with the changes of `attn2l_code2.py`: 15% of the training
tokens are docstring-completion examples from the task's `train` split, the vocabulary has
4,096 tokens and the warm-up draws its random tokens from the first 1,024 ids for 2,000
steps. Heimersheim &
Janiak found the docstring circuit in a 4-layer attention-only model; this is our small
stand-in, evaluated on held-out templates and names.

The docstring task draws from its "wide" name bank (`name_bank="wide"`, 251 train names;
see attn2l_code2.py); `:v2_names` is the run below, with the v2 list's 68 train names.

Trained once with v2 names (8,000 steps, 55 min): the induction circuit formed (layer-0 previous-token
head 0.98, layer-1 induction heads 0.88), docstring completion did not (top-1 0.00 on 64 val
prompts, logit difference -1.15); not shipped (experiments/zoo/README.md, "Zoo v2 code
models").

    mechjax run configs/zoo/attn4l_code2.py --workdir runs/zoo/attn4l_code2
    python -m mechjax.zoo export runs/zoo/attn4l_code2 attn4l_code2
"""

from mechjax.zoo.config import zoo_config


def get_config(arg=None):
    return zoo_config(
        "attn4l_code2", arg, steps=8000, lr=1e-3, batch_size=16,
        n_layers=4, d_model=128, n_heads=8, n_ctx=128, vocab_size=4096,
        repeat_frac=1.0,
        split_data=True, tasks=("docstring",), task_share=0.15, n_per_task=20000,
        # the copying warm-up of attn2l_code2 (steps 0-1999), with layers 2 and 3 switched off
        phases=[dict(start=0, end=2000, windows="packed", packed_len=48, packed_source="random",
                     packed_vocab=1024,
                     interventions=("blocks.2.hook_attn_out", "blocks.3.hook_attn_out"))],
        task_options={"docstring": {"name_bank": "wide"}},
        variants={"v2_names": dict(task_options={})},
    )  # fmt: skip
