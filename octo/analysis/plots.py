"""Sweep figures with seaborn: metric (%) vs the first varied key, mean ± sd.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` (Agg canvas, no pyplot), so they work
headless and never touch a GUI backend or pyplot's global figure list; the seaborn theme is applied inside
an ``rc_context`` so that plotting does not change matplotlib settings for the rest of the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from octo.analysis.collect import STATUS_INCOMPLETE, STATUS_OK, format_value, value_key
from octo.utils.files import atomic_file

_VALUE, _HUE = "__value__", "__hue__"


def sweep_figure(df: pd.DataFrame, keys: Sequence[str], metric: str, path: str | Path,
                 scale: float = 100.0, title: str | None = None) -> Path:
    """Plot ``metric`` × ``scale`` of the finished runs in ``df`` against ``keys[0]``; save to ``path``.

    One point per configuration with an sd error bar (``errorbar="sd"``, over seeds) and the single runs
    as dots; ``keys[1:]`` (if any) become the hue. Categories are sorted so figures do not reshuffle
    between sweeps. A sweep without finished runs gives a figure saying "no finished runs".
    The format follows the suffix of ``path`` (``.png``, ``.pdf``...). Returns ``path``.
    """
    path = Path(path)
    keys = [k for k in keys if k in df.columns]
    status = df["status"] if "status" in df.columns else pd.Series(STATUS_OK, index=df.index)
    values = pd.to_numeric(df[metric], errors="coerce") if metric in df.columns else pd.Series(float("nan"),
                                                                                               index=df.index)
    done = df[(status == STATUS_OK) & values.notna()].copy()
    done[_VALUE] = values[done.index] * scale
    failed = (status != STATUS_OK) & (status != STATUS_INCOMPLETE)  # any other status ("failed", ...) failed
    n_failed, n_incomplete = int(failed.sum()), int((status == STATUS_INCOMPLETE).sum())
    counts = ", ".join(f"{c} {what}" for c, what in ((n_failed, "failed"), (n_incomplete, "incomplete")) if c)
    ylabel = f"{metric} (%)" if scale == 100.0 else metric
    title = title or _sweep_name(df)

    with matplotlib.rc_context():
        sns.set_theme(context="paper", style="whitegrid")
        if done.empty:
            fig = Figure(figsize=(4.0, 3.0))
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            ax.text(0.5, 0.5, f"no finished runs\n({counts or 'no runs'})", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
            ax.set_title(f"{title}\n{ylabel}")
        else:
            fig = _draw(df, done, keys, ylabel, title, counts)
        save_figure(fig, path)
    return path


def _draw(df: pd.DataFrame, done: pd.DataFrame, keys: list[str], ylabel: str, title: str,
          counts: str) -> Figure:
    """The point plot of the finished runs ``done``; categories come from all runs in ``df``."""
    if keys:
        x = keys[0]
        # Every configuration gets its slot (also the failed ones), in sorted order, so layouts are stable.
        levels = sorted(df[x].drop_duplicates(), key=value_key)
        order = list(dict.fromkeys(format_value(v) for v in levels))
        done[x] = done[x].map(format_value)
    else:
        x, order = "sweep", ["all runs"]
        done[x] = order[0]
    hue, hue_order = None, None
    if len(keys) > 1:
        hue = ", ".join(keys[1:])
        labels = df[keys[1:]].apply(lambda r: ", ".join(format_value(v) for v in r), axis=1)
        ranks = df[keys[1:]].apply(lambda r: tuple(value_key(v) for v in r), axis=1)
        hue_order = list(dict.fromkeys(labels.loc[sorted(df.index, key=lambda i: ranks[i])]))
        done[hue] = labels.loc[done.index]

    n = done.groupby([x] + ([hue] if hue else []))[_VALUE].count()
    n_text = f"n={n.min()}" if n.min() == n.max() else f"n={n.min()}-{n.max()}"
    n_hue = len(hue_order) if hue_order else 1
    fig = Figure(figsize=(max(3.5, 0.45 * len(order) * n_hue + 2.0), 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    # Point plot, not bars: accuracies sit far above 0, bars from 0 would hide the differences.
    sns.pointplot(data=done, x=x, y=_VALUE, hue=hue, order=order, hue_order=hue_order, errorbar="sd",
                  capsize=0.15, linestyle="none", dodge=0.4 if hue else False, markersize=5, ax=ax)
    if hue is None:  # the single seeds, so that n=2 vs n=10 is visible at a glance
        sns.stripplot(data=done, x=x, y=_VALUE, order=order, color="0.35", size=3, alpha=0.6, jitter=0.08,
                      ax=ax)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\nmean ± sd over seeds, {n_text} per point" + (f" ({counts})" if counts else ""))
    if hue is None:  # say why a slot is empty instead of leaving the reader to guess
        for i, label in enumerate(order):
            if label not in set(done[x]):
                status = df.loc[df[x].map(format_value) == label, "status"]
                why = ("failed" if (~status.isin([STATUS_OK, STATUS_INCOMPLETE])).any()
                       else "incomplete" if (status == STATUS_INCOMPLETE).any() else "no value")
                ax.text(i, 0.03, why, ha="center", va="bottom", color="0.4", fontstyle="italic",
                        transform=ax.get_xaxis_transform())
    if hue:
        ax.legend(title=hue, bbox_to_anchor=(1.02, 1.0), loc="upper left", frameon=False)
    if len(order) > 6 or max(len(o) for o in order) > 8:
        ax.tick_params(axis="x", labelrotation=30)
    return fig


def _sweep_name(df: pd.DataFrame) -> str:
    """The sweep's name from its runs (``sweep_name`` column), else the folder name, else "sweep"."""
    if "sweep_name" in df.columns:
        names = df["sweep_name"].dropna().unique()
        if len(names) == 1:
            return str(names[0])
    return Path(df.attrs["sweep_dir"]).name if "sweep_dir" in df.attrs else "sweep"


def save_figure(fig: Figure, path: Path) -> None:
    """Save ``fig`` atomically (:func:`~octo.utils.files.atomic_file`): a reader never sees half an image."""
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format=Path(path).suffix.lstrip(".") or None, dpi=200, bbox_inches="tight")
