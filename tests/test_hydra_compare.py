"""experiments/hydra/compare.py: the bigram drafter baseline and its table."""

import jax
import jax.numpy as jnp
import numpy as np

import mechjax as mj
from experiments.hydra import compare as HC
from mechjax.models.heads import Tree


def test_bigram_table_ranks_successors_by_count():
    stream = np.array([0, 1, 0, 1, 0, 2, 1, 2, 1, 2, 1, 0])
    table = HC.bigram_table(stream, vocab=3, k=2)
    # 0 -> 1 twice, -> 2 once; 1 -> 2 twice, -> 0 twice (tie: lower id first); 2 -> 1 three times
    np.testing.assert_array_equal(table[0], [1, 2])
    np.testing.assert_array_equal(table[1], [0, 2])
    assert table[2, 0] == 1


def test_bigram_drafter_follows_the_tree_and_decodes_exactly():
    tree = Tree(((0,), (1,), (0, 0), (0, 1), (1, 0), (0, 0, 0)))
    V = 64
    table = jnp.asarray(np.random.default_rng(0).integers(0, V, (V, 2)), jnp.int32)
    root = jnp.array([5, 9], jnp.int32)
    nodes = np.asarray(HC.bigram_drafter(table, None, root, tree))
    t = np.asarray(table)
    for b, r in enumerate([5, 9]):
        for i, path in enumerate(tree.paths):  # walk each path from the root
            tok = r
            for rank in path:
                tok = t[tok, rank]
            assert nodes[b, i] == tok, (b, path)
    model = mj.Transformer(mj.TransformerConfig.from_variant("gpt2-tiny"))
    params = mj.init(model, jax.random.key(1))
    V = model.cfg.d_vocab
    table = jnp.asarray(np.random.default_rng(1).integers(0, V, (V, 2)), jnp.int32)
    prompt = np.asarray(jax.random.randint(jax.random.key(2), (3, 6), 0, V))
    out = mj.speculative_generate(
        model, params, prompt, 9, drafter=HC.bigram_drafter, drafter_params=table, tree=tree
    )
    np.testing.assert_array_equal(
        np.asarray(out), np.asarray(mj.generate(model, params, prompt, 9))
    )
