"""Small string helpers shared by the circuit-task generators (ioi, greater_than, docstring,
colored_objects): template filling that records where each field landed, and option checks."""

from __future__ import annotations

import re
from typing import Any

_FIELD = re.compile(r"\{(\w+)\}")
_LAST_WORD = re.compile(r"\s?\S+$")


def fill(template: str, values: dict[str, str]) -> tuple[str, dict[str, tuple[int, int]]]:
    """Fills `{field}`s of `template` with `values`; returns the text and field -> char span.

    A field's span covers its value plus the single space before it, if any (so it is the text
    of the word token, e.g. `" Mary"`). A field used twice keeps the span of its first use.
    """
    out, spans, pos, last = [], {}, 0, 0
    for m in _FIELD.finditer(template):
        lit = template[last : m.start()]
        out.append(lit)
        pos += len(lit)
        value = values[m.group(1)]
        start = pos - 1 if lit.endswith(" ") else pos
        spans.setdefault(m.group(1), (start, pos + len(value)))
        out.append(value)
        pos += len(value)
        last = m.end()
    out.append(template[last:])
    return "".join(out), spans


def end_span(text: str) -> tuple[int, int]:
    """Char span of the last word of `text` with its leading space (the prediction position)."""
    m = _LAST_WORD.search(text)
    if m is None:
        raise ValueError(f"end_span: {text!r} has no word.")
    return m.start(), m.end()


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
