"""A real-language corpus available offline on every machine: the Python standard library.

`python_files()` lists the `.py` files of the running interpreter's standard library
(site-packages excluded, since it differs with what is installed), deduplicated by content,
in a fixed order, and split into train / held-out by a hash of the file's relative path, so
the split does not depend on the order files are found in. `tokenize_files` turns them into
one token stream with `<|endoftext|>` between files.

The corpus depends on the Python version (3.11 here): a zoo model records the version and a
fingerprint of the file list it was trained on.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig

import numpy as np

from mechjax.data.tokenizer import BOS

_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", "idlelib", "lib2to3", "turtledemo"}


def stdlib_dir() -> str:
    """The running interpreter's standard-library folder, or `$MECHJAX_STDLIB` where set (a
    copy of another interpreter's, so that a zoo model's corpus and tokenizer are rebuilt
    exactly under a different Python version)."""
    root = os.environ.get("MECHJAX_STDLIB")
    if root is not None and not os.path.isdir(root):
        raise FileNotFoundError(
            f"MECHJAX_STDLIB={root!r} is not a folder (unset it to use the "
            "running interpreter's standard library)."
        )
    return root or sysconfig.get_paths()["stdlib"]


def _heldout(rel: str, heldout_every: int) -> bool:
    h = int.from_bytes(hashlib.sha1(rel.encode()).digest()[:4], "little")
    return h % heldout_every == 0


def python_files(
    split: str = "train", root: str | None = None, heldout_every: int = 20, max_bytes: int = 200_000
) -> list[str]:
    """Paths of the deduplicated standard-library `.py` files of `split`.

    Args:
      split: "train", "heldout" (about 1 / `heldout_every` of the files) or "all".
      root: folder to scan; defaults to :func:`stdlib_dir`.
      heldout_every: one file in this many (by path hash) is held out.
      max_bytes: files larger than this are skipped (generated tables, not code).

    Returns:
      Sorted absolute paths. Files with identical contents are kept once (the first path in
      sorted order), so the train and held-out splits never share a file's text.
    """
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"python_files: split={split!r}; valid splits are train, heldout, all.")
    root = root or stdlib_dir()
    if not os.path.isdir(root):
        raise FileNotFoundError(f"python_files: {root!r} is not a folder.")
    paths = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in _SKIP_DIRS)
        paths += [os.path.join(d, f) for f in files if f.endswith(".py")]
    seen, out = set(), []
    for p in sorted(paths):
        try:
            if os.path.getsize(p) > max_bytes:
                continue
            with open(p, "rb") as f:
                data = f.read()
        except OSError:
            continue
        digest = hashlib.sha1(data).hexdigest()
        if digest in seen or not data.strip():
            continue
        seen.add(digest)
        held = _heldout(os.path.relpath(p, root), heldout_every)
        if split == "all" or (split == "heldout") == held:
            out.append(p)
    return out


def read_texts(paths: list[str]) -> list[str]:
    """File contents as text (undecodable bytes replaced)."""
    out = []
    for p in paths:
        with open(p, encoding="utf-8", errors="replace") as f:
            out.append(f.read())
    return out


def fingerprint(paths: list[str], root: str | None = None) -> str:
    """A short hash of the file list and contents (to record what a model was trained on)."""
    root = root or stdlib_dir()
    h = hashlib.sha1()
    for p in paths:
        h.update(os.path.relpath(p, root).encode())
        with open(p, "rb") as f:
            h.update(hashlib.sha1(f.read()).digest())
    return h.hexdigest()[:12]


def tokenize_texts(texts: list[str], tokenizer, dtype=np.uint16) -> np.ndarray:
    """One token stream: `<|endoftext|>` before every text. `[n_tokens]`."""
    bos = tokenizer.token_to_id(BOS)
    if bos is None:
        raise ValueError(f"tokenize_texts: the tokenizer has no {BOS!r} token.")
    if tokenizer.get_vocab_size() > np.iinfo(dtype).max + 1:
        dtype = np.int32
    parts = []
    for enc in tokenizer.encode_batch(texts, add_special_tokens=False):
        parts.append(np.asarray([bos] + enc.ids, dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype)
