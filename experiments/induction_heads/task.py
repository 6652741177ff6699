"""Induction-head formation (Singh et al. 2024) and induction heads on repeated tokens.

`build(config) -> Task` for `mechjax run configs/induction_heads/{fewshot,tokens}.py`.
`config.task.kind` picks the task:

* "fewshot": the paper's few-shot relabelling task and model; clamps from
  `config.task.clamps` / `config.task.conditions` (see `clamps.py`); evaluates the four
  evaluators, induction strength and previous-token score per head; the report gives the
  formation step (first eval with train loss < 0.4 ln 2) per model.
* "tokens": a 2-layer attention-only LM on repeated random tokens; evaluates the standard
  induction and previous-token scores per head and the loss on the first vs second copy.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp

import mechjax as mj
from experiments.induction_heads import clamps as C
from experiments.induction_heads import measures as M
from experiments.induction_heads import report as R
from mechjax.analysis.metrics import next_token_loss
from mechjax.data import EVALUATORS, FewShot, repeated_tokens
from mechjax.train import ConfigError, ModelSpec, Task

EVAL_SEED_OFFSET = 1_000_003  # eval sets are fixed, drawn from a key disjoint from training


def fewshot_data(t) -> FewShot:
    """The `FewShot` task of `config.task`."""
    n_train = t.get("n_train_pairs", None)
    return FewShot(
        dim=t.dim,
        n_classes=sum(t.class_split),
        n_exemplars=sum(t.exemplar_split),
        class_split=tuple(t.class_split),
        exemplar_split=tuple(t.exemplar_split),
        n_labels=t.n_labels,
        n_train_pairs=None if n_train in (None, 0) else n_train,
        exemplar_noise=t.exemplar_noise,
        latent_dim=t.get("latent_dim", 0),
        feature_scale=t.get("feature_scale", 1.0),
        data_seed=t.data_seed,
    )


def fewshot_model_config(t) -> mj.TransformerConfig:
    """The paper's model: 2 layers x 8 heads, d_model 64, attention-only, RoPE, pre-LN."""
    return mj.TransformerConfig(
        d_model=t.d_model,
        n_layers=t.n_layers,
        n_heads=t.n_heads,
        d_head=t.d_model // t.n_heads,
        d_vocab=t.n_labels,
        d_input=t.dim,
        n_ctx=5,
        attn_only=True,
        normalization_type="LN",
        positional_embedding_type="rotary",
        rotary_base=10000.0,
        attn_bias=False,
        unembed_bias=True,
        name="singh2024-fewshot",
    )


def paper_init(model, key, inputs):
    """Initialisation of the official code: lecun-normal q/k/v/o and unembed, labels N(0, 0.02).

    mechjax's default is N(0, 0.02) for every matrix; the paper's attention weights are ~6x
    larger (std 1/sqrt(64)), which changes how fast the phase change comes.
    """
    params = mj.init(model, key, inputs)
    keys = iter(jax.random.split(jax.random.fold_in(key, 1), 64))
    lecun = jax.nn.initializers.lecun_normal(in_axis=-2, out_axis=-1)

    def redraw(path, x):
        name = path[-1].key
        if name in ("W_Q", "W_K", "W_V"):  # [head, d_model, d_head]: fan_in d_model
            return lecun(next(keys), x.shape, x.dtype)
        if name == "W_O":  # [head, d_head, d_model]: fan_in = n_heads * d_head
            flat = lecun(next(keys), (x.shape[0] * x.shape[1], x.shape[2]), x.dtype)
            return flat.reshape(x.shape)
        if name == "W_U":
            return lecun(next(keys), x.shape, x.dtype)
        if name == "W_E":
            return 0.02 * jax.random.truncated_normal(next(keys), -2.0, 2.0, x.shape, x.dtype)
        return x

    return jax.tree_util.tree_map_with_path(redraw, params)


def _conditions(t):
    conds = t.get("conditions", None) or (t.get("clamps", "") or "none",)
    if isinstance(conds, str):
        conds = (conds,)
    names = t.get("condition_names", None) or tuple(
        "none" if c.strip() in ("", "none") else f"c{i}" for i, c in enumerate(conds)
    )
    if len(names) != len(conds):
        raise ConfigError(
            f"config.task.condition_names has {len(names)} names for {len(conds)} conditions"
        )
    return tuple(conds), tuple(names)


def model_name(condition: str, seed: int, n_seeds: int) -> str:
    """A model's name in a run: its condition, with `_s{seed}` when the run has several seeds."""
    return condition if n_seeds == 1 else f"{condition}_s{seed}"


def parse_model_name(name: str) -> tuple[str, int | None]:
    """(condition, seed) of a `model_name`; seed None for a single-seed run's model."""
    cond, sep, seed = name.rpartition("_s")
    return (cond, int(seed)) if sep and seed.isdigit() else (name, None)


def _seeds(t):
    seeds = t.get("seeds", 1)
    return tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)


def _graft(t):
    """(model, params, layer) of the run to graft from, or None."""
    if not t.get("graft_dir", ""):
        return None
    model, params = mj.load_run(t.graft_dir)
    return model, params, int(t.graft_layer)


def build_fewshot(config) -> Task:
    t = config.task
    data = fewshot_data(t)
    cfg = fewshot_model_config(t)
    model = mj.Transformer(cfg)
    conds, names = _conditions(t)
    seeds = _seeds(t)
    parsed = [C.parse(c, cfg.n_layers, cfg.n_heads) for c in conds]
    models = tuple(
        ModelSpec(model_name(name, s, len(seeds)), seed=s, cond=cond)
        for (name, cond), s in itertools.product(zip(names, parsed), seeds)
    )
    interventions = C.make_interventions(parsed, cfg.n_layers, cfg.d_vocab, _graft(t))
    example = jax.tree.map(lambda x: x[:1], data.sample(jax.random.key(0), 1)["inputs"])
    batch_size = config.batch_size

    def init(key):
        if t.init == "paper":
            return paper_init(model, key, example)
        return mj.init(model, key, example)

    def batch(key, step):
        del step  # the runner's key is already specific to (seed, step)
        return data.sample(key, batch_size, "train")

    def loss(params, batch, ivs):
        logits, _ = C.forward(model, params, batch, ivs)
        ce, acc = M.query_ce(logits, batch["target"])
        return ce, {"acc": acc}

    def evaluate(params, cond, key, step_or_ivs):
        del key  # the paper evaluates fixed eval sets
        if isinstance(step_or_ivs, tuple):
            ivs = step_or_ivs
        else:
            ivs = interventions(cond, step_or_ivs)
        out = {}
        for i, name in enumerate(EVALUATORS):
            ek = jax.random.fold_in(jax.random.key(config.seed + EVAL_SEED_OFFSET), i)
            eb = data.sample(ek, t.eval_size, name)
            want = "blocks.*.attn.hook_pattern" if name == "train" else None
            logits, cache = C.forward(model, params, eb, ivs, cache=want)
            out[f"{name}/loss"], out[f"{name}/acc"] = M.query_ce(logits, eb["target"])
            if name == "train":
                pats = [cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(cfg.n_layers)]
                out["ih_strength"] = jnp.stack(
                    [M.induction_strength(p, eb["label_pos"], eb["distractor_pos"]) for p in pats]
                )  # [layer, head]
                out["pt_score"] = jnp.stack([M.fewshot_prev_token_score(p) for p in pats])
        return out

    return Task(
        model=model,
        init=init,
        batch=batch,
        loss=loss,
        interventions=interventions,
        evaluate=evaluate,
        models=models,
        report=R.fewshot_report,
    )


def build_tokens(config) -> Task:
    t = config.task
    pos = t.get("positional_embedding_type", "standard")
    cfg = mj.TransformerConfig.from_variant(
        t.variant, d_vocab=t.d_vocab, positional_embedding_type=pos
    )
    model = mj.Transformer(cfg)
    L, bos = t.length, (t.bos if t.get("bos", -1) >= 0 else None)
    min_len = t.get("min_length", 0) or None  # varying repeat length defeats positional shortcuts
    offset = 1 if bos is not None else 0
    if offset + 2 * L > cfg.n_ctx:
        raise ConfigError(
            f"config.task.length={L}: 2 * length (+BOS) = {offset + 2 * L} exceeds the model's "
            f"n_ctx={cfg.n_ctx}; use a smaller length or a variant with a longer context."
        )
    # training rows: `context` tokens (default 2 * length), repeating their first l tokens
    context = int(t.get("context", 0) or 2 * L)
    if not 2 * L <= context <= cfg.n_ctx - offset:
        raise ConfigError(
            f"config.task.context={context} must be in 2 * length = {2 * L} .. n_ctx - BOS = "
            f"{cfg.n_ctx - offset}."
        )
    distances = tuple(int(d) for d in t.get("eval_lengths", ()) or ())
    bad = [d for d in distances if not 2 <= d or offset + 2 * d > cfg.n_ctx]
    if bad:
        raise ConfigError(
            f"config.task.eval_lengths {bad}: each repeat length d needs 2 <= d and "
            f"2 * d (+BOS) <= n_ctx={cfg.n_ctx}."
        )
    seeds = _seeds(t)
    models = tuple(ModelSpec(f"seed{s}" if len(seeds) > 1 else "model", s) for s in seeds)
    batch_size = config.batch_size

    if context != 2 * L and min_len is None:
        raise ConfigError("config.task.context needs config.task.min_length (varying repeats)")

    def init(key):
        return mj.init(model, key, jnp.zeros((1, offset + context), jnp.int32))

    def batch(key, step):
        del step
        ctx = None if context == 2 * L else context
        toks = repeated_tokens.sample(key, batch_size, L, cfg.d_vocab, bos, min_len, context=ctx)
        return {"tokens": toks}

    lm_loss = next_token_loss  # [batch, pos-1]

    def loss(params, batch, ivs):
        logits, _ = mj.run(model, params, batch["tokens"], interventions=ivs)
        return lm_loss(logits, batch["tokens"]).mean(), {}

    def evaluate(params, cond, key, step_or_ivs):
        ivs = step_or_ivs if isinstance(step_or_ivs, tuple) else ()
        ek = jax.random.key(config.seed + EVAL_SEED_OFFSET)
        tokens = repeated_tokens.sample(ek, t.eval_size, L, cfg.d_vocab, bos)
        logits, cache = mj.run(
            model, params, tokens, cache="blocks.*.attn.hook_pattern", interventions=ivs
        )
        per_pos = lm_loss(logits, tokens)  # [batch, pos-1]; entry i predicts token i+1
        first = per_pos[:, offset : offset + L - 1].mean()  # predictions inside copy 1
        second = per_pos[:, offset + L : offset + 2 * L - 1].mean()  # inside copy 2
        pats = [cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(cfg.n_layers)]
        out = {
            "loss": per_pos.mean(),
            "loss_first": first,
            "loss_second": second,
            "induction_score": jnp.stack([M.induction_score(p, L, offset) for p in pats]),
            "pt_score": jnp.stack([M.prev_token_score(p) for p in pats]),
        }
        for d in distances:  # d random tokens repeated once: induction at distance d
            toks = repeated_tokens.sample(
                jax.random.fold_in(ek, d), t.eval_size, d, cfg.d_vocab, bos
            )
            lg, c = mj.run(
                model, params, toks, cache="blocks.*.attn.hook_pattern", interventions=ivs
            )
            pp = lm_loss(lg, toks)
            out[f"by_distance/loss_first/{d}"] = pp[:, offset : offset + d - 1].mean()
            out[f"by_distance/loss_second/{d}"] = pp[:, offset + d : offset + 2 * d - 1].mean()
            out[f"by_distance/induction_score/{d}"] = jnp.stack(
                [M.induction_score(c[f"blocks.{i}.attn.hook_pattern"], d, offset)
                 for i in range(cfg.n_layers)]
            )  # fmt: skip
        return out

    return Task(
        model=model,
        init=init,
        batch=batch,
        loss=loss,
        evaluate=evaluate,
        models=models,
        report=lambda records, workdir: R.tokens_report(records, workdir, math.log(cfg.d_vocab)),
    )


def build(config) -> Task:
    """The Task for `config.task.kind` ("fewshot" or "tokens")."""
    kind = config.task.get("kind", "fewshot")
    if kind == "fewshot":
        return build_fewshot(config)
    if kind == "tokens":
        return build_tokens(config)
    raise ConfigError(f"config.task.kind={kind!r}; valid kinds: 'fewshot', 'tokens'")


__all__ = ["build", "build_fewshot", "build_tokens", "fewshot_data", "fewshot_model_config"]
