r"""Zoo probe: does IOI generalise to names the training sentences never held?

gpt4l_mix2's architecture (4 layers, MLPs, d_model 256, 8 heads, lr 2e-3) on IOI alone (70%
of the tokens; the rest standard-library code), from the "train" split with the wide name
bank (250 training names), in 128-token windows of 32 rows (the same 4,096 tokens per step),
1,000 steps. Evaluate the checkpoints with held-out kinds one at a time:

    mechjax run configs/zoo/probe_ioi_names.py --workdir runs/probe/ioi_only
    python -m mechjax.zoo factors runs/probe/ioi_only --task ioi --n 128

Variants, each one change against the names failure (experiments/zoo/README.md, "IOI: the
names, not the templates"):
- `:tied`: tied embeddings (logits = x @ W_E.T), so moving a name's embedding raises that
  name's logit for every name alike;
- `:kinds`: tied, and the lexicon as one kind per document ("Names: ...") in 200 copies
  instead of 8 mixed-word ones, so held-out names share contexts with the training names;
- `:slots`: in half of the IOI documents at every step, the names become random word tokens
  (`task.name_slots`), so a per-name route cannot solve those;
- `:all_slots`: every IOI document's names become random word tokens;
- `:narrow`: the default at `:copy_start`'s width (d_model 128, d_mlp 512), 1,500 steps,
  no warm-up: is the width or the warm-up what costs the held-out templates?
- `:copy_start`: a narrower model (d_model 128, d_mlp 512) that first learns to
  copy: steps 0-2,499 are the code models' warm-up (packed 48-token windows of random tokens
  repeating their start) with every MLP and layers 2-3 switched off, so it is the 2-layer
  attention-only setting that forms induction heads; the random tokens come from the first
  2,720 ids, which hold every split's IOI names (ids 622-2,705), so the copy is learned for
  all of them alike in random sequences, never in an IOI sentence. Then IOI to step 4,000.
- `:copy_slots`: `:copy_start` with the warm-up to step 3,000, then IOI to step 5,000 with
  every IOI name a random word token (`:all_slots`): its held-out names were answered from a
  prior over the training names, which this takes away, so that only a copy answers;
- `:copy_keep`: `:copy_slots` with a quarter of the rows still the warm-up's name windows
  after step 3,000 (`packed_rows=0.25`), so that the copy stays trained beside IOI;
- `:copy_beside`: no warm-up; those copy rows beside IOI (every name slotted) from step 0
  with every layer on, 3,000 steps: does the copy learned beside IOI keep the templates?
  (It kept them, but formed no copying head and failed every held-out name.)
- `:copy_names`: `:copy_slots` with the warm-up's random tokens drawn from the one-token
  names of every split only (`packed_source="names"`), not from every id below 2,720: the
  frame, setting and action words of held-out templates are then never copy targets, as in
  `:narrow`, where they keep the templates. (Its 400-token pool formed no induction head by
  step 3,000: stopped there.)
- `:ioi_first`: `:narrow`'s IOI with the training names for steps 0-1,499 (a phase with
  `name_slot_frac=0`), then `:copy_slots`' warm-up (random tokens below id 2,720) to step
  3,499, then IOI with every name slotted to step 5,000: learn the templates first, then the
  copy. (The warm-up formed a previous-token head but no induction head by
  step 3,500: stopped there.)
- `:copy_tw`, `:copy_caps_tw` (and `_half`, `_wide`, `_long`), `:copy_real_tw`: `:copy_slots`
  with `task.lexicon_templates` (every split's template words listed, so the tokenizer has
  held-out wording as tokens; the names then take ids 622-2,777, so the warm-up draws from
  the first 2,800 ids), `caps` with the slot substitutes drawn from capitalised word tokens
  (`name_slot_pool="capitalized"`), `half` with half the names slotted, `real` with none.
  `:copy_caps_tw` formed no induction head by step 3,000 (best 0.06 on repeated tokens below
  2,800); `:copy_caps_tw_slow` is it at lr 1e-3, the induction probe G's learning rate.
- `:noise`: `:copy_caps_tw_slow` with `task.word_noise=0.3`: in training every other word of
  an IOI document (not a name) becomes a random lowercase word token with probability 0.3
  at every step (never a held-out template word, name or entity), so the words around the
  names stop telling which template it is and only the names' pattern (which one repeats)
  answers: against the held-out frames where `:copy_caps_tw_slow` breaks.
Every variant but `_slow` and `:noise` trains at lr 2e-3 (until 2026-12-05 a variant's `lr=1e-3` was
silently dropped; the records are at 2e-3, experiments/zoo/README.md).
`steps=N` as in every zoo config. Two continuations of `:copy_slots` from its step-3,000
checkpoint ran as branches (`--branch-from RUN:3000` with `--config.schedule=constant`, or
with `--config.task.name_slot_frac=0.5`); neither kept the held-out templates.
"""

from mechjax.zoo.config import zoo_config

# the 2-layer attention-only copying warm-up inside the 4-layer MLP model
COPY_START = dict(
    start=0, end=2500, windows="packed", packed_len=48, packed_source="random",
    packed_vocab=2720,
    interventions=tuple(f"blocks.{i}.hook_mlp_out" for i in range(4))
    + ("blocks.2.hook_attn_out", "blocks.3.hook_attn_out"),
)  # fmt: skip

# after the warm-up: a quarter of the rows stay copy windows of the same tokens, every layer on
KEEP_COPY = dict(
    start=3000, end=5000, windows="packed", packed_len=48, packed_source="random",
    packed_vocab=2720, packed_rows=0.25,
)  # fmt: skip


# :copy_slots: the warm-up to step 3,000, then IOI with every name a random word token
COPY_SLOTS = dict(
    d_model=128, d_mlp=512, steps=5000, phases=[dict(COPY_START, end=3000)],
    name_slots=("ioi",), name_slot_frac=1.0,
)  # fmt: skip

# with `lexicon_templates` the tokenizer gives the names ids 622-2,777 (val and test names
# reach past 2,720), so the warm-up's random tokens come from the first 2,800 ids
TW = dict(
    COPY_SLOTS, lexicon_templates=True, phases=[dict(COPY_START, end=3000, packed_vocab=2800)]
)
# the learning rate of the induction probe that formed a head (G: d_model 128, attention
# only, lr 1e-3); every variant above ran at this config's lr 2e-3
SLOW = dict(lr=1e-3)
# the v3 IOI grammar: an adverb after the repeated subject in half the prompts
V3 = {"ioi": {"name_bank": "wide", "grammar": "v3"}}


def get_config(arg=None):
    return zoo_config(
        "gpt4l_mix2", arg, steps=1000, lr=2e-3, batch_size=32,
        n_layers=4, d_model=256, n_heads=8, d_mlp=1024, n_ctx=128, vocab_size=6144,
        split_data=True, doc_mask=True, task_share=0.7, n_per_task=20000, repeat_frac=0.25,
        repeat_min=4, tasks=("ioi",), task_weights={"ioi": 10},
        task_options={"ioi": {"name_bank": "wide"}},
        variants={
            "tied": dict(tie_embeddings=True),
            "kinds": dict(tie_embeddings=True, lexicon_copies=200, lexicon_form="kinds"),
            "slots": dict(name_slots=("ioi",)),
            "all_slots": dict(name_slots=("ioi",), name_slot_frac=1.0),
            "narrow": dict(d_model=128, d_mlp=512, steps=1500),
            "copy_start": dict(d_model=128, d_mlp=512, steps=4000, phases=[COPY_START]),
            "copy_slots": COPY_SLOTS,
            "copy_names": dict(
                d_model=128, d_mlp=512, steps=5000, name_slots=("ioi",),
                name_slot_frac=1.0, phases=[dict(COPY_START, end=3000, packed_source="names", packed_vocab=0)],
            ),
            "ioi_first": dict(
                d_model=128, d_mlp=512, steps=5000, name_slots=("ioi",),
                name_slot_frac=1.0, phases=[
                    dict(start=0, end=1500, name_slot_frac=0.0),
                    dict(COPY_START, start=1500, end=3500),
                ],
            ),
            "copy_keep": dict(
                d_model=128, d_mlp=512, steps=5000, name_slots=("ioi",),
                name_slot_frac=1.0, phases=[dict(COPY_START, end=3000), KEEP_COPY],
            ),
            # the wording and the names' look (this session's sweep; experiments/zoo/README.md)
            "copy_caps": dict(COPY_SLOTS, name_slot_pool="capitalized"),
            "copy_tw": TW,
            "copy_caps_tw": dict(TW, name_slot_pool="capitalized"),
            "copy_caps_tw_half": dict(TW, name_slot_pool="capitalized", name_slot_frac=0.5),
            "copy_caps_tw_wide": dict(TW, name_slot_pool="capitalized", d_model=256, d_mlp=1024),
            "copy_caps_tw_long": dict(TW, name_slot_pool="capitalized", steps=12000),
            "copy_real_tw": dict(TW, name_slots=(), name_slot_frac=0.5),
            "copy_caps_tw_slow": dict(TW, **SLOW, name_slot_pool="capitalized"),
            "noise": dict(TW, **SLOW, name_slot_pool="capitalized", word_noise=0.3),
            "noise_tied": dict(
                TW, **SLOW, name_slot_pool="capitalized", word_noise=0.3, tie_embeddings=True
            ),
            "noise_v3": dict(
                TW, **SLOW, name_slot_pool="capitalized", word_noise=0.3, task_options=V3
            ),
            "noise_tied_v3": dict(
                TW, **SLOW, name_slot_pool="capitalized", word_noise=0.3, tie_embeddings=True,
                task_options=V3,
            ),
            "narrow_tw": dict(d_model=128, d_mlp=512, steps=1500, lexicon_templates=True),
            "copy_beside": dict(
                d_model=128, d_mlp=512, steps=3000, name_slots=("ioi",),
                name_slot_frac=1.0, phases=[dict(KEEP_COPY, start=0, end=3000)],
            ),
        },
    )  # fmt: skip
