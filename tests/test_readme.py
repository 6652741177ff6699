"""The README's ```python examples run as written, in order, in one namespace.

Blocks fenced as ```py are sketches with placeholders and are not run.
"""

import importlib.util
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _missing_peers(code: str) -> list[str]:
    """The test-only peers (transformers, and torch under it) a block imports that are not
    installed, as on the CI's Python 3.12 leg; such a block is left out, the others run."""
    if not re.search(r"^\s*(from|import) transformers\b", code, flags=re.M):
        return []
    return [m for m in ("transformers", "torch") if importlib.util.find_spec(m) is None]


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.skipif(not README.exists(), reason="no README")
def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _blocks()
    assert blocks, "README has no python examples"
    namespace: dict = {}
    for i, code in enumerate(blocks):
        if _missing_peers(code):
            continue
        try:
            exec(compile(code, f"README.md[python block {i}]", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the message is the point
            raise AssertionError(f"README python block {i} failed: {e!r}\n{code}") from e
