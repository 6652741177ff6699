"""Synthetic task generators: pure JAX, jittable, keyed by (key, step)."""

from mechjax.data import fewshot, repeated_tokens
from mechjax.data.fewshot import EVALUATORS, FewShot

__all__ = ["EVALUATORS", "FewShot", "fewshot", "repeated_tokens"]
