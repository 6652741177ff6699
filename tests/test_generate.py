"""mj.generate: KV-cached decoding == the naive mj.run + argmax loop, with interventions."""

import importlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj

G = importlib.import_module("mechjax.generate")  # the module (mj.generate is the function)

VARIANTS = ["gpt2-tiny", "pythia-tiny", "llama-tiny", "attn-only-2l"]
P, N = 4, 4  # prompt length, new tokens


@pytest.fixture(scope="module", params=VARIANTS)
def lm(request):
    model = mj.Transformer(mj.TransformerConfig.from_variant(request.param))
    params = mj.init(model, jax.random.key(1))
    return model, params


@pytest.fixture(scope="module")
def gpt2():
    model = mj.Transformer(mj.TransformerConfig.from_variant("gpt2-tiny"))
    return model, mj.init(model, jax.random.key(1))


def prompts(batch=2, length=P, seed=2, vocab=512):
    return np.asarray(jax.random.randint(jax.random.key(seed), (batch, length), 0, vocab))


def steering(d_model=64, scale=2.0):
    v = jax.random.normal(jax.random.key(3), (d_model,))
    return (
        mj.steer("blocks.1.hook_resid_pre", v, scale=scale),
        mj.ablate("blocks.0.attn.hook_z", heads=[1]),
    )


def naive(model, params, prompt, n, interventions=lambda length: ()):
    """Re-run the whole sequence with mj.run and append the argmax, n times."""
    seq = np.asarray(prompt)
    for _ in range(n):
        logits, _ = mj.run(model, params, seq, interventions=interventions(seq.shape[1]))
        seq = np.concatenate([seq, np.asarray(logits[:, -1].argmax(-1))[:, None]], axis=1)
    return seq


def test_greedy_equals_naive_loop(lm):
    model, params = lm
    prompt = prompts(vocab=model.cfg.d_vocab)
    out = mj.generate(model, params, prompt, N)
    assert out.shape == (2, P + N) and out.dtype == jnp.int32
    np.testing.assert_array_equal(out, naive(model, params, prompt, N))


def test_greedy_with_interventions_equals_naive_loop(lm):
    model, params = lm
    prompt = prompts(vocab=model.cfg.d_vocab)
    ivs = steering(model.cfg.d_model)
    out = mj.generate(model, params, prompt, N, interventions=ivs)
    np.testing.assert_array_equal(out, naive(model, params, prompt, N, lambda _: ivs))
    assert not np.array_equal(out, mj.generate(model, params, prompt, N))  # it did something


def test_zoo_model_greedy_equals_naive_loop():
    model, params, tok = mj.zoo.load("attn2l_code")
    prompt = np.array([[0] + tok.encode("def add(a, b):\n    return a").ids])
    v = jax.random.normal(jax.random.key(3), (model.cfg.d_model,))
    for ivs in ((), (mj.steer("blocks.1.hook_resid_pre", v, scale=4.0),)):
        out = mj.generate(model, params, prompt, 6, interventions=ivs)
        np.testing.assert_array_equal(out, naive(model, params, prompt, 6, lambda _, i=ivs: i))


def test_position_selections_index_absolute_slots(gpt2):
    model, params = gpt2
    prompt = prompts()
    v = 3.0 * jax.random.normal(jax.random.key(4), (64,))
    pos = [1, P + 1]  # one prompt position, one generated slot

    def ivs(length):
        sel = [i for i in pos if i < length]
        return (mj.steer("blocks.0.hook_resid_post", v, positions=sel),) if sel else ()

    out = mj.generate(model, params, prompt, N, interventions=ivs(P + N))
    np.testing.assert_array_equal(out, naive(model, params, prompt, N, ivs))
    # a [total_len] mask selects the same slots
    mask = np.zeros(P + N, bool)
    mask[pos] = True
    iv = mj.steer("blocks.0.hook_resid_post", v, positions=jnp.asarray(mask))
    np.testing.assert_array_equal(out, mj.generate(model, params, prompt, N, interventions=[iv]))


def test_clamp_of_full_length_pattern_is_sliced_per_step(gpt2):
    model, params = gpt2
    prompt = prompts()
    T = P + N
    prev = np.eye(T, k=-1)
    prev[0, 0] = 1.0  # a causal [q_pos, k_pos] pattern over the full sequence

    def ivs(length):
        v = prev if length == T else prev[:length, :length]
        return (mj.clamp("blocks.0.attn.hook_pattern", v, heads=[1]),)

    out = mj.generate(model, params, prompt, N, interventions=ivs(T))
    np.testing.assert_array_equal(out, naive(model, params, prompt, N, ivs))


@pytest.mark.parametrize("variant", ["gpt2-tiny", "llama-tiny"])
def test_left_padding_matches_unpadded_rows(variant):
    model = mj.Transformer(mj.TransformerConfig.from_variant(variant))
    params = mj.init(model, jax.random.key(1))
    long, short = prompts(1, 5, seed=5)[0], prompts(1, 3, seed=6)[0]
    batch = np.stack([long, np.concatenate([[7, 7], short])])
    mask = np.array([[1] * 5, [0, 0, 1, 1, 1]])
    for ivs in ((), steering()):
        out = np.asarray(
            mj.generate(model, params, batch, N, attention_mask=mask, interventions=ivs)
        )
        row0 = mj.generate(model, params, long[None], N, interventions=ivs)
        row1 = mj.generate(model, params, short[None], N, interventions=ivs)
        np.testing.assert_array_equal(out[0], row0[0])
        np.testing.assert_array_equal(out[1, 2:], row1[0])
        np.testing.assert_array_equal(
            row1, naive(model, params, short[None], N, lambda _, i=ivs: i)
        )


def test_sampling_reproducible_from_key(gpt2):
    model, params = gpt2
    prompt = prompts()
    kw = dict(temperature=1.0, top_k=50, top_p=0.95)
    a = mj.generate(model, params, prompt, 8, key=jax.random.key(0), **kw)
    b = mj.generate(model, params, prompt, 8, key=jax.random.key(0), **kw)
    c = mj.generate(model, params, prompt, 8, key=jax.random.key(1), **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(a[:, :P], prompt)
    # top_k=1 is greedy whatever the key
    g = mj.generate(model, params, prompt, 8)
    k1 = mj.generate(model, params, prompt, 8, temperature=0.7, top_k=1, key=jax.random.key(9))
    np.testing.assert_array_equal(g, k1)


def test_top_p_and_top_k_restrict_support():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    opts = dict(max_new=1, greedy=False, has_eos=False, cache_names=None)
    draws = lambda **o: {  # noqa: E731
        int(G._pick(logits, jax.random.key(s), 0, G._Opts(**opts, **o), 1.0, 0.7)[0])
        for s in range(200)
    }
    assert draws(top_k=None, use_top_p=True) == {0, 1}  # 0.5 < 0.7 <= 0.5 + 0.3
    assert draws(top_k=3, use_top_p=False) == {0, 1, 2}


def test_eos_stops_a_row(gpt2):
    model, params = gpt2
    prompt = prompts(3, seed=8)
    free = np.asarray(mj.generate(model, params, prompt, 6))
    eos = int(free[0, P + 1])  # row 0 produces it at its second new token
    out = np.asarray(mj.generate(model, params, prompt, 6, eos_id=eos))
    for r in range(3):
        new = free[r, P:]
        hits = np.nonzero(new == eos)[0]
        stop = hits[0] + 1 if len(hits) else len(new)
        np.testing.assert_array_equal(out[r, P : P + stop], new[:stop])
        assert (out[r, P + stop :] == eos).all()
    assert (out[0, P + 2 :] == eos).all()


def test_one_compilation_per_shape(gpt2):
    model, params = gpt2
    before = G._generate_jit._cache_size()
    ivs = steering()
    for seed in range(3):  # new prompts, masks and intervention values: no recompile
        v = jax.random.normal(jax.random.key(seed), (64,))
        ivs = (mj.steer("blocks.1.hook_resid_pre", v, scale=float(seed)), ivs[1])
        mask = np.ones((3, 5), np.int32)
        mask[seed % 3, : seed + 1] = 0
        mj.generate(
            model, params, prompts(3, 5, seed=seed), 3, interventions=ivs, attention_mask=mask
        )
    assert G._generate_jit._cache_size() == before + 1
    mj.generate(model, params, prompts(3, 6), 2, interventions=ivs)  # same total length 8
    assert G._generate_jit._cache_size() == before + 2  # new prompt length: a new program


def test_one_trace_per_shape_chex(gpt2, monkeypatch):
    model, params = gpt2
    traced = jax.jit(chex.assert_max_traces(G._generate, n=1), static_argnums=(0, 1))
    monkeypatch.setattr(G, "_generate_jit", traced)
    for seed in range(3):  # lists or arrays, new values, masks: the same single trace
        v = jax.random.normal(jax.random.key(seed), (64,))
        ivs = [mj.steer("blocks.1.hook_resid_pre", v, scale=seed + 1.0)]
        prompt = prompts(2, 3, seed=seed)
        mask = np.ones((2, 3), np.int32)
        mask[1, :seed] = 0
        mj.generate(model, params, prompt.tolist(), 5, interventions=ivs, attention_mask=mask)


def test_cache_matches_full_run(gpt2):
    model, params = gpt2
    prompt = prompts()
    sites = ("blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post", "hook_logits")
    tokens, cache = mj.generate(model, params, prompt, N, cache=sites)
    _, ref = mj.run(model, params, tokens, cache=sites)
    assert set(cache) == set(sites)
    for s in sites:
        assert cache[s].shape == ref[s].shape, s
        np.testing.assert_allclose(cache[s], ref[s], atol=1e-5, err_msg=s)


def test_scan_layers_model(gpt2):
    model, params = gpt2
    cfg = model.cfg.replace(scan_layers=True)
    scanned = mj.Transformer(cfg)
    sparams = mj.stack_layers(params)
    np.testing.assert_array_equal(
        mj.generate(scanned, sparams, prompts(), 3), mj.generate(model, params, prompts(), 3)
    )


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (
            dict(interventions=[mj.steer("blocks.9.hook_resid_pre", np.ones(64))]),
            ValueError,
            "matches no site",
        ),
        (
            dict(interventions=[mj.steer("blocks.1.hook_resid_pre", np.ones(63))]),
            ValueError,
            "broadcast",
        ),
        (
            dict(interventions=[mj.ablate("blocks.0.attn.hook_z", heads=[4])]),
            ValueError,
            "out of range",
        ),
        (
            dict(interventions=[mj.steer("blocks.0.hook_resid_pre", 1.0, positions=[8])]),
            ValueError,
            "out of range",
        ),
        (dict(max_new_tokens=200), ValueError, "n_ctx"),
        (dict(max_new_tokens=0), ValueError, "max_new_tokens"),
        (dict(prompt=[[1, 2, 600]]), ValueError, "vocab|range|token"),
        (dict(prompt=[1, 2, 3]), ValueError, "batch"),
        (dict(prompt=np.ones((1, 3), np.float32)), ValueError, "int"),
        (dict(attention_mask=np.array([[1, 1, 0, 1]] * 2)), ValueError, "left-padded"),
        (dict(attention_mask=np.ones((2, 3))), ValueError, "attention_mask"),
        (dict(temperature=1.0), ValueError, "key"),
        (dict(temperature=-1.0), ValueError, "temperature"),
        (dict(temperature=1.0, key=jax.random.key(0), top_p=1.5), ValueError, "top_p"),
        (dict(temperature=1.0, key=jax.random.key(0), top_k=0), ValueError, "top_k"),
        (dict(eos_id=512), ValueError, "eos_id"),
        (dict(cache="blocks.7.*"), ValueError, "matches no site"),
        (dict(interventions=[mj.from_batch(lambda b, v: ())]), NotImplementedError, "from_batch"),
    ],
)
def test_bad_inputs_fail_on_host(gpt2, kwargs, err, match):
    model, params = gpt2
    kw = dict(prompt=prompts(), max_new_tokens=4)
    kw.update(kwargs)
    before = G._generate_jit._cache_size()
    with pytest.raises(err, match=match):
        mj.generate(model, params, kw.pop("prompt"), kw.pop("max_new_tokens"), **kw)
    assert G._generate_jit._cache_size() == before  # nothing was compiled


# -- encoder-decoder: the encoder runs once, the decoder decodes against its KV cache --------

V_ED = 13


def _encdec(**kw):
    base = dict(
        d_model=16, n_encoder_layers=2, n_decoder_layers=2, n_heads=4, d_mlp=32, d_vocab=V_ED
    )
    model = mj.EncoderDecoder(mj.EncoderDecoderConfig(**{**base, "n_ctx": 12, **kw}))
    params = mj.init(model, jax.random.key(0))
    # larger random weights than the init, so argmaxes are not near ties
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    leaves = [
        (x * 4.0 if x.ndim >= 2 else x) + 0.1 * jax.random.normal(k, x.shape)
        for x, k in zip(leaves, keys)
    ]
    return model, jax.tree.unflatten(treedef, leaves)


def _encdec_prompt(seed=0, batch=2, n_enc=6, n_dec=3):
    rng = np.random.default_rng(seed)
    return {
        "encoder": rng.integers(0, V_ED, (batch, n_enc)).astype(np.int32),
        "decoder": rng.integers(0, V_ED, (batch, n_dec)).astype(np.int32),
    }


def naive_encdec(model, params, prompt, n, interventions=(), enc_mask=None):
    seq = np.asarray(prompt["decoder"])
    mask = None if enc_mask is None else {"encoder": enc_mask}
    for _ in range(n):
        inputs = {"encoder": prompt["encoder"], "decoder": seq}
        logits, _ = mj.run(model, params, inputs, interventions=interventions, attention_mask=mask)
        seq = np.concatenate([seq, np.asarray(logits[:, -1].argmax(-1))[:, None]], axis=1)
    return seq


@pytest.mark.parametrize(
    "kw",
    [
        dict(),  # pre-norm
        dict(norm_position="post", layernorm_embedding=True, pos_offset=2, scale_embedding=True),
    ],
    ids=["pre-norm", "bart-like"],
)
def test_encoder_decoder_greedy_equals_naive_loop(kw):
    model, params = _encdec(**kw)
    prompt = _encdec_prompt()
    v = jax.random.normal(jax.random.key(3), (16,))
    ivs = (
        mj.steer("decoder.blocks.0.hook_resid_mid", v, scale=3.0),  # decoder, every step
        mj.steer("encoder.blocks.1.hook_resid_post", v, positions=[1, 2]),  # encoder positions
        mj.ablate("decoder.blocks.1.cross_attn.hook_z", heads=[0]),
    )
    out = mj.generate(model, params, prompt, 4)
    assert out.shape == (2, 3 + 4) and out.dtype == jnp.int32
    np.testing.assert_array_equal(out, naive_encdec(model, params, prompt, 4))
    steered = mj.generate(model, params, prompt, 4, interventions=ivs)
    np.testing.assert_array_equal(steered, naive_encdec(model, params, prompt, 4, ivs))
    assert not np.array_equal(out, steered)  # the interventions did something


def test_encoder_decoder_cache_and_encoder_mask():
    model, params = _encdec(cross_attn_first=True, n_decoder_heads=2)
    prompt = _encdec_prompt(seed=1)
    enc_mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    sites = (
        "encoder.blocks.0.attn.hook_pattern",  # computed once
        "decoder.blocks.0.cross_attn.hook_k",  # computed once, from the memory
        "decoder.blocks.1.cross_attn.hook_pattern",  # [batch, head, dec_pos, enc_pos]
        "decoder.blocks.0.attn.hook_pattern",
        "hook_logits",
    )
    tokens, cache = mj.generate(
        model, params, prompt, 4, cache=sites, attention_mask={"encoder": enc_mask}
    )
    np.testing.assert_array_equal(tokens, naive_encdec(model, params, prompt, 4, enc_mask=enc_mask))
    inputs = {"encoder": prompt["encoder"], "decoder": np.asarray(tokens)}
    _, ref = mj.run(model, params, inputs, cache=sites, attention_mask={"encoder": enc_mask})
    for s in sites:
        assert cache[s].shape == ref[s].shape, s
        np.testing.assert_allclose(cache[s], ref[s], atol=1e-5, err_msg=s)


@pytest.mark.parametrize(
    "prompt, kwargs, err, match",
    [
        (dict(decoder=np.zeros((2, 3), np.int32)), {}, ValueError, "encoder"),
        (np.zeros((2, 3), np.int32), {}, ValueError, "dict"),
        (None, dict(attention_mask={"decoder": np.array([[1, 0, 1]] * 2)}), ValueError, "left"),
        (None, dict(attention_mask={"encoder": np.ones((2, 5))}), ValueError, "encoder"),
        (None, dict(max_new_tokens=10), ValueError, "n_ctx"),
        (
            None,
            dict(interventions=[mj.steer("decoder.blocks.2.hook_resid_pre", np.ones(16))]),
            ValueError,
            "matches no site",
        ),
    ],
)
def test_encoder_decoder_bad_inputs_fail_on_host(prompt, kwargs, err, match):
    model, params = _encdec()
    prompt = _encdec_prompt() if prompt is None else prompt
    kw = {"max_new_tokens": 4, **kwargs}
    before = G._generate_jit._cache_size()
    with pytest.raises(err, match=match):
        mj.generate(model, params, prompt, kw.pop("max_new_tokens"), **kw)
    assert G._generate_jit._cache_size() == before


def test_learned_query_decoders_cannot_generate():
    model = mj.EncoderDecoder(
        mj.EncoderDecoderConfig(
            d_model=16,
            n_encoder_layers=1,
            n_decoder_layers=1,
            n_heads=2,
            d_vocab=V_ED,
            n_queries=3,
        )
    )
    with pytest.raises(ValueError, match="learned-query decoders cannot generate"):
        mj.generate(model, {}, {"encoder": np.zeros((1, 4), np.int32)}, 2)
