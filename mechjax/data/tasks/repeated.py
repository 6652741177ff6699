"""Task generator `repeated` (work in progress)."""

from __future__ import annotations

from mechjax.data.tasks.base import Prompts, register


@register("repeated")
def repeated(n: int, seed: int = 0, **options) -> Prompts:
    """Not implemented yet."""
    raise NotImplementedError("repeated: being written.")
