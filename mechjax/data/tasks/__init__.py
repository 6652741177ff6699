"""Text tasks for circuit analysis: generators, tokenization and the logit-difference metric.

from mechjax.data import tasks
prompts = tasks.generate("ioi", n=64, seed=0)     # strings, deterministic from the seed
batch = tasks.encode(prompts, tokenizer)          # numpy TaskBatch for mj.run
logits, _ = mj.run(model, params, batch.tokens)
tasks.logit_diff(logits, batch), tasks.accuracy(logits, batch)   # [N] each
tasks.prob_diff(logits, batch)    # p(answers) - p(contrasts), Hanna et al.'s greater-than metric

test = tasks.generate("ioi", n=64, seed=0, split="test")   # held-out templates / names / items
tasks.baselines("ioi", split="test")      # format-only chance and cheap shortcuts on that split
"""

from mechjax.data.tasks import (  # noqa: F401  (each module registers its generators)
    arithmetic,
    colored_objects,
    docstring,
    factual,
    greater_than,
    ioi,
    multiple_choice,
    needle,
    repeated,
    successor,
)
from mechjax.data.tasks.base import (
    BOS,
    GENERATORS,
    GRAMMARS,
    LEXICONS,
    SPLIT_SETS,
    Prompts,
    TaskBatch,
    accuracy,
    encodable,
    encode,
    generate,
    generate_encodable,
    kind_lexicon,
    lexicon,
    logit_diff,
    prob_diff,
    register,
    single_token_id,
    split_set,
)
from mechjax.data.tasks.shortcuts import baselines, strongest  # noqa: E402
from mechjax.data.tasks.splits import SPLITS, template_counts  # noqa: E402

__all__ = [
    "BOS",
    "GENERATORS",
    "GRAMMARS",
    "LEXICONS",
    "SPLIT_SETS",
    "SPLITS",
    "Prompts",
    "TaskBatch",
    "accuracy",
    "baselines",
    "encodable",
    "encode",
    "generate",
    "kind_lexicon",
    "split_set",
    "lexicon",
    "generate_encodable",
    "logit_diff",
    "prob_diff",
    "register",
    "single_token_id",
    "strongest",
    "template_counts",
]
