"""Task generator `arithmetic` (work in progress)."""

from __future__ import annotations

from mechjax.data.tasks.base import Prompts, register


@register("arithmetic")
def arithmetic(n: int, seed: int = 0, **options) -> Prompts:
    """Not implemented yet."""
    raise NotImplementedError("arithmetic: being written.")
