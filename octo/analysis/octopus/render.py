"""Markdown for the study's tables: ours (mean ± sd, n) beside the published value, with provenance.

Every grid point of a :class:`~octo.analysis.octopus.study.Table` becomes two cells, ours and published, so a reader
compares them without switching files. Missing things are said out loud: ``missing`` (no finished run of that
cell yet), ``not published`` (the sources give no number), failed / incomplete runs counted in the cell.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from octo.analysis.octopus.published import PublishedData
from octo.analysis.octopus.quantities import kind, per_class, select, summarize_cell
from octo.analysis.octopus.registry import PerClassTable
from octo.analysis.octopus.study import Table
from octo.analysis.tables import SPREAD, provenance
from octo.data.classes import CIFAR10_CLASSES

NOT_PUBLISHED = "not published"
LEGEND = (f"Ours: mean ± {SPREAD} over seeds ({SPREAD} = sample standard deviation, ddof=1; none for n=1), n = "
          "finished runs; failed / incomplete runs are counted, never averaged; `missing` = no finished run of "
          "that cell yet. Published: the number as printed, with its source tag in brackets (tags and values: "
          "`results/published/octopusnet.yaml`); `not published` = the sources give none. Accuracies in %.")


def grid(table: Table, runs: Mapping[str, pd.DataFrame], published: PublishedData) -> list[dict]:
    """One record per grid point: row/col ids, our summary, the published entry, the quantity."""
    out = []
    for row in table.rows:
        for col in table.cols:
            sweep, cell, quantity = table.point(row, col)
            df = runs.get(sweep, pd.DataFrame())
            out.append({"row": row, "col": col, "sweep": sweep, "quantity": quantity,
                        "ours": summarize_cell(select(df, cell), quantity),
                        "published": published.lookup(table.id, row.id, col.id)})
    return out


def render_table(table: Table, runs: Mapping[str, pd.DataFrame], published: PublishedData) -> str:
    """The Markdown of one table (title, what it is, the grid, legend, notes, provenance per sweep)."""
    points = grid(table, runs, published)
    header = [table.row_header]
    for col in table.cols:
        prefix = f"{col.label}: " if col.label else ""
        header += [f"{prefix}ours", f"{prefix}published"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes = []
    for row in table.rows:
        cells = [row.label]
        for col in table.cols:
            p = next(p for p in points if p["row"] is row and p["col"] is col)
            pub = p["published"]
            cells += [p["ours"]["text"], pub.text(kind(p["quantity"]).decimals) if pub else NOT_PUBLISHED]
            if pub and pub.note:
                notes.append(f"{row.label}{' / ' + col.label if col.label else ''}: {pub.note}")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")

    sweeps = table.sweeps()
    text = [f"## {table.title}", "",
            f"Published in: {table.published_in}. Sweep{'s' if len(sweeps) > 1 else ''}: "
            + ", ".join(f"`{s}` (`sweeps/{s}.yaml`)" for s in sweeps) + ".", "", *lines, "", LEGEND, ""]
    if notes:
        text += ["Published values: " + "; ".join(notes) + ".", ""]
    text += [f"Note: {n}" for n in table.notes] + ([""] if table.notes else [])
    text += [provenance_line(s, runs.get(s)) for s in sweeps] + [""]
    return "\n".join(text)


def provenance_line(sweep: str, df: pd.DataFrame | None) -> str:
    """Datasets, devices, commits, epochs, seeds and run counts of one sweep (or that it has no runs)."""
    if df is None or df.empty:
        return f"Provenance `{sweep}`: no runs yet."
    prov = provenance(df)
    parts = [f"{name}: {', '.join(map(str, prov[name])) or 'unknown'}"
             for name in ("datasets", "algorithms", "devices", "precision", "commits", "epochs", "seeds", "runs")]
    return f"Provenance `{sweep}`: " + "; ".join(parts) + "."


def dataset_of(df: pd.DataFrame | None) -> str | None:
    """The one data set the runs of ``df`` used (None if none or several)."""
    if df is None or df.empty or "dataset.name" not in df.columns:
        return None
    names = df["dataset.name"].dropna().unique()
    return str(names[0]) if len(names) == 1 else None


def class_names(n: int, dataset: str | None = "cifar10") -> list[str]:
    """CIFAR-10's class names (the published tables' order) for CIFAR-10 or unknown data, else ``c0..``: the smoke
    data's classes are not CIFAR's and must not be labelled as such."""
    if n == len(CIFAR10_CLASSES) and dataset in (None, "cifar10"):
        return list(CIFAR10_CLASSES)
    return [f"c{i}" for i in range(n)]


def per_class_matrices(pc: PerClassTable, runs: Mapping[str, pd.DataFrame],
                       published: PublishedData) -> dict[str, np.ndarray | None]:
    """``{"ours": [arms x classes] in %, "<source>": [...], ...}``; ours is None without finished runs."""
    df = runs.get(pc.sweep, pd.DataFrame())
    ours = [per_class(df, f"arm{i}") for i in range(len(pc.arms))] if not df.empty else []
    out: dict[str, np.ndarray | None] = {
        "ours": np.array(ours) * 100 if ours and all(r is not None for r in ours) else None}
    for source, arms in published.per_class.get(pc.id, {}).items():
        out[source] = np.array([arms[f"arm{i}"] for i in range(len(pc.arms))], dtype=float)
    return out


def render_per_class(pc: PerClassTable, runs: Mapping[str, pd.DataFrame], published: PublishedData) -> str:
    """Per-arm per-class accuracy: one block of rows per arm (ours, then each published source)."""
    mats = per_class_matrices(pc, runs, published)
    n_classes = max((m.shape[1] for m in mats.values() if m is not None), default=10)
    dataset = dataset_of(runs.get(pc.sweep))
    names = class_names(n_classes, dataset)
    note = ([f"Our columns are the {n_classes} classes of `{dataset}`; the published rows are CIFAR-10's classes "
             "in the order airplane … truck.", ""] if names[0] == "c0" else [])
    lines = ["| arm | source | " + " | ".join(names) + " | mean |", "|" + "---|" * (len(names) + 3)]
    for i, arm in enumerate(pc.arms):
        for source, m in mats.items():
            if m is None:
                cells = ["missing"] * len(names) + ["missing"]
            else:
                row = list(m[i]) + [np.nan] * (len(names) - m.shape[1])
                cells = [f"{v:.0f}" if not np.isnan(v) else "-" for v in row] + [f"{np.nanmean(m[i]):.1f}"]
            label = "ours (mean over seeds)" if source == "ours" else f"published [{source}]"
            lines.append(f"| {arm} | {label} | " + " | ".join(cells) + " |")
    return "\n".join([f"## {pc.title}", "", f"Published in: {pc.published_in}. Sweep: `{pc.sweep}`. "
                      "Accuracy (%) of each arm's own readout on the test images of each class (ours: "
                      "`evaluation.resilience.specialization`).", "", *lines, "", *note,
                      provenance_line(pc.sweep, runs.get(pc.sweep)), ""])
