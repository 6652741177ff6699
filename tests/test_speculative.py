"""mj.speculative_generate: tree-verified greedy decoding == mj.generate's greedy output."""

import functools
import importlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax.generate import kv_buffers
from mechjax.hooks import NO_HOOKS
from mechjax.models.heads.tree import Tree

S = importlib.import_module("mechjax.speculative")

B, P, M = 4, 5, 10  # prompts, prompt length, new tokens
TREES = {
    "chain": Tree(((0,), (0, 0), (0, 0, 0))),
    "wide": Tree(((0,), (1,), (2,), (3,), (4,))),
    "mixed": Tree(((0,), (1,), (2,), (0, 0), (0, 1), (1, 0), (0, 0, 0), (0, 1, 0), (0, 0, 0, 0))),
}
MODELS = ["gpt2-tiny", "pythia-tiny", "llama-tiny", "zoo"]


def _hidden(model, params, seq):
    """The base's post-final-norm hidden states `[batch, pos, d_model]` of `seq`."""
    n = seq.shape[1]
    _, _, h = model.apply(
        params,
        jnp.asarray(seq),
        NO_HOOKS,
        None,
        pos_ids=jnp.broadcast_to(jnp.arange(n), seq.shape),
        kv_cache=kv_buffers(model, seq.shape[0], n),
        cache_index=0,
        return_hidden=True,
        method=mj.Transformer.decode,
    )
    return h


class Case:
    def __init__(self, name):
        if name == "zoo":
            self.model, self.params, _ = mj.zoo.load("attn2l_code")
        else:
            self.model = mj.Transformer(mj.TransformerConfig.from_variant(name))
            self.params = mj.init(self.model, jax.random.key(1))
        self.V = self.model.cfg.d_vocab
        self.prompt = np.asarray(jax.random.randint(jax.random.key(2), (B, P), 0, self.V))
        self.ref = np.asarray(mj.generate(self.model, self.params, self.prompt, M))
        # the greedy continuation beyond M, for the oracle's last steps
        self.long = np.asarray(mj.generate(self.model, self.params, self.prompt, M + 6))
        self.H = _hidden(self.model, self.params, self.long)


@functools.cache
def get_case(name):
    return Case(name)


@pytest.fixture(scope="module", params=MODELS)
def case(request):
    return get_case(request.param)


@pytest.fixture(scope="module")
def gpt2():
    return get_case("gpt2-tiny")


def oracle_for(case, tree):
    """A drafter that knows the true greedy continuation: it finds the current row and
    position by the hidden state (the nearest reference state whose next token is the root)
    and puts the true tokens on one deepest path of the tree, wrong ones elsewhere.

    It only works when `hidden` is the state at the last accepted position."""
    rows, n = case.long.shape
    main = max(tree.paths, key=len)
    on_main = jnp.asarray([main[: len(p)] == p for p in tree.paths])
    rank = jnp.asarray([p[-1] for p in tree.paths])
    depth = jnp.asarray(tree.depth)
    V = case.V

    def drafter(p, hidden, tok, tree):
        H, seq = p  # [rows * pos, d_model], [rows, pos]
        nxt = jnp.concatenate([seq[:, 1:], jnp.full((rows, 1), -1)], axis=1).reshape(-1)
        d2 = jnp.sum((H - hidden[0]) ** 2, axis=-1)
        t = jnp.argmin(jnp.where(nxt == tok[0], d2, jnp.inf))
        row, pos = t // n, t % n
        true = seq[row, jnp.minimum(pos + 1 + depth, n - 1)]  # [n_nodes]
        return jnp.where(on_main, true, (true + 1 + rank) % V)[None]

    params = (case.H.reshape(rows * n, -1), jnp.asarray(case.long))
    return drafter, params


def random_drafter(params, hidden, tok, tree):
    return params[tok]  # [1, n_nodes]: a fixed random tree per root token


def unembed_drafter(params, hidden, tok, tree):
    """The base's own unembedding of `hidden`: its top-k tokens at every depth."""
    W, b = params
    logits = hidden @ W + (0.0 if b is None else b)  # [1, d_vocab]
    top = jax.lax.top_k(logits, 5)[1]  # [1, 5]
    return top[:, jnp.asarray([p[-1] for p in tree.paths])]


def n_steps(max_new, depth):
    return -(-(max_new - 1) // (depth + 1))


@pytest.mark.parametrize("tree_name", list(TREES))
def test_oracle_drafter_accepts_the_whole_depth(case, tree_name):
    tree = TREES[tree_name]
    D = int(tree.depth.max())
    drafter, dp = oracle_for(case, tree)
    out, stats = mj.speculative_generate(
        case.model,
        case.params,
        case.prompt,
        M,
        drafter=drafter,
        drafter_params=dp,
        tree=tree,
        return_stats=True,
    )
    assert out.shape == (B, P + M) and out.dtype == jnp.int32
    np.testing.assert_array_equal(out, case.ref)
    k = n_steps(M, D)
    np.testing.assert_array_equal(stats["n_steps"], [k] * B)
    np.testing.assert_array_equal(stats["n_forwards"], [k + 1] * B)
    np.testing.assert_array_equal(stats["accept_lengths"][:, :k], D + 1)
    np.testing.assert_array_equal(stats["accept_lengths"][:, k:], 0)
    np.testing.assert_allclose(stats["mean_accept_length"], D + 1)


def test_random_drafter_is_exact(case):
    tree = TREES["mixed"]
    table = jax.random.randint(jax.random.key(5), (case.V, tree.n_nodes), 0, case.V)
    out, stats = mj.speculative_generate(
        case.model,
        case.params,
        case.prompt,
        M,
        drafter=random_drafter,
        drafter_params=table,
        tree=tree,
        return_stats=True,
    )
    np.testing.assert_array_equal(out, case.ref)
    assert np.all(np.asarray(stats["mean_accept_length"]) < 1.5)
    assert np.all(np.asarray(stats["n_forwards"]) > M // 2)


def test_unembedding_drafter_is_exact(case):
    tree = TREES["mixed"]
    W, b = case.model.readout_weights(case.params)
    out, stats = mj.speculative_generate(
        case.model,
        case.params,
        case.prompt,
        M,
        drafter=unembed_drafter,
        drafter_params=(W, b),
        tree=tree,
        return_stats=True,
    )
    np.testing.assert_array_equal(out, case.ref)
    assert np.all(np.asarray(stats["mean_accept_length"]) >= 1.0)
    acc = np.asarray(stats["accept_lengths"])
    assert np.all(acc.sum(1) >= M - 1)  # the steps emitted every token after the first
    np.testing.assert_array_equal((acc > 0).sum(1), stats["n_steps"])


def test_tree_block_logits_equal_sequential_paths():
    """One tree block through `Transformer.decode(tree_mask=...)`: every node's logits equal
    a plain forward over the committed tokens plus the node's root-to-node path (RoPE,
    GQA); a causal tree mask is the plain causal decode."""
    llama = get_case("llama-tiny")
    model, params = llama.model, llama.params
    tree = TREES["mixed"]
    n = tree.n_nodes
    depth, mask, _, table = S._tree_tables(tree)
    prefix = np.asarray(jax.random.randint(jax.random.key(3), (1, 4), 0, 512))
    block = np.asarray(jax.random.randint(jax.random.key(4), (1, n + 1), 0, 512))
    T = 4 + n + 1
    kv = kv_buffers(model, 1, T)

    @jax.jit
    def dec(tokens, pos, kv, start, tree_mask=None):
        return model.apply(
            params,
            jnp.asarray(tokens),
            NO_HOOKS,
            jnp.ones((1, T), jnp.int32),
            pos_ids=jnp.asarray(pos)[None],
            kv_cache=kv,
            cache_index=start,
            tree_mask=tree_mask,
            method=mj.Transformer.decode,
        )

    _, kv = dec(prefix, np.arange(4), kv, 0)
    logits, _ = dec(block, 4 + depth, kv, 4, tree_mask=mask)
    for d in range(depth.max() + 1):  # one plain forward per path length
        nodes = np.nonzero(depth == d)[0]
        seqs = [np.concatenate([prefix[0], block[0, table[j][: d + 1]]]) for j in nodes]
        ref, _ = mj.run(model, params, np.stack(seqs))
        np.testing.assert_allclose(logits[0, nodes], ref[:, -1], atol=1e-5, err_msg=f"depth {d}")
    causal, _ = dec(
        block, 4 + np.arange(n + 1), kv, 4, tree_mask=np.tril(np.ones((n + 1,) * 2, bool))
    )
    plain, _ = dec(block, 4 + np.arange(n + 1), kv, 4)
    np.testing.assert_array_equal(causal, plain)


def test_eos_inside_an_accepted_path(gpt2):
    tree = TREES["chain"]
    drafter, dp = oracle_for(gpt2, tree)
    # a token each row reaches in the middle of its generation (often inside a step)
    eos = int(gpt2.ref[0, P + 3])
    ref = np.asarray(mj.generate(gpt2.model, gpt2.params, gpt2.prompt, M, eos_id=eos))
    out, stats = mj.speculative_generate(
        gpt2.model,
        gpt2.params,
        gpt2.prompt,
        M,
        drafter=drafter,
        drafter_params=dp,
        tree=tree,
        eos_id=eos,
        return_stats=True,
    )
    np.testing.assert_array_equal(out, ref)
    first = int(np.nonzero(gpt2.ref[0, P:] == eos)[0][0])  # 0 = the prefill's token
    assert (np.asarray(out)[0, P + first :] == eos).all()
    # row 0 stopped after the step that produced eos (each step emits 4 tokens)
    assert int(stats["n_steps"][0]) == -(-first // 4)


def test_left_padding_and_one_token(gpt2):
    model, params = gpt2.model, gpt2.params
    tree = TREES["wide"]
    table = jax.random.randint(jax.random.key(5), (512, tree.n_nodes), 0, 512)
    kw = dict(drafter=random_drafter, drafter_params=table, tree=tree)
    short = gpt2.prompt[1, 2:]
    batch = np.stack([gpt2.prompt[0], np.concatenate([[7, 7], short])])
    mask = np.array([[1] * P, [0, 0, 1, 1, 1]])
    out = np.asarray(mj.speculative_generate(model, params, batch, 6, attention_mask=mask, **kw))
    ref = np.asarray(mj.generate(model, params, batch, 6, attention_mask=mask))
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(out[1, 2:], mj.generate(model, params, short[None], 6)[0])
    # max_new_tokens=1: only the prefill, no verification step
    one, stats = mj.speculative_generate(model, params, gpt2.prompt, 1, return_stats=True, **kw)
    np.testing.assert_array_equal(one, gpt2.ref[:, : P + 1])
    np.testing.assert_array_equal(stats["n_forwards"], 1)
    assert np.isnan(np.asarray(stats["mean_accept_length"])).all()


def test_one_trace_per_shape(gpt2, monkeypatch):
    traced = jax.jit(chex.assert_max_traces(S._speculative, n=1), static_argnums=(0, 1, 2))
    monkeypatch.setattr(S, "_speculative_jit", traced)
    tree = TREES["mixed"]
    for seed in range(3):  # new prompts, drafter params, lists or arrays: one trace
        table = jax.random.randint(jax.random.key(seed), (512, tree.n_nodes), 0, 512)
        prompt = np.asarray(jax.random.randint(jax.random.key(seed + 10), (2, 3), 0, 512))
        out = mj.speculative_generate(
            gpt2.model,
            gpt2.params,
            prompt.tolist() if seed else prompt,
            5,
            drafter=random_drafter,
            drafter_params=table,
            tree=tree.paths if seed == 2 else tree,
        )
        np.testing.assert_array_equal(out, mj.generate(gpt2.model, gpt2.params, prompt, 5))


def _bad_drafter_shape(p, h, t, tree):
    return jnp.zeros((1, tree.n_nodes + 1), jnp.int32)


def _float_drafter(p, h, t, tree):
    return jnp.zeros((1, tree.n_nodes))


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(tree=((0,), (1, 0))), ValueError, "prefix"),
        (dict(tree=((0,), ())), ValueError, "empty"),
        (dict(tree=((0,), (0,))), ValueError, "twice"),
        (dict(tree=((0,), (-1,))), ValueError, ">= 0"),
        (dict(tree=()), ValueError, "no nodes"),
        (dict(tree="0"), ValueError, "paths"),
        (dict(drafter=_bad_drafter_shape), ValueError, r"\[1, 3\]"),
        (dict(drafter=_float_drafter), ValueError, "int"),
        (dict(drafter=None), TypeError, "callable"),
        (dict(prompt=[1, 2, 3]), ValueError, "batch"),
        (dict(prompt=np.ones((1, 3), np.float32)), ValueError, "int"),
        (dict(prompt=[[1, 2, 600]]), ValueError, "vocab|range|token"),
        (dict(max_new_tokens=0), ValueError, "max_new_tokens"),
        (dict(max_new_tokens=200), ValueError, "n_ctx"),
        (dict(eos_id=512), ValueError, "eos_id"),
        (dict(attention_mask=np.array([[1, 0, 1]])), ValueError, "left-padded"),
    ],
)
def test_bad_inputs_fail_on_host(gpt2, kwargs, err, match):
    kw = dict(
        prompt=[[1, 2, 3]],
        max_new_tokens=4,
        drafter=random_drafter,
        drafter_params=jnp.zeros((512, 3), jnp.int32),
        tree=TREES["chain"],
    )
    kw.update(kwargs)
    before = S._speculative_jit._cache_size()
    with pytest.raises(err, match=match):
        mj.speculative_generate(
            gpt2.model, gpt2.params, kw.pop("prompt"), kw.pop("max_new_tokens"), **kw
        )
    assert S._speculative_jit._cache_size() == before  # nothing was compiled


def test_rejects_non_lm_models():
    cfg = mj.EncoderDecoderConfig(
        d_model=16, n_encoder_layers=1, n_decoder_layers=1, n_heads=2, d_vocab=11, n_ctx=8
    )
    model = mj.EncoderDecoder(cfg)
    with pytest.raises(TypeError, match="mj.Transformer"):
        mj.speculative_generate(model, {}, [[1, 2]], 2, drafter=random_drafter, tree=TREES["chain"])


def _perturbed_heads(draft_model, base_params, seed):
    """Draft heads initialised from the base, then every head weight jittered (so drafts
    depend on the hidden states, the drafted tokens and, for Hydra++, the whole sequence)."""
    from mechjax.models import heads as H

    params = H.init_from_base(draft_model, jax.random.key(seed), base_params)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    new = [
        x if "base" in jax.tree_util.keystr(path) else x + 0.3 * jax.random.normal(k, x.shape)
        for (path, x), k in zip(leaves, keys)
    ]
    return jax.tree_util.tree_unflatten(treedef, new)


class _Recording:
    """Wraps a drafter; records every step's drafted nodes on the host (batch of one)."""

    def __init__(self, inner):
        self.inner, self.log = inner, []
        self.reads_sequence = inner.reads_sequence

    def __call__(self, params, hidden, tok, tree, **seq):
        nodes = self.inner(params, hidden, tok, tree, **seq)
        jax.debug.callback(lambda n: self.log.append(np.asarray(n)), nodes)
        return nodes


@pytest.mark.parametrize("variant", ["medusa", "hydra", "hydra++"])
def test_draft_head_drafter_is_exact_and_drafts_from_the_committed_sequence(gpt2, variant):
    """`H.Drafter` in the decoder: output == greedy, and at every step the drafted nodes
    equal `draft_tree` on a full forward over the committed tokens (for Hydra++ that checks
    the decoder's gathered hidden-state buffer, which its prefix layer attends over)."""
    from mechjax.models import heads as H

    draft = H.DraftModel(gpt2.model, H.DraftConfig.from_variant(variant, n_heads=3))
    dp = _perturbed_heads(draft, gpt2.params, 3)
    assert H.Drafter(draft).reads_sequence == (variant == "hydra++")
    tree = TREES["mixed"].paths[:6]  # depth <= 3
    tree = Tree(tree)
    prefix_matters = False
    for b in range(2):  # two prompts: each is its own batch-of-one decode
        rec = _Recording(H.Drafter(draft))
        out, stats = mj.speculative_generate(
            gpt2.model, gpt2.params, gpt2.prompt[b : b + 1], M,
            drafter=rec, drafter_params=dp, tree=tree, return_stats=True,
        )  # fmt: skip
        np.testing.assert_array_equal(np.asarray(out)[0], gpt2.ref[b])
        lengths = np.asarray(stats["accept_lengths"])[0]
        n = int(stats["n_steps"][0])
        steps = [x for x in rec.log if x.shape == (1, tree.n_nodes)]
        assert len(steps) == n, (len(rec.log), n)
        pos = P  # the root's slot (the prefill emitted the first token)
        for i in range(n):
            # the committed slots' hidden states in a fixed-size buffer (causal: slots
            # < pos equal a forward over the committed tokens alone); one compilation
            hid = gpt2.H[b : b + 1]
            root = jnp.asarray(gpt2.long[b : b + 1, pos])
            last = hid[:, pos - 1]
            want = np.asarray(
                H.draft_tree(draft, dp, last, root, tree, hidden_seq=hid, seq_len=pos)
            )
            np.testing.assert_array_equal(steps[i], want)
            if variant == "hydra++":  # the prefix layer reads more than the last state
                recent = (np.arange(hid.shape[1]) >= pos - 2)[None].astype(np.int32)
                alt = H.draft_tree(
                    draft, dp, last, root, tree, hidden_seq=hid, seq_len=pos, seq_mask=recent
                )
                prefix_matters |= bool((np.asarray(alt) != want).any())
            pos += int(lengths[i])
    if variant == "hydra++":
        assert prefix_matters
