"""Task generator `factual` (work in progress)."""

from __future__ import annotations

from mechjax.data.tasks.base import Prompts, register


@register("factual")
def factual(n: int, seed: int = 0, **options) -> Prompts:
    """Not implemented yet."""
    raise NotImplementedError("factual: being written.")
