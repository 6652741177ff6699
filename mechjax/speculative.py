"""`mj.speculative_generate`: greedy speculative decoding with tree attention (Medusa / Hydra).

Each step a drafter proposes a tree of candidate tokens; the base model verifies the whole
tree in ONE KV-cached forward and keeps the longest path it agrees with, so the output is
exactly the base model's greedy output (`mj.generate` with `temperature=0`), only in fewer
base forwards.

One step, for a row whose committed tokens fill cache slots `0 .. s-1`:

* the root is the base model's greedy next token (not yet in the cache) and `hidden` the
  base's last hidden state (after the final norm) at the last committed position; the
  drafter maps `(hidden, root)` to the tokens of the tree's nodes (`Tree.paths` order);
* the block `[root, node_1, ..., node_n]` is fed as one block of queries at slots
  `s .. s+n`; block token j attends to every committed (non-pad) slot and, within the
  block, to its tree ancestors and itself (`Tree.ancestors`, Medusa's tree attention
  mask: `Transformer.decode(tree_mask=...)`); its position is the root's position plus
  its depth;
* acceptance: a node is accepted iff its token equals the base's argmax at its parent and
  its parent is accepted (the root always is); the deepest accepted node ends the accepted
  path (first in node order among equally deep ones). The step emits the path's `L` node
  tokens plus the base's argmax after the path's last token (the next root), so every
  step emits `L + 1 >= 1` tokens;
* the K/V of the accepted path (root first) are gathered into the contiguous slots
  `s .. s+L`, so the cache holds what sequential decoding would have written (up to
  float rounding); later slots are overwritten by the next block.

The loop is a `lax.while_loop` inside one jit: one compilation per (batch, prompt length,
max_new_tokens, tree, drafter, eos or not) — the drafter and the tree are static (pass the
same drafter object to reuse the compilation; its parameters go in `drafter_params`, a
pytree argument, so new values never recompile). Rows run under `jax.vmap`: each row keeps
its own acceptance lengths and cache slots, and the batch runs until its slowest row is
done. No interventions and no site cache (use `mj.generate` for those).

A drafter is any jittable callable
`drafter(drafter_params, hidden [batch, d_model], next_token int [batch], tree) ->
int [batch, n_nodes]` (inside the loop `batch` is 1; a token outside the vocabulary is
never accepted). A drafter with a true attribute `reads_sequence` is called with
`hidden_seq=` `[batch, n_slots, d_model]` (the base's last hidden state at every committed
slot, gathered along the accepted paths like the K/V; slots `>= seq_len` hold junk),
`seq_len=` int `[batch]` (committed slots; `hidden` is slot `seq_len - 1`) and `seq_mask=`
`[batch, n_slots]` (0 at left pads) as keywords — what Hydra++'s prefix layer reads.
`mechjax.models.heads.Drafter(draft_model)` is the drafter of Medusa / Hydra / Hydra++
heads (`draft_tree`; sets `reads_sequence` for Hydra++).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mechjax.generate import check_eos, check_lm, kv_buffers, split_prompt
from mechjax.hooks import NO_HOOKS
from mechjax.models.heads.tree import Tree
from mechjax.models.transformer import Transformer
from mechjax.run import _variables


@dataclasses.dataclass(frozen=True)
class _Opts:
    max_new: int
    tree: Tree
    has_eos: bool
    sequence: bool  # the drafter also reads the hidden states of the whole sequence


def _tree_tables(tree: Tree):
    """Static verification tables over the block `[root, nodes...]` (block index = node + 1).

    Returns (block depth `[n+1]`, tree mask bool `[n+1, n+1]`, each node's parent's block
    index `[n]`, path table `[n+1, D+1]`: row j lists the block indices of the path from the
    root to block token j, root first, padded with j)."""
    n, D = tree.n_nodes, int(tree.depth.max())
    depth = np.concatenate([[0], tree.depth]).astype(np.int32)
    mask = np.zeros((n + 1, n + 1), bool)
    mask[:, 0] = True  # everyone sees the root
    mask[1:, 1:] = tree.ancestors
    parent = (tree.parent + 1).astype(np.int32)
    table = np.zeros((n + 1, D + 1), np.int32)
    for j in range(1, n + 1):
        anc = [i + 1 for i in np.nonzero(tree.ancestors[j - 1])[0]]
        anc.sort(key=lambda b: depth[b])  # root-to-node order
        row = [0, *anc]
        table[j] = row + [j] * (D + 1 - len(row))
    return depth, mask, parent, table


def _row(model, drafter, opts: _Opts, params, drafter_params, prompt, mask, eos):
    """One row (`prompt`, `mask`: `[prompt_len]`) -> (tokens `[total_len]`, stats)."""
    c, tree = model.cfg, opts.tree
    n, D = tree.n_nodes, int(tree.depth.max())
    depth, tree_mask, parent, table = (jnp.asarray(a) for a in _tree_tables(tree))
    ancestors = jnp.asarray(tree.ancestors)
    node_depth = jnp.asarray(tree.depth, jnp.int32)
    P = prompt.shape[0]
    T = P + opts.max_new
    # The last block starts at slot <= T - 2 and needs n + 1 slots.
    n_slots = T + n
    variables = _variables(params)
    prompt, mask = prompt[None].astype(jnp.int32), mask[None].astype(jnp.int32)  # [1, P]
    key_mask = jnp.concatenate([mask, jnp.ones((1, n_slots - P), jnp.int32)], axis=1)
    n_real = mask.sum()

    def forward(tokens, pos_ids, kv, start, **kw):
        return model.apply(
            variables,
            tokens,
            NO_HOOKS,
            key_mask,
            pos_ids=pos_ids,
            kv_cache=kv,
            cache_index=start,
            return_hidden=True,
            method=Transformer.decode,
            **kw,
        )

    zero = jnp.zeros((), jnp.int32)
    pos0 = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
    readout = tuple(range(P)) if opts.sequence else (P - 1,)
    logits, kv, hid = forward(prompt, pos0, kv_buffers(model, 1, n_slots), zero, positions=readout)
    tok = jnp.argmax(logits[:, -1], axis=-1).astype(jnp.int32)  # [1], the first root
    # the base's last hidden states per committed slot (the sequence drafter's input)
    hseq = jnp.zeros((1, n_slots if opts.sequence else 1, c.d_model), hid.dtype)
    if opts.sequence:
        hseq = hseq.at[:, :P].set(hid)
    out = jnp.zeros((1, T + D + 1), jnp.int32).at[:, :P].set(prompt).at[:, P].set(tok)
    done = (tok[0] == eos) if opts.has_eos else jnp.zeros((), bool)
    n_hist = max(opts.max_new - 1, 1)  # every step emits >= 1 token after the first
    carry = (
        jnp.ones((), jnp.int32),  # m: tokens emitted after the prompt
        out,
        tok,
        hid[:, -1],  # [1, d_model]
        hseq,  # [1, n_slots, d_model]
        kv,
        done,
        zero,  # steps
        jnp.zeros((n_hist,), jnp.int32),  # tokens emitted by each step
    )

    def cond(carry):
        m, done = carry[0], carry[6]
        return (m < opts.max_new) & ~done

    def body(carry):
        m, out, tok, hidden, hseq, kv, done, steps, hist = carry
        start = P + m - 1  # the root's slot; slots < start are committed
        if opts.sequence:
            seq = dict(hidden_seq=hseq, seq_len=start[None], seq_mask=key_mask)
            nodes = drafter(drafter_params, hidden, tok, tree, **seq)
        else:
            nodes = drafter(drafter_params, hidden, tok, tree)
        nodes = jnp.asarray(nodes).astype(jnp.int32)
        safe = jnp.clip(nodes, 0, c.d_vocab - 1)  # only for the embedding: never accepted
        block = jnp.concatenate([tok[:, None], safe], axis=1)  # [1, n+1]
        pos_ids = (n_real + m - 1 + depth)[None]  # [1, n+1]
        if c.positional_embedding_type == "standard":
            # beyond n_ctx only past the last returned slot: those outputs are discarded
            pos_ids = jnp.minimum(pos_ids, c.n_ctx - 1)
        logits, kv, hid = forward(block, pos_ids, kv, start, tree_mask=tree_mask)
        greedy = jnp.argmax(logits[0], axis=-1).astype(jnp.int32)  # [n+1]
        match = nodes[0] == greedy[parent]  # [n]
        accepted = ~jnp.any(ancestors & ~match[None, :], axis=1)  # the whole path matches
        score = jnp.where(accepted, node_depth, 0)
        best = jnp.argmax(score)
        L = score[best]
        last = jnp.where(L > 0, best + 1, 0)  # block index of the path's last token
        path = table[last]  # [D+1], root first
        bonus = greedy[last]
        d = jnp.arange(D + 1)
        path_tok = block[0, path]
        emit = jnp.where(d < L, jnp.roll(path_tok, -1), bonus)  # path[1..L], bonus, junk
        out = jax.lax.dynamic_update_slice(out, emit[None], (zero, start + 1))
        kv = [
            {
                name: jax.lax.dynamic_update_slice_in_dim(
                    buf,
                    jax.lax.dynamic_slice_in_dim(buf, start, n + 1, axis=1)[:, path],
                    start,
                    axis=1,
                )
                for name, buf in layer.items()
            }
            for layer in kv
        ]
        if opts.sequence:  # the accepted path's hidden states into slots start .. start+L
            hseq = jax.lax.dynamic_update_slice_in_dim(hseq, hid[:, path], start, axis=1)
        if opts.has_eos:
            done = jnp.any((emit == eos) & (d <= L))
        hist = hist.at[steps].set(L + 1)
        return m + L + 1, out, bonus[None], hid[:, last], hseq, kv, done, steps + 1, hist

    _, out, _, _, _, _, _, steps, hist = jax.lax.while_loop(cond, body, carry)
    out = out[0, :T]
    if opts.has_eos:  # every slot after a row's first generated eos holds eos
        hit = out[P:] == eos
        out = out.at[P:].set(jnp.where(jnp.cumsum(hit) - hit > 0, eos, out[P:]))
    return out, (steps, hist)


def _speculative(model, drafter, opts, params, drafter_params, prompt, mask, eos):
    def row(p, m):
        return _row(model, drafter, opts, params, drafter_params, p, m, eos)

    return jax.vmap(row)(prompt, mask)


_speculative_jit = jax.jit(_speculative, static_argnums=(0, 1, 2))


def as_tree(tree) -> Tree:
    """A `Tree`, a tree-like object with `.paths`, or a sequence of paths -> a `Tree`."""
    if isinstance(tree, Tree):
        t = tree
    elif hasattr(tree, "paths"):
        t = Tree(tree.paths)
    elif isinstance(tree, (str, bytes)) or not hasattr(tree, "__iter__"):
        raise ValueError(
            f"tree must be a Tree or a sequence of paths such as ((0,), (1,), (0, 0)), got {tree!r}"
        )
    else:
        t = Tree(tree)
    if t.n_nodes == 0:
        raise ValueError("tree has no nodes; give at least one path, e.g. ((0,),)")
    return t


def speculative_generate(
    model,
    params,
    prompt,
    max_new_tokens,
    *,
    drafter,
    tree,
    drafter_params=None,
    eos_id=None,
    attention_mask=None,
    return_stats=False,
):
    """Greedy generation verified by tree attention; tokens equal `mj.generate`'s greedy ones.

    Args:
      model, params: an `mj.Transformer` language model (GPT-2 / NeoX / Llama incl. GQA;
        `scan_layers` models are unrolled first) and its variables.
      prompt: int tokens `[batch, prompt_len]` (a nested list works), left-padded when rows
        have different lengths (with `attention_mask`, as in `mj.generate`).
      max_new_tokens: int >= 1; `prompt_len + max_new_tokens <= n_ctx` for learned positions.
      drafter: `drafter(drafter_params, hidden [batch, d_model], next_token [batch], tree)
        -> int [batch, n_nodes]`, jittable (see the module doc); static: the same object
        reuses the compilation. With `reads_sequence = True` it also gets the keywords
        `hidden_seq`, `seq_len`, `seq_mask` (Hydra++; `mechjax.models.heads.Drafter`).
      tree: a `mechjax.models.heads.Tree` or its paths (`((0,), (1,), (0, 0))`): path
        `(i_1, ..., i_d)` is a node at depth d; every prefix of a path must be a node.
      drafter_params: any pytree passed to the drafter (a leaf argument: no recompiles).
      eos_id: token id that ends a row; every later slot of the row holds `eos_id`.
      attention_mask: `[batch, prompt_len]`, 1 = real token, 0 = left pad.
      return_stats: also return a dict of per-row int/float arrays `[batch]`:
        `n_forwards` (base forwards: the prefill plus one per step), `n_steps`,
        `mean_accept_length` (tokens emitted per verification step, accepted nodes + 1;
        NaN for a row with no step), and `accept_lengths` `[batch, max(max_new_tokens - 1,
        1)]` (per step, 0 after the row's last step).

    Returns:
      int32 tokens `[batch, prompt_len + max_new_tokens]`, or `(tokens, stats)`.

    Everything is validated on the host before compiling (the drafter's output shape too,
    abstractly).
    """
    from mechjax.models.stacking import unrolled

    what = "mj.speculative_generate"
    check_lm(model, what)
    if not isinstance(model, Transformer):
        raise TypeError(f"{what} supports mj.Transformer decoder LMs, got {type(model).__name__}")
    model, params = unrolled(model, params)
    tree = as_tree(tree)
    if not callable(drafter):
        raise TypeError(
            f"drafter must be callable (params, hidden, next_token, tree), got {drafter!r}"
        )
    prompt, attention_mask, _, _ = split_prompt(model, prompt, attention_mask, max_new_tokens)
    B, P = prompt.shape
    check_eos(eos_id, model.cfg.vocab_out)

    c = model.cfg
    sequence = bool(getattr(drafter, "reads_sequence", False))
    hidden = jax.ShapeDtypeStruct((1, c.d_model), jnp.dtype(c.dtype))
    token = jax.ShapeDtypeStruct((1,), jnp.int32)
    n_slots = P + int(max_new_tokens) + tree.n_nodes
    seq = {}
    if sequence:
        seq = dict(
            hidden_seq=jax.ShapeDtypeStruct((1, n_slots, c.d_model), jnp.dtype(c.dtype)),
            seq_len=jax.ShapeDtypeStruct((1,), jnp.int32),
            seq_mask=jax.ShapeDtypeStruct((1, n_slots), jnp.int32),
        )
    try:
        shaped = jax.eval_shape(
            lambda p, h, t, kw: drafter(p, h, t, tree, **kw), drafter_params, hidden, token, seq
        )
    except Exception as e:
        extra = ", hidden_seq=, seq_len=, seq_mask=" if sequence else ""
        raise ValueError(
            f"drafter(drafter_params, hidden [1, {c.d_model}], next_token int [1], tree{extra}) "
            f"failed to trace: {type(e).__name__}: {e}"
        ) from e
    if not hasattr(shaped, "shape") or tuple(shaped.shape) != (1, tree.n_nodes):
        got = getattr(shaped, "shape", type(shaped).__name__)
        raise ValueError(
            f"drafter must return node tokens [batch, n_nodes] = [1, {tree.n_nodes}] for "
            f"hidden [1, {c.d_model}] and this tree, got {got}"
        )
    if not jnp.issubdtype(shaped.dtype, jnp.integer):
        raise ValueError(f"drafter must return int token ids, got dtype {shaped.dtype}")

    opts = _Opts(
        max_new=int(max_new_tokens), tree=tree, has_eos=eos_id is not None, sequence=sequence
    )
    mask = (
        jnp.ones((B, P), jnp.int32)
        if attention_mask is None
        else jnp.asarray(np.asarray(attention_mask), jnp.int32)
    )
    tokens, (steps, hist) = _speculative_jit(
        model,
        drafter,
        opts,
        params,
        drafter_params,
        jnp.asarray(prompt, jnp.int32),
        mask,
        jnp.int32(0 if eos_id is None else eos_id),
    )
    if not return_stats:
        return tokens
    steps_f = steps.astype(jnp.float32)
    emitted = hist.sum(axis=1).astype(jnp.float32)
    stats = {
        "n_forwards": steps + 1,
        "n_steps": steps,
        "mean_accept_length": jnp.where(steps > 0, emitted / jnp.maximum(steps_f, 1.0), jnp.nan),
        "accept_lengths": hist,
    }
    return tokens, stats
