"""mechjax's forward pass and patching sweeps equal TransformerLens' on identical weights.

By default (CI has no TransformerLens) the comparison is against committed references:
tests/fixtures/tl/ holds a tiny random GPT-2 (`gpt2_tiny/`, a Hugging Face folder), the
clean/corrupted tokens, and what TransformerLens 3.x (`reference_3.npz`) and 4.x
(`reference_4.npz`) computed on them: `run_with_cache` at a few sites and the result of
each `patching.get_act_patch_*` in CASES (metric: mean logit difference of tokens A, B at
the last position). VERSIONS.json records the versions and the command;
tests/fixtures/make_tl_fixtures.py rewrites them. Where transformer_lens is importable,
`test_live_matches_transformer_lens` also runs TransformerLens itself on the same folder.
"""

import importlib.util
import json
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
TL_DIR = FIXTURES / "tl"
_spec = importlib.util.spec_from_file_location("make_tl_fixtures", FIXTURES / "make_tl_fixtures.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

MAJORS = ("3", "4")  # TransformerLens majors with a committed reference
A, B = fx.METRIC_TOKENS
METRIC = mj.metrics.logit_diff(A, B)  # one object: sweeps compiled for one case are reused
# Cases that compile sweeps no other case needs (about 7 s more on 2 cores): only with -m slow.
SLOW = {"attn_head_by_pos_every", "attn_head_pattern_dest_src_pos"}


def _cases(with_tl_name=False):
    return [
        pytest.param(*((t, m) if with_tl_name else (m,)), marks=[pytest.mark.slow] * (m in SLOW))
        for t, m in fx.CASES
    ]


def _close(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != TransformerLens {want.shape}"
    atol = 1e-5 * max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=what)


@pytest.fixture(scope="module")
def setup():
    model, params = mj.from_pretrained(TL_DIR / "gpt2_tiny")
    tok = np.load(TL_DIR / "tokens.npz")
    clean, corrupted = tok["clean"], tok["corrupted"]
    logits, cache = mj.run(model, params, jnp.asarray(clean), cache=True)
    return dict(
        model=model,
        params=params,
        clean=clean,
        corrupted=corrupted,
        logits=logits,
        cache=cache,
        results={},  # mechjax sweep results, computed once per case
    )


def _mj_patch(setup, mj_name):
    if mj_name not in setup["results"]:
        fn = getattr(mj.patching, mj_name)
        args = (setup["model"], setup["params"], jnp.asarray(setup["corrupted"]), setup["cache"])
        setup["results"][mj_name] = np.asarray(fn(*args, METRIC))
    return setup["results"][mj_name]


@pytest.fixture(scope="module")
def references():
    # Both majors in one test: under pytest-xdist a case's sweeps then compile on one worker.
    return {m: np.load(TL_DIR / f"reference_{m}.npz") for m in MAJORS}


def test_fixtures_are_complete():
    versions = json.loads((TL_DIR / "VERSIONS.json").read_text())
    tok = np.load(TL_DIR / "tokens.npz")
    for major in MAJORS:
        entry = versions[f"reference_{major}.npz"]
        assert entry["transformer_lens"].split(".")[0] == major
        ref = np.load(TL_DIR / f"reference_{major}.npz")
        np.testing.assert_array_equal(ref["clean"], tok["clean"])
        np.testing.assert_array_equal(ref["corrupted"], tok["corrupted"])
        np.testing.assert_array_equal(ref["metric_tokens"], fx.METRIC_TOKENS)
        want = {f"fwd/{s}" for s in fx.SITES} | {f"patch/{m}" for _, m in fx.CASES}
        assert want <= set(ref.files), sorted(want - set(ref.files))


def test_forward_matches_transformer_lens(setup, references):
    for major, ref in references.items():
        for site in fx.SITES:
            got = setup["logits"] if site == "logits" else setup["cache"][site]
            _close(got, ref[f"fwd/{site}"], f"{site} vs TransformerLens {major}.x")


@pytest.mark.parametrize("mj_name", _cases())
def test_patching_matches_transformer_lens(setup, references, mj_name):
    got = _mj_patch(setup, mj_name)
    for major, ref in references.items():
        want = ref[f"patch/{mj_name}"]
        assert np.ptp(want) > 1e-2  # the sweep is not flat, so agreement is informative
        _close(got, want, f"{mj_name} vs TransformerLens {major}.x")


@pytest.mark.parametrize("tl_name,mj_name", _cases(with_tl_name=True))
def test_live_matches_transformer_lens(setup, tl_name, mj_name):
    """The same against the installed TransformerLens (skipped without it)."""
    tl_patching = pytest.importorskip("transformer_lens.patching")
    torch = pytest.importorskip("torch")
    import importlib.metadata as md

    from transformers import GPT2LMHeadModel

    if "tl" not in setup:
        torch.set_grad_enabled(False)
        major = int(md.version("transformer-lens").split(".")[0])
        hf = GPT2LMHeadModel.from_pretrained(TL_DIR / "gpt2_tiny", attn_implementation="eager")
        tl = fx.tl_model(major, hf.eval())
        _, tl_cache = tl.run_with_cache(torch.tensor(setup["clean"]))
        setup["tl"] = tl, tl_cache
    tl, tl_cache = setup["tl"]
    want = getattr(tl_patching, tl_name)(
        tl,
        torch.tensor(setup["corrupted"]),
        tl_cache,
        lambda lg: (lg[:, -1, A] - lg[:, -1, B]).mean(),
    )
    _close(_mj_patch(setup, mj_name), torch.as_tensor(want).numpy(), mj_name)
