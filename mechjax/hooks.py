"""Site naming and the hook point used inside every module.

A *site* is a named activation, spelled as in TransformerLens
(``blocks.3.attn.hook_z``). Every module calls ``hooks(name, x, axes)`` at each of
its sites; ``axes`` names the site's axes from the vocabulary in
:mod:`mechjax.models` (e.g. :data:`mechjax.models.axes.Z`), declared right where
the site is defined. The :class:`HookContext` passed down the forward pass decides
what happens there: apply the interventions that address the site, then keep the
(possibly modified) value if the cache asked for it. Two families may use the same
suffix with different axes (an LM's ``hook_logits`` is ``[batch, pos, d_vocab]``,
a ViT's ``[batch, class]``): axes belong to the site, not to its name.

With no interventions and nothing cached, ``hooks(name, x, axes)`` returns ``x``
untouched during tracing, so the compiled program is the plain model.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable


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


def resolve_cache_spec(cache, names: Iterable[str]) -> tuple[str, ...] | None:
    """A cache spec -> the exact site names it selects, in forward order (host-side).

    Resolving on the host makes the jit cache key a tuple of strings: a predicate (a fresh
    lambda per call) or a list never causes a recompile. Unknown names raise ValueError.
    """
    spec = normalize_cache_spec(cache)
    if spec is None:
        return None
    names = list(names)
    if callable(spec):
        return tuple(n for n in names if spec(n))
    for s in spec:
        if not any(matches(s, n) for n in names):
            near = closest(s, names)
            hint = f" Closest valid sites: {', '.join(near)}." if near else ""
            raise ValueError(f"cache: {s!r} matches no site of this model.{hint}")
    return tuple(n for n in names if any(matches(s, n) for s in spec))


def cache_wants(spec: CacheSpec, name: str) -> bool:
    if spec is None:
        return False
    if callable(spec):
        return bool(spec(name))
    return any(matches(s, name) for s in spec)


class HookContext:
    """Carries interventions and the cache request through one forward pass.

    Created fresh inside each traced call; modules call it at their sites. It also records
    each site's declared axes (`self.axes`), which is how `mj.site_axes` learns them.
    """

    def __init__(self, interventions=(), cache: CacheSpec = None, record_all: bool = False):
        self.interventions = tuple(interventions)
        self.cache_spec = cache
        self.record_all = record_all
        self.cache: dict = {}
        self.axes: dict[str, tuple[str, ...] | None] = {}
        self._memo: dict[str, tuple] = {}

    def _for_site(self, name: str) -> tuple:
        if name not in self._memo:
            self._memo[name] = tuple(iv for iv in self.interventions if matches(iv.site, name))
        return self._memo[name]

    def active(self, name: str) -> bool:
        """True if something reads or writes site `name` (so it must be materialised)."""
        return self.record_all or cache_wants(self.cache_spec, name) or bool(self._for_site(name))

    def child(self, interventions=None) -> HookContext:
        """A fresh context with this one's cache request, for a block run inside a transform.

        Under `nn.remat` / `nn.scan` the block is traced in an inner trace: create the child
        inside the transformed function (with the interventions passed in as its arguments),
        return `child.cache` as an output, and `merge` it here (see `mechjax.models.stacking`).
        """
        ivs = self.interventions if interventions is None else interventions
        return HookContext(ivs, self.cache_spec, record_all=self.record_all)

    def merge(self, cache: dict, axes: dict | None = None) -> None:
        """Adds a child's cached values (returned out of a transform) and recorded axes."""
        self.axes.update(axes or {})
        self.cache.update(cache)

    def __call__(self, name: str, x, axes: tuple[str, ...] | None = None):
        if axes is not None and len(axes) != x.ndim:
            raise ValueError(f"site {name!r} declares axes {axes} but has shape {x.shape}")
        self.axes[name] = None if axes is None else tuple(axes)
        for iv in self._for_site(name):
            x = iv.apply(x, name, axes)
        if self.record_all or cache_wants(self.cache_spec, name):
            self.cache[name] = x
        return x


class _NoHooks:
    """The context used when a module is applied without one: every site is a no-op."""

    def active(self, name: str) -> bool:
        return False

    def __call__(self, name: str, x, axes=None):
        return x


NO_HOOKS = _NoHooks()
