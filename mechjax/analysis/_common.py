"""Shared plumbing for the analyses: partial forwards, static wrappers, host-side checks,
and the protocol read generically (stacks, node names, params and norms of a site prefix).

What the analyses read from a model, beyond the protocol's methods (`mechjax.models`):

* the sites of a layer `{stack}.{L}.`: `hook_resid_pre/mid/post`, `hook_mlp_out`, and per
  attention module `a` of `Stack.attn`: `{a}.hook_q/k/v/z/pattern/...` and its output
  `hook_{a}_out` (`hook_attn_out`, `hook_cross_attn_out`);
* norms: a norm module's sites are `{prefix}.hook_scale` and `{prefix}.hook_normalized`; the
  norm feeding a site is the last one whose `hook_normalized` comes before it in forward
  order inside the same layer (`norm_feeding`);
* parameters (`module_params`): a site prefix names its module's params by the flax
  convention of modules kept in a list in `setup`: dotted components, a layer number joined
  to the list's name, e.g. `decoder.blocks.1.cross_attn` -> `params["decoder"]["blocks_1"]
  ["cross_attn"]`; a scanned stack (`params["blocks"]` stacked over a leading layer axis,
  `mechjax.models.stacking`) gives the layer's slice. The attention params have the
  TransformerLens names and layouts (`W_Q [head, d_model, d_head]`, `W_O [head, d_head,
  d_model]`, ...), the norms `w` (and `b` for LayerNorm);
* module fields (`module_of`): the flax module object whose `prefix` field is a site prefix
  (e.g. a norm's `eps`), found by intercepting one abstract forward.
"""

from __future__ import annotations

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mechjax import hooks as _hooks
from mechjax.models.protocol import is_model
from mechjax.run import _variables, as_arrays, check_inputs, site_info, site_shapes

__all__ = [
    "Static",
    "as_arrays",
    "check_inputs",
    "forward",
    "full_forward",
    "resume",
    "site_info",
    "site_shapes",
    "split_metric",
]


class Static:
    """Hashes by identity, so a user function (metric) can be a static jit argument."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return id(self.value)

    def __eq__(self, other):
        return isinstance(other, Static) and other.value is self.value


def variables(params):
    return _variables(params)


def resume(
    model,
    params,
    inputs,
    stack,
    layer,
    state,
    interventions=(),
    *,
    cache=None,
    attention_mask=None,
    positions=None,
):
    """Traced partial forward through the protocol: everything from `stack` layer `layer` on.

    `state` holds the values of `model.resume_sites(stack, layer)`. Returns `(output, cache)`.
    """
    ctx = _hooks.HookContext(interventions, _hooks.normalize_cache_spec(cache))
    out = model.apply(
        variables(params),
        inputs,
        state,
        ctx,
        attention_mask,
        stack=stack,
        layer=layer,
        positions=positions,
        method="resume",
    )
    return out, ctx.cache


def full_forward(model, params, inputs, interventions=(), *, cache=None, attention_mask=None):
    """Traced full forward with the given interventions; `(logits, cache)`."""
    ctx = _hooks.HookContext(interventions, _hooks.normalize_cache_spec(cache))
    logits = model.apply(variables(params), inputs, ctx, attention_mask)
    return logits, ctx.cache


def split_metric(metric):
    """(fn on position-restricted logits, positions or None) for `metric`.

    Metrics built with `mechjax.analysis.metrics` carry the positions they read; the
    sweeps then unembed only there (exactly the same value, far fewer FLOPs).
    """
    positions = getattr(metric, "positions", None)
    if positions is None:
        return metric, None
    return metric.fn, tuple(int(p) for p in positions)


def check_model(model, what: str):
    """The model's config, after checking it implements the protocol (`mechjax.models`)."""
    if not is_model(model):
        raise TypeError(
            f"{what}: {type(model).__name__} does not implement the mechjax model protocol "
            f"(check_inputs, example_inputs, layer_stacks, resume_sites, resume; see "
            f"mechjax.models)."
        )
    return getattr(model, "cfg", None)


def check_cache(cache, names, what: str, shapes=None):
    """Raises a ValueError naming missing/mis-shaped sites of `cache`."""
    if not isinstance(cache, dict):
        raise TypeError(
            f"{what}: clean_cache must be the dict returned by mj.run, got {type(cache).__name__}"
        )
    missing = [n for n in names if n not in cache]
    if missing:
        spec = _common_wildcard(missing)
        raise ValueError(
            f"{what}: clean_cache lacks {missing[:4]}{' ...' if len(missing) > 4 else ''}; "
            f"run the clean tokens with mj.run(model, params, clean_tokens, cache={spec!r})."
        )
    if shapes is not None:
        for n in names:
            if tuple(np.shape(cache[n])) != tuple(shapes[n]):
                raise ValueError(
                    f"{what}: clean_cache[{n!r}] has shape {tuple(np.shape(cache[n]))}, but the "
                    f"corrupted run has {tuple(shapes[n])} there; clean and corrupted inputs must "
                    f"have the same [batch, pos]."
                )


def _common_wildcard(names):
    import re

    pats = sorted({re.sub(r"blocks\.\d+\.", "blocks.*.", n) for n in names})
    return pats[0] if len(pats) == 1 else tuple(pats)


def as_f32(x):
    return jnp.asarray(x, jnp.float32)


# -- the protocol, read generically ------------------------------------------------------------


def stacks(model):
    """`model.layer_stacks()` (forward order)."""
    return tuple(model.layer_stacks())


def stack_position(model, prefix: str) -> int:
    """Index of stack `prefix` in forward order (ValueError listing the stacks otherwise)."""
    for i, s in enumerate(stacks(model)):
        if s.prefix == prefix:
            return i
    model.stack(prefix)  # raises with the valid names
    raise AssertionError


def get_stack(model, stack, what: str = "analysis"):
    """The `Stack` named `stack` (default: the readout's stack, else the last one)."""
    if stack is None:
        ro = readout_of(model)
        stack = ro.stack if ro is not None else stacks(model)[-1].prefix
    if not isinstance(stack, str):
        stack = stack.prefix
    try:
        return model.stack(stack)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def readout_of(model):
    return model.readout() if hasattr(model, "readout") else None


def check_attn(st, attn: str, what: str):
    if attn not in st.attn:
        raise ValueError(
            f"{what}: stack {st.prefix!r} has no attention module {attn!r}; its attention "
            f"modules are {list(st.attn)}."
        )


def stack_label(model, st) -> str:
    """'' for a single-stack model; else the prefix without `.blocks` (`decoder`)."""
    if len(stacks(model)) == 1:
        return ""
    p = st if isinstance(st, str) else st.prefix
    return p[: -len(".blocks")] if p.endswith(".blocks") else p


HEAD_LETTERS = {"attn": "H", "cross_attn": "X"}


def head_letter(attn: str) -> str:
    """Node-name letter of an attention module: `attn` -> H, `cross_attn` -> X."""
    return HEAD_LETTERS.get(attn, f"[{attn}]")


def _label(model, st, name: str) -> str:
    lab = stack_label(model, st)
    return f"{lab}.{name}" if lab else name


def head_name(model, st, layer: int, attn: str, head: int) -> str:
    """`L1H3` (single stack), `decoder.L1H3`, `decoder.L1X3` (cross-attention head 3)."""
    return _label(model, st, f"L{layer}{head_letter(attn)}{head}")


def mlp_name(model, st, layer: int) -> str:
    """`MLP1` (single stack) or `decoder.MLP1`."""
    return _label(model, st, f"MLP{layer}")


def attn_out_site(st, layer: int, attn: str) -> str:
    """The output site of attention module `attn`: `{stack}.{L}.hook_{attn}_out`."""
    return st.site(layer, f"hook_{attn}_out")


def attn_heads(st, attn: str, kind: str = "q") -> int:
    """Heads of `attn` at site hook_{kind} (kv heads for k, v)."""
    return st.n_kv_heads if kind in ("k", "v") else st.n_heads


@functools.lru_cache(maxsize=64)
def _forward_order(model) -> tuple[str, ...]:
    order: list[str] = []
    inputs = model.example_inputs()

    def fwd(p, i):
        ctx = _hooks.HookContext((), None, record_all=True)
        model.apply(variables(p), i, ctx)
        order.extend(n for n in ctx.axes if n not in order)
        return jnp.zeros(())

    params = jax.eval_shape(lambda i: model.init(jax.random.key(0), i), inputs)
    jax.eval_shape(fwd, params, inputs)
    return tuple(order)


def site_order(model) -> list[str]:
    """Every site in the order the forward calls them (on `model.example_inputs()`).

    (`site_info` is keyed in sorted order: `jax.eval_shape` sorts the cache dict.)
    """
    return list(_forward_order(model))


def norm_feeding(model, site: str) -> str | None:
    """Prefix of the norm whose output feeds `site` (see the module docstring), or None.

    The last `*.hook_normalized` before `site` in forward order among the sites of the same
    layer (`{stack}.{L}.`); None if there is none (a stack without norms).
    """
    found = model.stack_of(site)
    if found is None:
        raise ValueError(f"{site!r} is not inside a layer stack")
    st, layer = found
    head = f"{st.prefix}.{layer}."
    order = site_order(model)
    if site not in order:
        raise ValueError(f"{site!r} is not a site of this model")
    norm = None
    for n in order[: order.index(site)]:
        if n.startswith(head) and n.endswith(".hook_normalized"):
            norm = n[: -len(".hook_normalized")]
    return norm


def _params_root(params):
    return variables(params)["params"]


def module_params(model, params, prefix: str):
    """The params subtree of the module whose sites live under `prefix` (see module doc).

    `decoder.blocks.1.cross_attn` -> `params["decoder"]["blocks_1"]["cross_attn"]`;
    `blocks.3.attn` of a scanned stack -> `params["blocks"]["attn"]` at layer 3.
    """
    node = _params_root(params)
    parts = prefix.split(".") if prefix else []
    layer_index = None
    i = 0
    walked = []
    while i < len(parts):
        name = parts[i]
        nxt = parts[i + 1] if i + 1 < len(parts) else None
        if nxt is not None and nxt.isdigit():
            joined = f"{name}_{nxt}"
            if isinstance(node, dict) and joined in node:
                node, i = node[joined], i + 2
                walked.append(joined)
                continue
            if isinstance(node, dict) and name in node and layer_index is None:
                node, i = node[name], i + 2  # scanned: stacked over a leading layer axis
                layer_index = int(nxt)
                walked.append(name)
                continue
        if not isinstance(node, dict) or name not in node:
            keys = sorted(node) if isinstance(node, dict) else type(node).__name__
            raise ValueError(
                f"no params for site prefix {prefix!r}: {'/'.join(walked) or 'params'} has no "
                f"{name!r} (keys: {keys}). mechjax maps a site prefix to flax module names "
                f"(layer L of list `blocks` -> `blocks_L`); see mechjax.analysis._common."
            )
        node, i = node[name], i + 1
        walked.append(name)
    if layer_index is not None:
        node = jax.tree.map(lambda a: a[layer_index], node)
    return node


def param(model, params, prefix: str, name: str, default=None, required: bool = True):
    """One parameter of the module at `prefix` (e.g. `W_O` of `decoder.blocks.1.cross_attn`)."""
    sub = module_params(model, params, prefix)
    if name in sub:
        return sub[name]
    if not required:
        return default
    raise ValueError(f"the module at {prefix!r} has no parameter {name!r} (it has {sorted(sub)}).")


@functools.lru_cache(maxsize=64)
def _module_index(model):
    """Site prefix -> module object, for every module with a string `prefix` field."""
    found: dict = {}

    def interceptor(next_fun, args, kwargs, context):
        m = context.module
        p = getattr(m, "prefix", None)
        if isinstance(p, str) and context.method_name == "__call__":
            found.setdefault(p, m)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(interceptor):
        jax.eval_shape(lambda: model.init(jax.random.key(0), model.example_inputs()))
    return found


def module_of(model, prefix: str):
    """The module whose `prefix` field is `prefix` (a scan placeholder matches any layer)."""
    index = _module_index(model)
    if prefix in index:
        return index[prefix]
    for p, m in index.items():
        pat = re.escape(p).replace(re.escape("#"), r"\d+")
        if re.fullmatch(pat, prefix):
            return m
    raise ValueError(f"no module with site prefix {prefix!r} in {type(model).__name__}")


def norm_eps(model, prefix: str) -> float:
    """`eps` of the norm module at `prefix`."""
    eps = getattr(module_of(model, prefix), "eps", None)
    if eps is None:
        raise ValueError(f"the module at {prefix!r} has no eps field (not a norm?)")
    return float(eps)


def apply_norm(kind, x, w=None, b=None, eps=1e-5):
    """LayerNorm ("LN") / RMSNorm ("RMS") / None in fp32, as `mechjax.models.transformer.Norm`."""
    if kind is None:
        return x
    x = jnp.asarray(x, jnp.float32)
    if kind == "LN":
        x = x - x.mean(-1, keepdims=True)
    x = x / jnp.sqrt((x**2).mean(-1, keepdims=True) + eps)
    if w is not None:
        x = x * w
    if kind == "LN" and b is not None:
        x = x + b
    return x


def forward(
    model, params, inputs, interventions=(), *, cache=None, attention_mask=None, positions=None
):
    """Traced forward through the protocol; `(output, cache)`.

    With `positions` (static tuple), the per-position readout sees only those: the forward
    resumes at the first stack's layer 0 (`model.resume`), so `interventions` must be at
    sites of the layer stacks or after them (the state entering layer 0 is computed without
    them; everything after it is dead code for XLA).
    """
    if positions is None:
        return full_forward(
            model, params, inputs, interventions, cache=cache, attention_mask=attention_mask
        )
    first = stacks(model)[0].prefix
    need = tuple(model.resume_sites(first, 0))
    _, state = full_forward(model, params, inputs, cache=need, attention_mask=attention_mask)
    return resume(
        model,
        params,
        inputs,
        first,
        0,
        {n: state[n] for n in need},
        interventions,
        cache=cache,
        attention_mask=attention_mask,
        positions=positions,
    )


def metric_positions(metric, model, what: str = "analysis"):
    """(fn, positions) as `split_metric`, refusing positions on a pooled readout."""
    fn, positions = split_metric(metric)
    if positions is not None:
        ro = readout_of(model)
        if ro is not None and ro.pool is not None:
            raise ValueError(
                f"{what}: the metric reads positions {positions} (a metrics.logit_diff-style "
                f"LogitMetric), but {type(model).__name__}'s output is pooled "
                f"({ro.pool!r}: [batch, class]); use a function of the [batch, class] logits, "
                f"e.g. metrics.class_logit_diff."
            )
    return fn, positions
