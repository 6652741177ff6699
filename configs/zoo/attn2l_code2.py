r"""Zoo v2: attn2l_code with docstrings among its training text (Heimersheim & Janiak 2023).

The 2-layer attention-only code model of `attn2l_code.py` (RoPE, d_model 128, 8 heads, context
128) and its two stages (a copying warm-up on packed random-token windows,
then code whose every window repeats its start), with these changes:

- 15% of the training tokens are docstring-completion examples
  (`mechjax.data.tasks.docstring`, split mode) from the task's `train` split only -- def
  headers, docstring openings, `:param` line forms, parameter names, function names and
  description words are held out by hash -- so the card's docstring numbers (`test` split)
  are on templates and names no training text used;
- the docstring task's "wide" name bank (`name_bank="wide"`: 400 parameter names, so the
  train split holds 251 instead of 68). With the v2 list (`:v2_names`, the first shipped
  attn2l_code2) the model learned its 68 training names rather than the copy: train-split
  templates with test names scored 0.07 top-1 (experiments/zoo/README.md, "Docstring: the
  names, not the templates");
- a BPE vocabulary of 4,096 (trained on the code, the docstring examples and every split's
  names): at 1,024 most parameter names are several tokens, so a prompt and its corrupted
  twin (other names) tokenize to different lengths;
- the warm-up's random tokens come from the first 1,024 ids (`packed_vocab`), the number of
  token ids the first code models' warm-up drew from, and it lasts 2,000 steps instead of
  1,000: with the 4,096-token unembedding its phase change comes later. With 1,000 steps
  the model had not begun to copy (training loss 6.92 at step 750, where a uniform guess
  over the 1,023 ids scores ln 1,023 = 6.93; previous-token score 0.05 at step 1,000), and
  its previous-token head then formed in the last layer (0.17 at step 1,500), where no
  induction head can read it. attn2l_code, rerun now with its warm-up at 1,024 tokens, had
  6.83 at step 750, a layer-0 previous-token head of 0.30 at step 1,000 and induction heads
  of 0.83 at step 1,250.

The first attn2l_code stays shipped unchanged (the Hydra heads are built on it).

    mechjax run configs/zoo/attn2l_code2.py --workdir runs/zoo/attn2l_code2
    python -m mechjax.zoo export runs/zoo/attn2l_code2 attn2l_code2
"""

from mechjax.zoo.config import zoo_config


def get_config(arg=None):
    return zoo_config(
        "attn2l_code2", arg, steps=12000, lr=1e-3, batch_size=16,
        n_layers=2, d_model=128, n_heads=8, n_ctx=128, vocab_size=4096,
        repeat_frac=1.0,
        split_data=True, tasks=("docstring",), task_share=0.15, n_per_task=20000,
        # the copying warm-up: packed 48-token windows of random tokens for steps 0-1999
        phases=[dict(start=0, end=2000, windows="packed", packed_len=48, packed_source="random",
                     packed_vocab=1024)],
        task_options={"docstring": {"name_bank": "wide"}},
        variants={"v2_names": dict(task_options={})},
    )  # fmt: skip
