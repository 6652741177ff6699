"""`mj.generate`: autoregressive decoding with a KV cache, interventions active at every step.

One jitted program per (batch, total length) shape (and per set of static options: greedy
or sampled, top_k, whether top_p / eos_id / a cache are used, the interventions' structure):
a prefill forward over the prompt fills fixed-size KV buffers `[batch, total_len, kv_head,
d_head]` per layer, then a `lax.while_loop` decodes one token per step against them.

Models: `mj.Transformer` language models, and `mj.EncoderDecoder` with a token decoder: the
prompt is `{"encoder": encoder inputs, "decoder": decoder prompt tokens [batch, pos]}`, the
encoder runs once, each decoder layer's cross-attention keys / values of its output are
computed once (`EncoderDecoder.cross_kv`), and the decoder's self-attention decodes against
its KV cache (`EncoderDecoder.decode`); "the sequence" below is then the decoder's, and the
returned tokens are the decoder's `[batch, prompt_len + max_new_tokens]`. Learned-query
decoders (`n_queries > 0`) decode in one non-causal pass and cannot generate.

Semantics (what the tests check):

* Greedy decoding (`temperature=0`) equals the naive loop "run `mj.run` on the growing
  sequence, append the argmax of the last logits", token for token, with or without
  interventions.
* Interventions act on every forward (prefill and each step) with the semantics of `mj.run`
  on the full `[batch, prompt_len + max_new_tokens]` sequence: position-independent specs
  (steering vectors, head / neuron ablations, values broadcasting over the position axis)
  apply to every position; `positions=` selections (indices or masks `[total_len]` /
  `[batch, total_len]`) and values whose position axis has length `total_len` address the
  *absolute slots* of the returned sequence (slot 0 is the first column of `prompt`, pads
  included), and each step takes its slice. Encoder-decoder: interventions on the sites
  computed once (every `encoder.*` site, `decoder.blocks.{L}.cross_attn.hook_k / hook_v`)
  apply once, as in `mj.run` on the encoder input (their positions are encoder positions,
  never sliced); the decoder's sites behave as above (a cross-attention pattern is
  `[batch, head, q_pos (decoder slot), k_pos (encoder)]`). Attention patterns / scores
  inside generation have `k_pos = total_len` (slots not yet written are masked, pattern 0),
  so a full `[total_len, total_len]` pattern value applies row by row and should be causal
  (weight above the diagonal would land on unwritten, zero, values). `mj.hook` functions
  see each step's slice and their values are not sliced (at the sites computed once they
  run once). `mj.from_batch` / `mj.two_pass` are not supported here.
* Left padding: `attention_mask` `[batch, prompt_len]` (1 = real token) must be 0s then 1s
  per row; each row's positions count its real tokens (`cumsum(mask) - 1`), for RoPE and
  learned positions alike, and pad keys are masked, so a padded row continues exactly as
  the same row unpadded.
* `eos_id`: a row stops once it has produced `eos_id`; every later slot of that row holds
  `eos_id`. The loop ends early when every row has stopped (unless a cache is requested).
* Sampling (`temperature > 0`): logits / temperature, then `top_k` (keep the k largest),
  then `top_p` (keep the smallest set of most likely tokens whose probability reaches p),
  then a categorical draw with `jax.random.fold_in(key, step)`: the same key gives the
  same tokens.
* `cache=`: site names / wildcards / predicate as in `mj.run`; returns `(tokens, cache)`
  with each cached site laid out over the full sequence (position axis `total_len`, slot t
  = the activation of the forward that processed slot t; attention patterns
  `[batch, head, total_len, total_len]`). Every slot is computed (one extra forward for
  the last token, no early stop), so for an unpadded prompt the cache matches
  `mj.run(model, params, tokens, cache=...)` up to float rounding. Sites computed once
  (encoder-decoder, above) are recorded once, with the shapes of `mj.run`.
* Left padding of an encoder-decoder: `attention_mask={"encoder": [batch, enc_pos],
  "decoder": [batch, prompt_len]}` (either key optional); the encoder's mask is its padding
  mask (any pattern, it also masks the cross-attention keys), the decoder's follows the
  left-padding rules above.

`mj.speculative_generate` (`mechjax.speculative`) is the greedy, tree-verified variant.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mechjax import hooks as _hooks
from mechjax.interventions import Intervention, needs_resolution, validate_all
from mechjax.models.axes import POS_AXES
from mechjax.models.encoder_decoder import EncoderDecoder
from mechjax.models.transformer import Transformer, dtype_of
from mechjax.run import _variables, as_arrays, site_info


def _pos_axis(axes):
    if axes is None:
        return None
    return next((i for i, a in enumerate(axes) if a in POS_AXES), None)


def _at_step(iv: Intervention, shape, axes, start, n: int, total: int) -> Intervention:
    """`iv` as it applies to the slots `start .. start + n - 1` of the full sequence."""
    pa = _pos_axis(axes)
    if pa is None or n == total:  # n == total only when start == 0 (a full-length prefill)
        return iv
    changes = {}
    if iv.pos_idx is not None:
        m = np.zeros(total, bool)
        m[list(iv.pos_idx)] = True
        changes.update(pos_idx=None, pos_mask=jax.lax.dynamic_slice_in_dim(m, start, n, 0))
    elif iv.pos_mask is not None:
        pm = jnp.asarray(iv.pos_mask)
        changes["pos_mask"] = jax.lax.dynamic_slice_in_dim(pm, start, n, pm.ndim - 1)
    if iv.op != "fn":
        for field in ("value", "mask"):
            arr = getattr(iv, field)
            if arr is None or np.ndim(arr) == 0:
                continue
            ax = pa - (len(shape) - np.ndim(arr))
            if ax >= 0 and np.shape(arr)[ax] == total:
                changes[field] = jax.lax.dynamic_slice_in_dim(jnp.asarray(arr), start, n, ax)
    return dataclasses.replace(iv, **changes) if changes else iv


class _StepHooks(_hooks.HookContext):
    """A `HookContext` for one KV-cached forward over slots `start .. start + n - 1`."""

    def __init__(self, interventions, cache, start, n: int, total: int):
        super().__init__(interventions, cache)
        self.start, self.n, self.total = start, n, total

    def __call__(self, name: str, x, axes=None):
        if axes is not None and len(axes) != x.ndim:
            raise ValueError(f"site {name!r} declares axes {axes} but has shape {x.shape}")
        self.axes[name] = None if axes is None else tuple(axes)
        for iv in self._for_site(name):
            x = _at_step(iv, x.shape, axes, self.start, self.n, self.total).apply(x, name, axes)
        if _hooks.cache_wants(self.cache_spec, name):
            self.cache[name] = x
        return x


@dataclasses.dataclass(frozen=True)
class _Opts:
    max_new: int
    greedy: bool
    top_k: int | None
    use_top_p: bool
    has_eos: bool
    cache_names: tuple[str, ...] | None


def _pick(logits, key, step, opts: _Opts, temperature, top_p):
    """Next token `[batch]` from last-position logits `[batch, d_vocab]`."""
    logits = logits.astype(jnp.float32)
    if opts.greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    lg = logits / temperature
    if opts.top_k is not None:
        kth = jax.lax.top_k(lg, opts.top_k)[0][..., -1:]
        lg = jnp.where(lg < kth, -jnp.inf, lg)
    if opts.use_top_p:
        srt = jnp.sort(lg, axis=-1)[..., ::-1]  # descending
        probs = jax.nn.softmax(srt, axis=-1)
        keep = (jnp.cumsum(probs, axis=-1) - probs) < top_p  # always keeps the top token
        thresh = jnp.min(jnp.where(keep, srt, jnp.inf), axis=-1, keepdims=True)
        lg = jnp.where(lg < thresh, -jnp.inf, lg)
    return jax.random.categorical(jax.random.fold_in(key, step), lg, axis=-1).astype(jnp.int32)


def _write_cache(bufs, vals, axes, start, total):
    """Writes each site's step values into its full-sequence buffer along the position axis."""
    out = dict(bufs)
    for name, x in vals.items():
        pa = _pos_axis(axes.get(name))
        if name not in out:
            shape = list(x.shape)
            shape[pa] = total
            out[name] = jnp.zeros(shape, x.dtype)
        idx = [jnp.zeros((), jnp.int32)] * x.ndim
        idx[pa] = jnp.asarray(start, jnp.int32)
        out[name] = jax.lax.dynamic_update_slice(out[name], x.astype(out[name].dtype), idx)
    return out


def kv_buffers(model, batch: int, total: int):
    """Zero KV buffers for `model.decode`: one `{"k", "v"}` `[batch, total, kv_head, d_head]`
    per layer of the decoding stack (the stack the readout reads)."""
    st = model.stack(model.readout().stack)
    dt = dtype_of(model.cfg.dtype)
    shape = (batch, total, st.n_kv_heads, st.d_head)
    return [{"k": jnp.zeros(shape, dt), "v": jnp.zeros(shape, dt)} for _ in range(st.n_layers)]


def _generate(
    model,
    opts: _Opts,
    params,
    prompt,
    mask,
    memory_inputs,
    memory_mask,
    interventions,
    key,
    temperature,
    top_p,
    eos,
):
    B, P = prompt.shape
    T = P + opts.max_new
    variables = _variables(params)
    kv = kv_buffers(model, B, T)
    mask = mask.astype(jnp.int32)
    key_mask = jnp.concatenate([mask, jnp.ones((B, opts.max_new), jnp.int32)], axis=1)
    n_real = mask.sum(axis=1)  # [batch]
    pad = eos if opts.has_eos else jnp.zeros((), jnp.int32)
    site_cache, memory = {}, {}
    if isinstance(model, EncoderDecoder):
        # The encoder and the cross-attention keys / values run once, on full-size inputs
        # (n == total: no position slicing; encoder positions are not decoder slots).
        ctx = _StepHooks(interventions, opts.cache_names, 0, T, T)
        enc_mask = None if memory_mask is None else {"encoder": memory_mask}
        memory_kv = model.apply(
            variables, {"encoder": memory_inputs}, ctx, enc_mask, method=EncoderDecoder.cross_kv
        )
        memory = {"memory_kv": memory_kv, "memory_mask": memory_mask}
        site_cache = dict(ctx.cache)

    def forward(tokens, pos_ids, kv, start, n):
        ctx = _StepHooks(interventions, opts.cache_names, start, n, T)
        logits, kv = model.apply(
            variables,
            tokens,
            ctx,
            key_mask,
            pos_ids=pos_ids,
            kv_cache=kv,
            cache_index=start,
            method=type(model).decode,
            **memory,
        )
        return logits[:, -1], kv, ctx.cache, ctx.axes

    pos0 = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
    logits, kv, vals, axes = forward(prompt, pos0, kv, jnp.zeros((), jnp.int32), P)
    if opts.cache_names:
        site_cache = _write_cache(site_cache, vals, axes, 0, T)

    out = jnp.concatenate([prompt.astype(jnp.int32), jnp.full((B, opts.max_new), pad)], axis=1)
    tok = _pick(logits, key, 0, opts, temperature, top_p)
    done = jnp.zeros((B,), bool)
    if opts.has_eos:
        done = tok == eos
    out = out.at[:, P].set(tok)
    n_fwd = opts.max_new + (1 if opts.cache_names else 0)  # forwards of slots P .. P+n_fwd-1

    def cond(carry):
        s, _, _, _, done, _ = carry
        go = s < n_fwd
        if opts.has_eos and not opts.cache_names:
            go = go & ~jnp.all(done)
        return go

    def body(carry):
        s, out, tok, kv, done, site_cache = carry
        slot = P + s - 1  # the slot of `tok`, fed forward now
        pos_ids = (n_real + s - 1)[:, None]
        logits, kv, vals, axes = forward(tok[:, None], pos_ids, kv, slot, 1)
        if opts.cache_names:
            site_cache = _write_cache(site_cache, vals, axes, slot, T)
        new = _pick(logits, key, s, opts, temperature, top_p)
        if opts.has_eos:
            new = jnp.where(done, eos, new)
            done = done | (new == eos)
        in_range = s < opts.max_new
        write_at = jnp.minimum(P + s, T - 1)
        new = jnp.where(in_range, new, out[:, write_at])
        out = jax.lax.dynamic_update_slice(out, new[:, None], (jnp.zeros((), jnp.int32), write_at))
        return s + 1, out, new, kv, done, site_cache

    carry = (jnp.ones((), jnp.int32), out, tok, kv, done, site_cache)
    _, out, _, _, _, site_cache = jax.lax.while_loop(cond, body, carry)
    return out, site_cache


_generate_jit = jax.jit(_generate, static_argnums=(0, 1))


def check_lm(model, what: str = "mj.generate") -> None:
    """Host-side: `model` is a model whose tokens can be generated (a causal token LM, or an
    encoder-decoder with a token decoder); ValueError / TypeError naming the problem."""
    if isinstance(model, EncoderDecoder):
        c = model.cfg
        if c.learned_queries:
            raise ValueError(
                f"{what}: this EncoderDecoder decodes n_queries={c.n_queries} learned queries "
                f"in one non-causal pass; learned-query decoders cannot generate tokens"
            )
        if c.vocab_out == 0:
            raise ValueError(f"{what} needs a token readout (this model has d_vocab_out=0)")
    elif isinstance(model, Transformer):
        c = model.cfg
        if model.head is not None:
            raise ValueError(
                f"{what} needs a language-model readout (this model has a head module)"
            )
        if c.d_vocab <= 0:
            raise ValueError(f"{what} needs a token vocabulary (cfg.d_vocab > 0)")
        if not c.causal:
            raise ValueError(f"{what} needs a causal model (cfg.causal is False)")
    else:
        raise TypeError(
            f"{what} supports mj.Transformer decoder LMs and mj.EncoderDecoder token "
            f"decoders, got {type(model).__name__}"
        )
    if c.vocab_out > c.d_vocab:
        raise ValueError(
            f"{what} feeds sampled tokens back in: d_vocab_out={c.vocab_out} must not exceed "
            f"d_vocab={c.d_vocab}"
        )


def check_eos(eos_id, vocab: int) -> None:
    if eos_id is not None:
        if isinstance(eos_id, bool) or not isinstance(eos_id, (int, np.integer)):
            raise TypeError(f"eos_id must be an int token id or None, got {eos_id!r}")
        if not 0 <= eos_id < vocab:
            raise ValueError(f"eos_id {eos_id} is outside the vocabulary 0..{vocab - 1}")


def _check_prompt(model, prompt, attention_mask, max_new_tokens, what="prompt"):
    """Host-side checks of a decoder prompt `[batch, pos]` (and its left-padding mask)."""
    c = model.cfg
    if isinstance(prompt, dict) or not hasattr(prompt, "shape"):
        raise TypeError(f"{what} must be int token ids [batch, pos], got {type(prompt).__name__}")
    if prompt.ndim != 2:
        raise ValueError(f"{what} must be int token ids [batch, pos], got shape {prompt.shape}")
    if not jnp.issubdtype(prompt.dtype, jnp.integer):
        raise ValueError(f"{what} must hold int token ids, got dtype {prompt.dtype}")
    B, P = prompt.shape
    if B < 1 or P < 1:
        raise ValueError(
            f"{what} must have at least one row and one token, got shape {prompt.shape}"
        )
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)):
        raise TypeError(f"max_new_tokens must be an int, got {max_new_tokens!r}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    total = P + int(max_new_tokens)
    if c.positional_embedding_type == "standard" and total > c.n_ctx:
        raise ValueError(
            f"prompt length {P} + max_new_tokens {max_new_tokens} = {total} exceeds the model's "
            f"n_ctx={c.n_ctx} (learned positions)"
        )
    mwhat = "attention_mask" if what == "prompt" else "attention_mask['decoder']"
    if attention_mask is not None:
        m = np.asarray(attention_mask)
        if m.shape != (B, P):
            raise ValueError(
                f"{mwhat} must be [batch, prompt_len] = {(B, P)} (1 = real token), "
                f"got shape {m.shape}"
            )
        if not np.isin(m, (0, 1)).all():
            raise ValueError(f"{mwhat} must hold only 0 (pad) and 1 (real token)")
        m = m.astype(np.int32)
        if (np.diff(m, axis=1) < 0).any() or (m[:, -1] != 1).any():
            bad = sorted(set(np.nonzero((np.diff(m, axis=1) < 0).any(1) | (m[:, -1] != 1))[0]))
            raise ValueError(
                f"{mwhat} rows {bad} are not left-padded: mj.generate needs each row "
                f"to be 0s (pads) then 1s (at least one real token, ending at the last column)"
            )
    return B, P, total


def split_prompt(model, prompt, attention_mask, max_new_tokens):
    """Host-side: validates `prompt` for `model` and splits it into the decoder's tokens
    `[batch, prompt_len]` (numpy), their left-padding mask (or None), and for an
    encoder-decoder the encoder inputs and padding mask (else None, None)."""
    if prompt is None:
        raise TypeError("prompt must be int token ids [batch, pos], got None")
    prompt, attention_mask = as_arrays(prompt), as_arrays(attention_mask)
    if not isinstance(model, EncoderDecoder):
        if isinstance(prompt, dict):
            raise TypeError(
                f"prompt must be int token ids [batch, pos] for {type(model).__name__}, got a "
                f"dict with keys {sorted(prompt)}"
            )
        prompt = np.asarray(prompt)
        _check_prompt(model, prompt, attention_mask, max_new_tokens)
        model.check_inputs(prompt, attention_mask)  # token ids inside the vocabulary
        return prompt, attention_mask, None, None
    want = "{'encoder': encoder inputs, 'decoder': decoder prompt tokens [batch, pos]}"
    if not isinstance(prompt, dict) or set(prompt) != {"encoder", "decoder"}:
        got = f"keys {sorted(prompt)}" if isinstance(prompt, dict) else type(prompt).__name__
        raise ValueError(f"an EncoderDecoder's prompt is a dict {want}; got {got}")
    if attention_mask is not None and not isinstance(attention_mask, dict):
        raise ValueError(
            "an EncoderDecoder's attention_mask is a dict {'encoder': [batch, enc_pos], "
            "'decoder': [batch, prompt_len]} (either key optional), got "
            f"{type(attention_mask).__name__}"
        )
    attention_mask = attention_mask or {}
    dec = np.asarray(prompt["decoder"])
    _check_prompt(
        model, dec, attention_mask.get("decoder"), max_new_tokens, what="prompt['decoder']"
    )
    model.check_inputs(prompt, attention_mask or None)
    return dec, attention_mask.get("decoder"), prompt["encoder"], attention_mask.get("encoder")


def _memory_sites(model, params, memory_inputs, memory_mask) -> set[str]:
    """The sites an encoder-decoder computes once per generation (`cross_kv`), abstractly."""
    ctx = _hooks.HookContext((), None, record_all=True)
    enc_mask = None if memory_mask is None else {"encoder": memory_mask}
    jax.eval_shape(
        lambda p, i, m: model.apply(
            _variables(p), {"encoder": i}, ctx, m, method=EncoderDecoder.cross_kv
        ),
        params,
        memory_inputs,
        enc_mask,
    )
    return set(ctx.axes)


def generate(
    model,
    params,
    prompt,
    max_new_tokens,
    *,
    interventions=(),
    temperature=0.0,
    top_k=None,
    top_p=None,
    key=None,
    eos_id=None,
    attention_mask=None,
    cache=None,
):
    """Generates `max_new_tokens` tokens after `prompt` with interventions active.

    Args:
      model, params: an `mj.Transformer` (GPT-2 / NeoX / Llama incl. GQA; `scan_layers`
        models are unrolled first) or an `mj.EncoderDecoder` with a token decoder, and its
        variables.
      prompt: int tokens `[batch, prompt_len]` (a nested list works), left-padded when rows
        have different lengths; for an encoder-decoder `{"encoder": ..., "decoder": int
        [batch, prompt_len]}` (the decoder's prompt, e.g. BART's decoder start token).
      max_new_tokens: int >= 1; `prompt_len + max_new_tokens <= n_ctx` for learned positions.
      interventions: `mj.patch/clamp/ablate/steer/hook` specs, validated against the sites
        of the full `[batch, prompt_len + max_new_tokens]` sequence (see the module doc for
        how position selections apply).
      temperature: 0 = greedy (argmax; top_k / top_p / key unused); > 0 = sampling from
        `key` (required).
      top_k: keep the k most likely tokens (int, 1..d_vocab) before sampling.
      top_p: nucleus sampling threshold in (0, 1].
      eos_id: token id that ends a row; the rest of that row is filled with `eos_id`.
        Without it, every row runs `max_new_tokens` steps.
      attention_mask: `[batch, prompt_len]`, 1 = real token, 0 = left pad; for an
        encoder-decoder a dict `{"encoder": [batch, enc_pos], "decoder": [batch,
        prompt_len]}` (either key optional).
      cache: sites to record at every step (as in `mj.run`); see the module doc.

    Returns:
      int32 tokens `[batch, prompt_len + max_new_tokens]` (prompt included), or
      `(tokens, cache)` when `cache` is given.

    Everything is validated on the host before compiling; one compilation serves every
    prompt / mask / key / intervention value of the same shapes and options.
    """
    from mechjax.models.stacking import unrolled

    check_lm(model)
    model, params = unrolled(model, params)
    prompt, attention_mask, memory_inputs, memory_mask = split_prompt(
        model, prompt, attention_mask, max_new_tokens
    )
    B, P = prompt.shape
    total = P + int(max_new_tokens)
    vocab = model.cfg.vocab_out

    # sampling options
    try:
        temperature = float(temperature)
    except TypeError:
        raise TypeError(f"temperature must be a number, got {temperature!r}") from None
    if not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    greedy = temperature == 0.0
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
            raise TypeError(f"top_k must be an int or None, got {top_k!r}")
        if not 1 <= top_k <= vocab:
            raise ValueError(f"top_k must be in 1..{vocab} (the vocabulary size), got {top_k}")
        top_k = int(top_k)
    if top_p is not None:
        top_p = float(top_p)
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if greedy:
        top_k, top_p = None, None
        key = jax.random.key(0) if key is None else key
    elif key is None:
        raise ValueError("sampling (temperature > 0) needs a PRNG key: key=jax.random.key(...)")
    check_eos(eos_id, vocab)

    # interventions and cache, checked against the full sequence's sites
    interventions = tuple(interventions)
    if needs_resolution(interventions):
        raise NotImplementedError(
            "mj.generate does not take mj.from_batch / mj.two_pass entries: their values would "
            "depend on tokens not generated yet. Compute the values on the prompt first, e.g. "
            "`_, cache = mj.run(model, params, prompt, cache=SITES)`, and pass plain "
            "interventions (mj.patch / mj.steer / mj.ablate / mj.clamp) built from them."
        )
    full = np.zeros((B, total), np.int32)
    once = set()
    if memory_inputs is None:
        info = site_info(model, full, np.ones((B, total), np.int32))
    else:
        enc_mask = None if memory_mask is None else {"encoder": memory_mask}
        info = site_info(model, {"encoder": memory_inputs, "decoder": full}, enc_mask)
        if cache is not None:
            once = _memory_sites(model, params, memory_inputs, memory_mask)
    shapes = {k: s for k, (s, _) in info.items()}
    axes = {k: a for k, (_, a) in info.items()}
    validate_all(interventions, shapes, axes)
    names = _hooks.resolve_cache_spec(cache, shapes)
    if names is not None:
        bad = [n for n in names if n not in once and _pos_axis(axes.get(n)) is None]
        if bad:
            raise ValueError(f"cache: sites {bad} have no position axis to record per step")

    opts = _Opts(
        max_new=int(max_new_tokens),
        greedy=greedy,
        top_k=top_k,
        use_top_p=top_p is not None,
        has_eos=eos_id is not None,
        cache_names=names or None,
    )
    mask = (
        jnp.ones((B, P), jnp.int32)
        if attention_mask is None
        else jnp.asarray(np.asarray(attention_mask), jnp.int32)
    )
    tokens, site_cache = _generate_jit(
        model,
        opts,
        params,
        jnp.asarray(prompt, jnp.int32),
        mask,
        memory_inputs,
        None if memory_mask is None else jnp.asarray(np.asarray(memory_mask), jnp.int32),
        interventions,
        key,
        jnp.float32(temperature if not greedy else 1.0),
        jnp.float32(1.0 if top_p is None else top_p),
        jnp.int32(0 if eos_id is None else eos_id),
    )
    if cache is not None:
        return tokens, site_cache
    return tokens
