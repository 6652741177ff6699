"""Path patching equals a naive two-run loop of mj.run calls."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mechjax as mj
from mechjax.analysis import path_patching

L, H, B, P = 3, 2, 2, 5


def _setup():
    cfg = mj.TransformerConfig(
        d_model=16, n_layers=L, n_heads=H, d_vocab=11, n_ctx=8, d_mlp=32, name="t"
    )
    model = mj.Transformer(cfg)
    params = jax.tree.map(lambda x: 4.0 * x, mj.init(model, jax.random.key(0)))
    clean = jax.random.randint(jax.random.key(1), (B, P), 0, 11)
    corr = jax.random.randint(jax.random.key(2), (B, P), 0, 11)
    return model, params, clean, corr


def metric(lg):
    return jnp.mean(lg[:, -1, 1] - lg[:, -1, 2])


def _naive(model, params, clean, corr, receiver, heads, positions, freeze_mlps=False):
    _, cc = mj.run(model, params, clean, cache=True)
    _, kc = mj.run(model, params, corr, cache=True)
    shape = cc[receiver].shape
    out = np.zeros((L, H))
    for s_layer in range(L):
        for s_head in range(H):
            ivs = []
            for layer in range(L):
                z = f"blocks.{layer}.attn.hook_z"
                val = cc[z]
                if layer == s_layer:
                    val = val.at[:, :, s_head].set(kc[z][:, :, s_head])
                ivs.append(mj.patch(z, val))
                if freeze_mlps:
                    ivs.append(
                        mj.patch(f"blocks.{layer}.hook_mlp_out", cc[f"blocks.{layer}.hook_mlp_out"])
                    )
            _, rec = mj.run(model, params, clean, cache=receiver, interventions=ivs)
            mask = np.zeros((1,) + shape[1:], bool)
            sl = [slice(None)] * len(shape)
            if heads is not None:
                sl[2] = heads
            if positions is not None:
                sl[1] = positions
            mask[tuple(sl)] = True
            logits, _ = mj.run(
                model, params, clean, interventions=[mj.clamp(receiver, rec[receiver], mask=mask)]
            )
            out[s_layer, s_head] = float(metric(logits))
    return out


def test_path_patch_equals_naive():
    model, params, clean, corr = _setup()
    got = path_patching.path_patch(
        model,
        params,
        clean,
        corr,
        metric,
        [("blocks.2.attn.hook_q", [1], [-1])],
        sender_layers=range(3),
    )
    want = _naive(model, params, clean, corr, "blocks.2.attn.hook_q", [1], [P - 1])
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
    assert np.ptp(want[:2]) > 1e-3
    # Senders at or after the receiver's layer cannot reach it: clean metric.
    clean_m = float(metric(mj.run(model, params, clean)[0]))
    np.testing.assert_allclose(got[2], clean_m, atol=1e-5)


def test_per_example_receiver_positions_equal_per_row_runs():
    """A bool [batch, pos] receiver mask (each prompt's own position) gives, per row, what a
    one-row run with that row's position gives (the metric is a mean over rows)."""
    model, params, clean, corr = _setup()
    pos = np.array([P - 1, 2])
    mask = np.zeros((B, P), bool)
    mask[np.arange(B), pos] = True
    got = path_patching.path_patch(
        model, params, clean, corr, metric, [("blocks.2.attn.hook_q", [1], mask)]
    )
    rows = [
        path_patching.path_patch(
            model,
            params,
            clean[b : b + 1],
            corr[b : b + 1],
            metric,
            [("blocks.2.attn.hook_q", [1], [int(pos[b])])],
        )
        for b in range(B)
    ]
    np.testing.assert_allclose(got, np.mean(rows, axis=0), atol=2e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"per-example position mask must be \[batch, pos\]"):
        path_patching.path_patch(
            model, params, clean, corr, metric, [("blocks.2.attn.hook_q", [1], mask[:1])]
        )


@pytest.mark.slow
def test_path_to_logits_with_frozen_mlps_and_chunks():
    model, params, clean, corr = _setup()
    rec = [("blocks.2.hook_resid_post", None, None)]
    got = path_patching.path_patch(
        model,
        params,
        clean,
        corr,
        metric,
        rec,
        sender_layers=range(3),
        freeze_mlps=True,
        chunk_size=1,
    )
    want = _naive(
        model, params, clean, corr, "blocks.2.hook_resid_post", None, None, freeze_mlps=True
    )
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
    edges = path_patching.edge_patch(
        model, params, clean, corr, metric, receiver_heads=[(2, 1)], positions=[-1]
    )
    assert edges["edges"].shape == (1, 3, L, H) and np.isnan(edges["edges"][0, :, 2]).all()
    np.testing.assert_allclose(
        edges["edges"][0, 0, :2],
        got_q := path_patching.path_patch(
            model,
            params,
            clean,
            corr,
            metric,
            [("blocks.2.attn.hook_q", [1], [-1])],
            sender_layers=range(2),
        ),
        atol=1e-6,
    )
    assert got_q.shape == (2, H)
