"""The one atomic writer (``octo.utils.files``): whole new content or the previous one, never half a file and no
temporary file left behind; and no other module hand-writes its own temporary-file-then-rename."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from octo.utils.files import atomic_file, write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]


def test_write_text_atomic_replaces_the_whole_file(tmp_path):
    path = tmp_path / "sub" / "table.md"          # missing folders are created
    assert write_text_atomic(path, "old\n") == path
    write_text_atomic(path, "new ± 1\n")
    assert path.read_text(encoding="utf-8") == "new ± 1\n"
    assert [p.name for p in path.parent.iterdir()] == ["table.md"]
    assert path.stat().st_mode & 0o777 == 0o644    # readable by others, not mkstemp's private 0o600


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "runs.csv"
    write_text_atomic(path, "a,b\n1,2\n")
    with pytest.raises(RuntimeError), atomic_file(path) as f:
        f.write("a,b\n")
        raise RuntimeError("killed half-way")
    assert path.read_text() == "a,b\n1,2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["runs.csv"]


def test_binary_mode_and_bad_modes(tmp_path):
    with atomic_file(tmp_path / "x.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="'a'"), atomic_file(tmp_path / "y", "a"):
        pass


def test_write_json_atomic_is_strict_sorted_json(tmp_path):
    path = write_json_atomic(tmp_path / "m.json", {"b": math.nan, "a": [1.5, math.inf], "c": Path("p")})
    text = path.read_text()
    assert text == json.dumps({"a": [1.5, None], "b": None, "c": "p"}, indent=2, sort_keys=True) + "\n"


def test_no_other_hand_written_rename_writer():
    # every temporary-file-then-rename goes through octo.utils.files; checkpoints keep their own fsync'd writer
    allowed = {"octo/utils/files.py", "octo/training/checkpoints.py"}
    pattern = re.compile(r"os\.replace\(|mkstemp\(|NamedTemporaryFile\(|\btmp\w*\.(replace|rename)\(")
    found = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "octo").rglob("*.py"))
             if str(p.relative_to(ROOT)) not in allowed
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, f"use octo.utils.files.atomic_file / write_text_atomic instead: {found}"
