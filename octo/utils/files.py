"""Atomic writes: a reader (or a resumed sweep) never sees a half-written file."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


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


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """Write ``data`` as strict JSON (non-finite numbers become null) to ``path`` via a temporary file and
    ``os.replace``."""
    path = Path(path)
    data = json_safe(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object at ``path``, or None if it is absent or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
