"""Small string helpers shared by the circuit-task generators (ioi, greater_than, docstring,
colored_objects): template filling that records where each field landed, and option checks."""

from __future__ import annotations

import functools
import re
from typing import Any

_FIELD = re.compile(r"\{(\w+)\}")


@functools.lru_cache(maxsize=256)
def _parse(template: str) -> tuple[tuple[str, str, int], ...]:
    """(literal, field, 1 if the literal ends in a space) triples; the last field is ""."""
    parts, last = [], 0
    for m in _FIELD.finditer(template):
        lit = template[last : m.start()]
        parts.append((lit, m.group(1), int(lit.endswith(" "))))
        last = m.end()
    parts.append((template[last:], "", 0))
    return tuple(parts)


def fill(template: str, values: dict[str, str]) -> tuple[str, dict[str, tuple[int, int]]]:
    """Fills `{field}`s of `template` with `values`; returns the text and field -> char span.

    A field's span covers its value plus the single space before it, if any (so it is the text
    of the word token, e.g. `" Mary"`). A field used twice keeps the span of its first use.
    """
    out, spans, pos = [], {}, 0
    for lit, field, space in _parse(template):
        out.append(lit)
        pos += len(lit)
        if field:
            value = values[field]
            out.append(value)
            spans.setdefault(field, (pos - space, pos + len(value)))
            pos += len(value)
    return "".join(out), spans


def end_span(text: str) -> tuple[int, int]:
    """Char span of the last word of `text` with its leading space (the prediction position)."""
    end = len(text.rstrip())
    if end == 0:
        raise ValueError(f"end_span: {text!r} has no word.")
    cut = max(text.rfind(" ", 0, end), text.rfind("\n", 0, end), text.rfind("\t", 0, end))
    # include the separating space: it belongs to the word's token (" to")
    return (cut if cut >= 0 and text[cut] == " " else cut + 1), end


def check_options(task: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`defaults` updated by `options`; a ValueError names any option the task does not take."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"{task}: unknown option(s) {unknown}; valid options: {sorted(defaults)}.")
    return {**defaults, **options}


def check_choice(task: str, name: str, value: Any, valid: tuple) -> None:
    """ValueError naming the option and its valid values unless `value` is one of `valid`."""
    if value not in valid:
        raise ValueError(f"{task}: option {name}={value!r} is invalid; valid values: {valid}.")


def check_int(task: str, name: str, value: Any, lo: int, hi: int) -> None:
    """ValueError unless `value` is an int in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{task}: option {name}={value!r} must be an int in [{lo}, {hi}].")
