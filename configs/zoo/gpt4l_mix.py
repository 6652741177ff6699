r"""Zoo: 4-layer GPT-style LM (MLPs, RoPE, d_model 256, 8 heads) on code + every text task.

60% of the training tokens are task examples (IOI, greater-than, docstring, colored objects,
successor, factual recall, arithmetic, multiple choice, needle in a haystack, repeated words),
each `<|endoftext|>` + prompt + answer; the rest is standard-library code. The tasks that need
the most examples get more of them (`task_weights`: colored objects 6x, IOI 5x, arithmetic
4x, needle and greater-than 2x). Arithmetic keeps its operands and results in 0..39, and the
needle hides among 6 filler sentences instead of 12, and greater-than's start years include
YY = 01, the year its corruption uses (`task_options`; the evals use the same).
A quarter of the 256-token windows repeat their first m ~ U[16, 128] tokens, as an aid to
copying. 6,500 steps.

Colored objects is taught by a curriculum. For steps 2,500-4,499 (a phase of `task.phases`
with its own task weights and options), once the previous-token heads have formed, its
examples are recaps ("... and a green cup. Colors: pen red, cup" -> " green",
`form="recap"`) at 24x, about 60% of the task tokens; before and after, they are the question
form the evals use. A model trained on the
question form alone stayed at chance, and curricula that started with recaps at step 0 taught
the recap but not the question (see experiments/zoo/README.md, "Colored objects").

Variants: `:no_curriculum` is the previous shipped model (6,000 steps, colored objects 3x,
no recaps). `:mlp_off_warmup` adds to it the code models' copying warm-up (steps 0-999 on
packed 48-token windows of random tokens below id 1,024) with every MLP and layers 2-3
switched off by the phase's interventions (`mj.ablate(...)`, each
`.when((step >= 0) & (step < 1000))`). It did not teach that model to copy: the
training loss stayed at ln 1,023 (see experiments/zoo/README.md).

    mechjax run configs/zoo/gpt4l_mix.py --workdir runs/zoo/gpt4l_mix
    python -m mechjax.zoo export runs/zoo/gpt4l_mix gpt4l_mix
"""

from mechjax.zoo.config import zoo_config

# the previous shipped model: 6,000 steps, colored objects 3x and only as questions
PREVIOUS = dict(
    steps=6000,
    task_weights={"ioi": 5, "colored_objects": 3, "arithmetic": 4, "needle": 2, "greater_than": 2},
    phases=[],
)  # fmt: skip
# the code models' copying warm-up, with every MLP and layers 2-3 switched off
WARMUP = dict(start=0, end=1000, windows="packed", packed_len=48, packed_source="random",
              packed_vocab=1024, interventions=("blocks.2.hook_attn_out", "blocks.3.hook_attn_out",
                                                "blocks.*.hook_mlp_out"))  # fmt: skip


def get_config(arg=None):
    return zoo_config(
        "gpt4l_mix", arg, steps=6500, lr=2e-3, batch_size=16,
        n_layers=4, d_model=256, n_heads=8, d_mlp=1024, n_ctx=256, vocab_size=4096,
        task_share=0.6, n_per_task=20000, repeat_frac=0.25,
        task_weights={"ioi": 5, "colored_objects": 6, "arithmetic": 4, "needle": 2,
                      "greater_than": 2},
        task_options={"arithmetic": {"max_value": 39}, "needle": {"n_filler": 6},
                      "greater_than": {"min_yy": 1}},
        # colored objects: recaps instead of questions for steps 2,500-4,499
        phases=[dict(start=2500, end=4500, task_weights={"colored_objects": 24},
                     task_options={"colored_objects": {"form": "recap"}})],
        variants={"no_curriculum": PREVIOUS, "mlp_off_warmup": dict(PREVIOUS, phases=[WARMUP])},
    )  # fmt: skip
