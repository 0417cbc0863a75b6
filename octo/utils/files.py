"""Atomic writes: a reader (or a resumed sweep) never sees a half-written file.

:func:`atomic_file` is the one temporary-file-then-rename writer of octo: it opens a temporary file beside the
target (same folder, so the rename never crosses a disk), and on a clean exit replaces the target with it
(``os.replace``); on any error the temporary file is removed and the previous file is left as it was.
:func:`write_text_atomic` and :func:`write_json_atomic` are built on it, and so are the data cache and the analysis
figures. Checkpoints keep their own writer (:mod:`octo.training.checkpoints`): Lightning hands them over as a
serialised binary object, which is flushed to disk (``fsync``) before the rename.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

#: permissions of a file written here (mkstemp makes it private; results and caches are read by others)
FILE_MODE = 0o644


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8") -> Iterator[IO]:
    """``with atomic_file(path) as f: f.write(...)``: ``path`` holds the whole new content after the block, or
    (on an error or a kill inside it) its previous content; no temporary file is left behind on an error.

    ``mode`` is ``"w"`` (text, ``encoding``) or ``"wb"`` (binary). Missing parent folders are created.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file writes with mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_file`); returns the path."""
    with atomic_file(path) as f:
        f.write(text)
    return Path(path)


def json_safe(value):
    """``value`` with every NaN / infinity replaced by None: JSON has no such numbers, and strict parsers reject
    the ``NaN`` that Python's json module writes by default."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json_atomic(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` as strict JSON (non-finite numbers become null; indented, keys sorted) to ``path``
    atomically (:func:`write_text_atomic`); returns the path."""
    text = json.dumps(json_safe(data), indent=2, sort_keys=True, default=str, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object at ``path``, or None if it is absent or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
