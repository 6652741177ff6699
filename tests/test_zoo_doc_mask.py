"""`task.doc_mask`: zoo windows carry their documents as `mj.document_mask` segments."""

import jax
import jax.numpy as jnp
import numpy as np

from experiments.zoo import task as ZT


def _stream(seed=0, n_docs=400):
    """Documents `[0, 100 d + 1, 100 d + 2, ...]`: 0 is the BOS, a token names its document."""
    rng = np.random.default_rng(seed)
    parts = []
    for d in range(1, n_docs + 1):
        n = int(rng.integers(1, 40))
        parts.append(np.concatenate([[0], 100 * d + 1 + np.arange(n)]))
    return np.concatenate(parts).astype(np.int32)


def _doc_of(tokens, segments):
    """Per row: {segment: set of documents} and {document: set of segments} (BOS skipped)."""
    out = []
    for t, s in zip(np.asarray(tokens), np.asarray(segments)):
        by_seg, by_doc = {}, {}
        for tok, seg in zip(t, s):
            if tok == 0:
                continue
            by_seg.setdefault(int(seg), set()).add(int(tok) // 100)
            by_doc.setdefault(int(tok) // 100, set()).add(int(seg))
        out.append((by_seg, by_doc))
    return out


def test_segments_are_the_documents_also_in_repeated_rows():
    stream = jnp.asarray(_stream())
    batch = ZT.curriculum_batch((), stream, None, 16, 64, 40_000, 0.5, 4, bos=0)
    b = batch(jax.random.key(3), jnp.int32(0))
    toks, seg = np.asarray(b["tokens"]), np.asarray(b["segments"])
    assert toks.shape == seg.shape == (16, 64)
    for by_seg, by_doc in _doc_of(toks, seg):
        assert all(len(d) == 1 for d in by_seg.values())  # a segment holds one document
        assert all(len(s) == 1 for s in by_doc.values())  # a document is one segment
    # a BOS starts a new segment unless it is the first token of a copied repeat
    starts = (toks[:, 1:] == 0) & (seg[:, 1:] != seg[:, :-1])
    assert starts.sum() >= 0.9 * (toks[:, 1:] == 0).sum()
    # some rows hold several documents, so the mask is not vacuous
    assert max(len(by_seg) for by_seg, _ in _doc_of(toks, seg)) >= 3


def test_without_doc_mask_batches_have_no_segments():
    stream = jnp.asarray(_stream())
    b = ZT.curriculum_batch((), stream, None, 4, 32, 40_000, 0.5, 4)(
        jax.random.key(0), jnp.int32(0)
    )
    assert set(b) == {"tokens"}
    with_mask = ZT.curriculum_batch((), stream, None, 4, 32, 40_000, 0.5, 4, bos=0)(
        jax.random.key(0), jnp.int32(0)
    )
    np.testing.assert_array_equal(with_mask["tokens"], b["tokens"])  # same windows


def test_loss_stays_inside_documents():
    """The zoo loss with segments equals the per-document loss computed one document at a
    time (no attention or prediction across a BOS)."""
    import mechjax as mj

    cfg = mj.TransformerConfig.from_variant(  # RoPE, as the zoo: positions are relative
        "gpt2-tiny", d_vocab=40_100, n_ctx=64, positional_embedding_type="rotary"
    )
    model = mj.Transformer(cfg)
    params = mj.init(model, jax.random.key(1))
    toks = jnp.asarray(_stream(1)[:48][None])
    seg = ZT.doc_ids(toks[0], 0)[None]
    loss, _ = ZT.lm_loss(model)(params, {"tokens": toks, "segments": seg}, ())
    from mechjax.analysis.metrics import next_token_loss

    nll, n = 0.0, 0
    t = np.asarray(toks[0])
    starts = list(np.flatnonzero(t == 0)) + [len(t)]
    for a, b in zip(starts[:-1], starts[1:]):
        doc = jnp.asarray(t[a:b][None])
        if doc.shape[1] < 2:
            continue
        logits, _ = mj.run(model, params, doc)
        per = next_token_loss(logits, doc)
        nll, n = nll + float(per.sum()), n + per.size
    np.testing.assert_allclose(float(loss), nll / n, rtol=1e-5)
