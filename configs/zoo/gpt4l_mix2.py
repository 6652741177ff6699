r"""Zoo v2: 4-layer GPT-style LM (MLPs, RoPE, d_model 256, 8 heads, context 512) on code + every
text task, trained on the tasks' held-out splits (`task.split_data`).

Every task text comes from the task's "train" split (`mechjax.data.tasks.splits`): its
template pieces (from a compositional grammar), names / entities and items are a hash-chosen
60% of each list, so the evaluations can use templates, names and items that training never
showed ("val" during training, "test" in the card). Test-split names and objects appear in
training only inside word lists ("Words: Mary Tom ..."), so they are single tokens with
trained embeddings without any test prompt entering training (`zoo.data.lexicon_texts`).
IOI and docstring draw from their "wide" name banks (`name_bank="wide"`: 400 names each
instead of about 100, so the train split holds about 250): with the v2 lists' 66-68 train
names the code model learned the names instead of the copy (experiments/zoo/README.md,
"Docstring: the names, not the templates"). The vocabulary is 6,144: at 4,096 the 1,523
lexicon words no longer all merge (73 of 84 IOI val names and 32 of 85 docstring test names
stayed in pieces), so their prompts could not be encoded.

70% of the training tokens are task examples (`<|endoftext|>` + prompt + answer [+ the
rest of a multi-token answer]), the rest standard-library code. Task weights: IOI 10x,
colored objects 6x, arithmetic 4x, multiple choice 3x, greater-than and factual 2x. The
needle hides a 3-number value among 18 filler sentences (about 270 tokens, 2 distractor
needles), so the context is 512 tokens; batches are 8 rows of 512 (the same 4,096 tokens per
step as the first mixture model). A quarter of the windows repeat their first
m ~ U[4, 256] tokens, so induction has to work at every distance the context allows.

Colored objects: recaps for steps 1,000-1,999 (the first mixture model's curriculum, moved
earlier for the shorter run). 4,000 steps (16.4M tokens), where a step of 8 x 512 tokens
takes about 1.45 s alone on this 2-core CPU.

Documents stay apart (`doc_mask=True`): attention and the loss stop at every
`<|endoftext|>`, so each task example is learned alone, as it is evaluated, and most
attention spans are a few dozen tokens instead of 512.

No recipe here has given this model an induction head yet; three runs, all with the v2
name lists and a 3,000-step schedule (`:v2_names` is that default), were stopped:
- `:no_doc_mask` (one causal span per 512-token window), stopped at step 1,250: best
  induction score 0.01-0.04 on repeated random tokens, IOI 0.00 on val;
- `:v2_names` (documents apart), stopped at step 1,500: best induction score 0.02, IOI
  0.25 on val with a logit difference of -1.0 (the subject preferred);
- `:warmup` (the code models' copying warm-up first: steps 0-999 packed 48-token windows
  of random tokens repeating their start, layers 2-3 attention and MLP zero-ablated; then
  the mixture to step 4,000), stopped at step 750: the training loss on the warm-up windows
  stayed at ln 4,096 (8.37, 8.32, 8.32 at steps 250-750), as in the first mixture model's
  warm-up attempts (experiments/zoo/README.md, "The copying warm-up does not work for this
  model").
The first mixture model (context 256, no doc mask) formed its induction head between steps
2,500 and 3,500. Induction probes at this width (experiments/zoo/README.md, "Which warm-ups
can copy?") formed no induction head in 2,400 random-token steps with MLPs, at lr 2e-3, or at
d_model 256, each on its own; only the code models' setting (d_model 128, attention only,
lr 1e-3) did, so the warm-up is not the next lever for this model.

Not run to the end yet: `:two_layer_start` (layers 2-3 off for steps 0-999 on the mixture
itself; its previous-token head formed in layer 1 by step 1,000, then the run was lost) and
`:narrow_copy` (the code models' width and learning rate with a copying warm-up on every
split's name tokens, steps 0-2,499, every MLP and layers 2-3 off). The IOI-only probe of the
latter recipe (configs/zoo/probe_ioi_names.py:copy_start) answered held-out names from a
prior over the training names (experiments/zoo/README.md, "IOI: the names, not the
templates").

    mechjax run configs/zoo/gpt4l_mix2.py --workdir runs/zoo/gpt4l_mix2
    python -m mechjax.zoo export runs/zoo/gpt4l_mix2 gpt4l_mix2
"""

from mechjax.zoo.config import zoo_config

# steps 0-999: the copying warm-up of the code models (packed 48-token windows of random
# tokens, each repeating its start), with layers 2 and 3 switched off (attention and MLP
# outputs zero-ablated), so that the model is a 2-layer one while it learns to copy
WARMUP = dict(
    start=0,
    end=1000,
    windows="packed",
    packed_len=48,
    packed_source="random",
    interventions=tuple(f"blocks.{i}.hook_{s}_out" for i in (2, 3) for s in ("attn", "mlp")),
)
# steps 0-999 on the mixture itself (full windows) with layers 2 and 3 switched off, so that
# the previous-token head has to form in layer 0 or 1, where a later head can compose with
# it (the default run's formed in layer 2, as in the code models' failed warm-ups)
TWO_LAYER_START = dict(
    start=0,
    end=1000,
    interventions=tuple(f"blocks.{i}.hook_{s}_out" for i in (2, 3) for s in ("attn", "mlp")),
)
# the IOI and docstring name lists of the runs before the wide name banks
V2_NAMES = dict(vocab_size=4096, task_options={"needle": {"n_filler": 18}})
RECAP = dict(
    task_weights={"colored_objects": 24}, task_options={"colored_objects": {"form": "recap"}}
)

# the code models' width and learning rate, with a copying warm-up on random sequences of
# every split's name tokens (zoo.data.copy_pool_ids) for steps 0-2,499, every MLP and layers
# 2-3 switched off: the 2-layer attention-only setting, the only one where the induction
# probes formed a head (experiments/zoo/README.md, "Which warm-ups can copy?")
NAME_COPY_START = dict(
    start=0, end=2500, windows="packed", packed_len=48, packed_source="names",
    interventions=tuple(f"blocks.{i}.hook_mlp_out" for i in range(4))
    + ("blocks.2.hook_attn_out", "blocks.3.hook_attn_out"),
)  # fmt: skip
NARROW = dict(
    d_model=128, d_mlp=512, lr=1e-3, steps=6500,
    phases=[NAME_COPY_START, dict(RECAP, start=2500, end=3500)],
)  # fmt: skip


def get_config(arg=None):
    return zoo_config(
        "gpt4l_mix2", arg, steps=4000, lr=2e-3, batch_size=8,
        n_layers=4, d_model=256, n_heads=8, d_mlp=1024, n_ctx=512, vocab_size=6144,
        split_data=True, doc_mask=True, task_share=0.7, n_per_task=20000, repeat_frac=0.25, repeat_min=4,
        task_weights={"ioi": 10, "colored_objects": 6, "arithmetic": 4, "multiple_choice": 3,
                      "greater_than": 2, "factual": 2},
        task_options={"needle": {"n_filler": 18}, "ioi": {"name_bank": "wide"},
                      "docstring": {"name_bank": "wide"}},
        phases=[dict(RECAP, start=1000, end=2000)],
        variants={
            "warmup": dict(V2_NAMES, phases=[WARMUP, dict(RECAP, start=2000, end=3000)]),
            "no_doc_mask": dict(V2_NAMES, steps=3000, doc_mask=False),
            "v2_names": dict(V2_NAMES, steps=3000),
            "two_layer_start": dict(phases=[TWO_LAYER_START, dict(RECAP, start=1000, end=2000)]),
            "narrow_copy": NARROW,
        },
    )  # fmt: skip
