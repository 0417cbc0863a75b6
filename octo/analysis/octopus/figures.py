"""Figures of the study (seaborn, headless, like ``octo.analysis.plots``): resilience bars with floors, accuracy
against a swept setting, and per-arm per-class heatmaps, always with the published values drawn beside ours.

Bars are used for resilience on purpose (unlike the sweep point plots): the quantity is a drop from intact
towards chance, and bars from zero make a collapse to 10 % visible at a glance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns

from octo.analysis.octopus.published import PublishedData
from octo.analysis.octopus.quantities import kind, select, summarize_cell
from octo.analysis.octopus.registry import PerClassTable
from octo.analysis.octopus.study import Table
from octo.analysis.plots import save_figure
from octo.data.classes import CIFAR10_CLASSES
from octo.utils.figures import heatmap_figure, new_figure

CHANCE = 10.0  # every dataset of the study (CIFAR-10, the smoke set) has 10 balanced classes
PUBLISHED_STYLE = {"marker": "D", "color": "crimson", "s": 28, "zorder": 5}


def _short(row_id: str) -> str:
    return row_id.split(".", 1)[1] if "." in row_id else row_id


def resilience_figure(table: Table, runs: Mapping[str, pd.DataFrame], published: PublishedData,
                      path: str | Path) -> Path:
    """Bars: accuracy intact and under every single / pair failure, one panel per column (cell) of ``table``;
    sd error bars over seeds, published values as red diamonds, our floors as dashed lines, chance dotted."""
    rows = [r for r in table.rows if r.quantity == "intact" or r.quantity.startswith(("single.", "pair."))]
    order = [_short(r.id) for r in rows]
    with matplotlib.rc_context():
        sns.set_theme(context="paper", style="whitegrid")
        fig, axes = new_figure(max(4.0, 0.42 * len(rows)) * len(table.cols), 3.4, len(table.cols))
        for ax, col in zip(axes, table.cols):
            long, pub_x, pub_y = [], [], []
            for x, row in enumerate(rows):
                sweep, cell, quantity = table.point(row, col)
                df = select(runs.get(sweep, pd.DataFrame()), cell)
                long += [{"failed": _short(row.id), "acc": v} for v in summarize_cell(df, quantity)["values"]]
                pub = published.lookup(table.id, row.id, col.id)
                if pub and isinstance(pub.value, (int, float)):
                    pub_x.append(x), pub_y.append(pub.value)
            if long:
                sns.barplot(data=pd.DataFrame(long), x="failed", y="acc", order=order, errorbar="sd",
                            color="steelblue", capsize=0.2, ax=ax)
            else:
                ax.set_xticks(range(len(order)), order)
                ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes,
                        color="0.4")
            if pub_x:
                ax.scatter(pub_x, pub_y, label="published", **PUBLISHED_STYLE)
            for q, style in (("floor_single", "--"), ("floor_double", ":")):
                sweep, cell, _ = table.point(next(r for r in table.rows if r.id == q), col)
                mean = summarize_cell(select(runs.get(sweep, pd.DataFrame()), cell), q)["mean"]
                if not np.isnan(mean):
                    ax.axhline(mean, ls=style, color="darkorange", lw=1, label=f"{q.replace('_', ' ')} (ours)")
            ax.axhline(CHANCE, ls="-.", color="0.5", lw=0.8, label="chance")
            if col.label:  # one panel per column; a single unnamed column needs no panel title
                ax.set_title(col.label, fontsize=8)
            ax.set_xlabel("failed")
            ax.set_ylabel("test accuracy (%)")
            ax.set_ylim(0, 100)
            ax.tick_params(axis="x", labelrotation=60, labelsize=6)
        axes[-1].legend(fontsize=6, loc="upper right", frameon=True)
        fig.suptitle(f"{table.title}\nmean ± sd over seeds (bars), published (diamonds)", fontsize=9)
        save_figure(fig, Path(path))
    return Path(path)


def line_figure(table: Table, runs: Mapping[str, pd.DataFrame], published: PublishedData, xlabel: str,
                path: str | Path) -> Path:
    """Accuracy-like columns (%, e.g. test accuracy and the worst single failure) against the table's rows (a
    swept setting such as the number of arms), mean ± sd with the single seeds; published as diamonds."""
    cols = [c for c in table.cols if kind(c.quantity).scale == 100.0 and not kind(c.quantity).label]
    order = [r.label for r in table.rows]
    long, pubs = [], []
    for x, row in enumerate(table.rows):
        for col in cols:
            sweep, cell, quantity = table.point(row, col)
            df = select(runs.get(sweep, pd.DataFrame()), cell)
            long += [{"setting": row.label, "quantity": col.label, "value": v}
                     for v in summarize_cell(df, quantity)["values"]]
            pub = published.lookup(table.id, row.id, col.id)
            if pub and isinstance(pub.value, (int, float)):
                pubs.append((x, pub.value))
    with matplotlib.rc_context():
        sns.set_theme(context="paper", style="whitegrid")
        fig, (ax,) = new_figure(max(4.0, 0.9 * len(order) + 2.5), 3.2)
        if long:
            data = pd.DataFrame(long)
            several = data["quantity"].nunique() > 1  # seaborn divides by (levels - 1) when dodging
            sns.pointplot(data=data, x="setting", y="value", hue="quantity", order=order, errorbar="sd",
                          capsize=0.15, dodge=0.3 if several else False, markersize=5, ax=ax)
            sns.stripplot(data=data, x="setting", y="value", hue="quantity", order=order, dodge=several, size=3,
                          alpha=0.5, legend=False, palette="dark:0.35", ax=ax)
        else:
            ax.set_xticks(range(len(order)), order)
            ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes, color="0.4")
        if pubs:
            ax.scatter(*zip(*pubs), label="published", **PUBLISHED_STYLE)
        ax.axhline(CHANCE, ls="-.", color="0.5", lw=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("%")
        ax.set_title(f"{table.title}\nmean ± sd over seeds, dots = single seeds", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1.0), loc="upper left")
        save_figure(fig, Path(path))
    return Path(path)


def per_class_figure(pc: PerClassTable, matrices: Mapping[str, np.ndarray | None], ours_classes: Sequence[str],
                     path: str | Path) -> Path:
    """Ours beside each published per-class table of ``pc`` (see ``render.per_class_matrices``); ours is
    labelled with its own data set's classes, the published tables with CIFAR-10's."""
    titled, labels = {}, {}
    for key, m in matrices.items():
        name = "ours (mean over seeds)" if key == "ours" else f"published [{key}]"
        titled[name] = m
        labels[name] = ours_classes if key == "ours" else CIFAR10_CLASSES
    save_figure(heatmap_figure(titled, pc.arms, labels, f"{pc.title} (%)"), Path(path))
    return Path(path)
