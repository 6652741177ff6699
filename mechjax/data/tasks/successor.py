"""Task generator `successor` (work in progress)."""

from __future__ import annotations

from mechjax.data.tasks.base import Prompts, register


@register("successor")
def successor(n: int, seed: int = 0, **options) -> Prompts:
    """Not implemented yet."""
    raise NotImplementedError("successor: being written.")
