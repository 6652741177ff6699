"""Site naming and the hook point used inside every module.

A *site* is a named activation, spelled as in TransformerLens
(``blocks.3.attn.hook_z``). Every module calls ``hooks(name, x)`` at each of
its sites; the :class:`HookContext` passed down the forward pass decides what
happens there: apply the interventions that address the site, then keep the
(possibly modified) value if the cache asked for it.

With no interventions and nothing cached, ``hooks(name, x)`` returns ``x``
untouched during tracing, so the compiled program is the plain model.

Axis vocabulary (used in every shape comment in the package):

    batch    independent sequences
    pos      sequence position (``q_pos`` / ``k_pos`` inside attention patterns)
    head     query heads; ``kv_head`` for key/value heads (fewer under GQA)
    d_model  residual stream width
    d_head   per-head width of q, k, v, z
    d_mlp    MLP hidden width (the "neurons")
    d_vocab  output vocabulary
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable

# Axes of each site, keyed by the last component of its name. Architectures with
# extra sites add entries with `register_site_axes`.
SITE_AXES: dict[str, tuple[str, ...]] = {
    "hook_embed": ("batch", "pos", "d_model"),
    "hook_pos_embed": ("batch", "pos", "d_model"),
    "hook_resid_pre": ("batch", "pos", "d_model"),
    "hook_resid_mid": ("batch", "pos", "d_model"),
    "hook_resid_post": ("batch", "pos", "d_model"),
    "hook_attn_out": ("batch", "pos", "d_model"),
    "hook_mlp_out": ("batch", "pos", "d_model"),
    "hook_q": ("batch", "pos", "head", "d_head"),
    "hook_k": ("batch", "pos", "kv_head", "d_head"),
    "hook_v": ("batch", "pos", "kv_head", "d_head"),
    "hook_rot_q": ("batch", "pos", "head", "d_head"),
    "hook_rot_k": ("batch", "pos", "kv_head", "d_head"),
    "hook_z": ("batch", "pos", "head", "d_head"),
    "hook_attn_scores": ("batch", "head", "q_pos", "k_pos"),
    "hook_pattern": ("batch", "head", "q_pos", "k_pos"),
    "hook_result": ("batch", "pos", "head", "d_model"),
    "hook_pre": ("batch", "pos", "d_mlp"),
    "hook_pre_linear": ("batch", "pos", "d_mlp"),
    "hook_post": ("batch", "pos", "d_mlp"),
    "hook_scale": ("batch", "pos", "one"),
    "hook_normalized": ("batch", "pos", "d_model"),
    "hook_logits": ("batch", "pos", "d_vocab"),
}

# Sites that cost extra compute when materialised; modules only build them when
# a cache or an intervention asks for them.
EXPENSIVE_SITES = ("hook_result",)


def register_site_axes(suffix: str, axes: tuple[str, ...]) -> None:
    """Declares the axes of a new kind of site (for architectures with extra parts)."""
    SITE_AXES[suffix] = tuple(axes)


def site_axes(name: str) -> tuple[str, ...]:
    """Axis names of site `name`, e.g. ('batch', 'pos', 'head', 'd_head')."""
    suffix = name.rsplit(".", 1)[-1]
    if suffix not in SITE_AXES:
        raise KeyError(
            f"No axis vocabulary for site {name!r}; register it with register_site_axes."
        )
    return SITE_AXES[suffix]


def is_pattern(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def matches(spec: str, name: str) -> bool:
    """Exact name or shell-style wildcard (`blocks.*.attn.hook_z`)."""
    return fnmatch.fnmatchcase(name, spec) if is_pattern(spec) else spec == name


def closest(name: str, valid: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, list(valid), n=n, cutoff=0.4)


CacheSpec = None | tuple[str, ...] | Callable[[str], bool]


def normalize_cache_spec(cache) -> CacheSpec:
    """None, a name, a sequence of names / wildcards, True (everything) or a predicate."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return ("*",)
    if isinstance(cache, str):
        return (cache,)
    if callable(cache):
        return cache
    cache = tuple(cache)
    for c in cache:
        if not isinstance(c, str):
            raise TypeError(f"cache entries must be site names or wildcards, got {c!r}")
    return cache


def cache_wants(spec: CacheSpec, name: str) -> bool:
    if spec is None:
        return False
    if callable(spec):
        return bool(spec(name))
    return any(matches(s, name) for s in spec)


class HookContext:
    """Carries interventions and the cache request through one forward pass.

    Created fresh inside each traced call; modules call it at their sites.
    """

    def __init__(self, interventions=(), cache: CacheSpec = None, record_all: bool = False):
        self.interventions = tuple(interventions)
        self.cache_spec = cache
        self.record_all = record_all
        self.cache: dict = {}
        self._memo: dict[str, tuple] = {}

    def _for_site(self, name: str) -> tuple:
        if name not in self._memo:
            self._memo[name] = tuple(iv for iv in self.interventions if matches(iv.site, name))
        return self._memo[name]

    def active(self, name: str) -> bool:
        """True if something reads or writes site `name` (so it must be materialised)."""
        return self.record_all or cache_wants(self.cache_spec, name) or bool(self._for_site(name))

    def __call__(self, name: str, x):
        for iv in self._for_site(name):
            x = iv.apply(x, name)
        if self.record_all or cache_wants(self.cache_spec, name):
            self.cache[name] = x
        return x


class _NoHooks:
    """The context used when a module is applied without one: every site is a no-op."""

    def active(self, name: str) -> bool:
        return False

    def __call__(self, name: str, x):
        return x


NO_HOOKS = _NoHooks()
