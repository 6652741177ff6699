"""Task generator `needle` (work in progress)."""

from __future__ import annotations

from mechjax.data.tasks.base import Prompts, register


@register("needle")
def needle(n: int, seed: int = 0, **options) -> Prompts:
    """Not implemented yet."""
    raise NotImplementedError("needle: being written.")
