r"""Zoo v2: 4-layer GPT-style LM (MLPs, RoPE, d_model 256, 8 heads, context 512) on code + every
text task, trained on the tasks' held-out splits (`task.split_data`).

Every task text comes from the task's "train" split (`mechjax.data.tasks.splits`): its
template pieces (from a compositional grammar), names / entities and items are a hash-chosen
60% of each list, so the evaluations can use templates, names and items that training never
showed ("val" during training, "test" in the card). Test-split names and objects appear in
training only inside word lists ("Words: Mary Tom ..."), so they are single tokens with
trained embeddings without any test prompt entering training (`zoo.data.lexicon_texts`).

70% of the training tokens are task examples (`<|endoftext|>` + prompt + answer [+ the
rest of a multi-token answer]), the rest standard-library code. Task weights: IOI 10x,
colored objects 6x, arithmetic 4x, multiple choice 3x, greater-than and factual 2x. The
needle hides a 3-number value among 18 filler sentences (about 270 tokens, 2 distractor
needles), so the context is 512 tokens; batches are 8 rows of 512 (the same 4,096 tokens per
step as the first mixture model). A quarter of the windows repeat their first
m ~ U[4, 256] tokens, so induction has to work at every distance the context allows.

Colored objects: recaps for steps 1,000-1,999 (the first mixture model's curriculum, moved
earlier for the shorter run). 3,000 steps (12.3M tokens): about 2 hours on this 2-core CPU,
where a step of 8 x 512 tokens takes about 2.2 s.

Documents stay apart (`doc_mask=True`): attention and the loss stop at every
`<|endoftext|>`, so each task example is learned alone, as it is evaluated, and most
attention spans are a few dozen tokens instead of 512. The first run of this config without
it (`:no_doc_mask`) was stopped at step 1,250: no induction head had formed (best induction
score 0.01 on repeated random tokens) and IOI was at 0.00 on val, while the first mixture
model (context 256) formed its induction head between steps 2,500 and 3,500. Short
attention spans are what made induction heads form in the code models
(experiments/zoo/README.md, "How we got induction heads to form").

    mechjax run configs/zoo/gpt4l_mix2.py --workdir runs/zoo/gpt4l_mix2
    python -m mechjax.zoo export runs/zoo/gpt4l_mix2 gpt4l_mix2
"""

from mechjax.zoo.config import zoo_config


def get_config(arg=None):
    return zoo_config(
        "gpt4l_mix2", arg, steps=3000, lr=2e-3, batch_size=8,
        n_layers=4, d_model=256, n_heads=8, d_mlp=1024, n_ctx=512, vocab_size=4096,
        split_data=True, doc_mask=True, task_share=0.7, n_per_task=20000, repeat_frac=0.25, repeat_min=4,
        task_weights={"ioi": 10, "colored_objects": 6, "arithmetic": 4, "multiple_choice": 3,
                      "greater_than": 2, "factual": 2},
        task_options={"needle": {"n_filler": 18}},
        phases=[dict(start=1000, end=2000, task_weights={"colored_objects": 24},
                     task_options={"colored_objects": {"form": "recap"}})],
        variants={"no_doc_mask": dict(doc_mask=False)},
    )  # fmt: skip
