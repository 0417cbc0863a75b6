"""Published numbers beside ours: load ``results/published/octopusnet.yaml`` and check it against the study.

Each entry is ``{row, col, value, source[, note]}`` under a table id. ``source`` is one or more tags (comma
separated) from the file's ``sources`` list, so every number in a rendered table says where it was read.
:func:`validate` fails loudly on an unknown table, row, column or tag, or on a duplicate, because a published
number that silently lands nowhere is worse than a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from octo.analysis.octopus.study import Table

DEFAULT_PATH = Path(__file__).resolve().parents[3] / "results" / "published" / "octopusnet.yaml"


@dataclass(frozen=True)
class Published:
    """One published number (or label, e.g. the critical arm) with its source tag(s) and an optional note."""

    value: Any
    source: str
    note: str | None = None

    def text(self, decimals: int = 2) -> str:
        """``"52.50 [paper]"``; labels as they are."""
        value = f"{self.value:.{decimals}f}" if isinstance(self.value, (int, float)) else str(self.value)
        return f"{value} [{self.source}]"


class PublishedData:
    """The parsed YAML: ``lookup(table, row, col)``, per-class tables and the source tags."""

    def __init__(self, data: dict) -> None:
        self.sources: dict[str, str] = dict(data.get("sources") or {})
        self.tables: dict[str, dict[tuple[str, str], Published]] = {}
        for table_id, entries in (data.get("tables") or {}).items():
            cells: dict[tuple[str, str], Published] = {}
            for e in entries or []:
                key = (str(e["row"]), str(e["col"]))
                if key in cells:
                    raise ValueError(f"published table {table_id}: duplicate entry for row {key[0]} col {key[1]}")
                cells[key] = Published(e["value"], str(e["source"]), e.get("note"))
            self.tables[str(table_id)] = cells
        self.per_class: dict[str, dict[str, dict[str, list[float]]]] = data.get("per_class") or {}

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH) -> "PublishedData":
        return cls(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})

    def lookup(self, table_id: str, row: str, col: str) -> Published | None:
        return self.tables.get(table_id, {}).get((row, col))

    def tags(self, source: str) -> list[str]:
        return [t.strip() for t in source.split(",")]

    def validate(self, tables: list[Table], per_class_ids: list[str] = ()) -> None:
        """Raise ValueError naming every entry that has no place in ``tables`` or uses an unknown source tag."""
        known = {t.id: t for t in tables}
        problems = []
        for table_id, cells in self.tables.items():
            if table_id not in known:
                problems.append(f"unknown table {table_id!r}")
                continue
            rows = {r.id for r in known[table_id].rows}
            cols = {c.id for c in known[table_id].cols}
            for (row, col), pub in cells.items():
                if row not in rows or col not in cols:
                    problems.append(f"{table_id}: no row {row!r} / column {col!r} (rows: {sorted(rows)}, "
                                    f"columns: {sorted(cols)})")
                problems += [f"{table_id}/{row}/{col}: unknown source tag {t!r}" for t in self.tags(pub.source)
                             if t not in self.sources]
        for table_id, by_source in self.per_class.items():
            if table_id not in per_class_ids:
                problems.append(f"unknown per-class table {table_id!r}")
            problems += [f"{table_id}: unknown source tag {t!r}" for s in by_source for t in self.tags(s)
                         if t not in self.sources]
        if problems:
            raise ValueError("results/published/octopusnet.yaml: " + "; ".join(problems))
