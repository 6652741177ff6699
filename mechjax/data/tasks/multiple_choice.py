"""Task generator `multiple_choice` (work in progress)."""

from __future__ import annotations

from mechjax.data.tasks.base import Prompts, register


@register("multiple_choice")
def multiple_choice(n: int, seed: int = 0, **options) -> Prompts:
    """Not implemented yet."""
    raise NotImplementedError("multiple_choice: being written.")
