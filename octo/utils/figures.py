"""Headless figure helpers shared by training and analysis: matplotlib's object API (no pyplot, so no window and
no global figure state) with seaborn's styling.

The W&B logger renders the per-arm per-class specialization heatmap with :func:`heatmap_figure` and
:func:`figure_rgba`; the OctopusNet study draws its published-beside-ours heatmaps with the same function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    """A figure of ``ncols`` panels side by side (sharing y) on an Agg canvas, and its axes."""
    fig = Figure(figsize=(width, height), layout="constrained")  # keeps the suptitle off the panel titles
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, sharey=True, squeeze=False)[0]
    return fig, list(axes)


def heatmap_figure(matrices: Mapping[str, np.ndarray | None], arms: Sequence[str],
                   classes: Sequence[str] | Mapping[str, Sequence[str]], title: str) -> Figure:
    """One annotated arms x classes heatmap (accuracy in %) per entry of ``matrices``; None = "no data".
    ``classes``: the column labels, or a mapping from entry name to its own labels."""
    with matplotlib.rc_context():
        sns.set_theme(context="paper", style="white")
        n = max((m.shape[1] for m in matrices.values() if m is not None), default=len(arms))
        fig, axes = new_figure(0.55 * n * len(matrices) + 2.5, 0.35 * len(arms) + 1.8, len(matrices))
        for ax, (name, m) in zip(axes, matrices.items()):
            if m is None:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.4")
                ax.set_xticks([]), ax.set_yticks([])
            else:
                labels = classes[name] if isinstance(classes, Mapping) else classes
                sns.heatmap(pd.DataFrame(m, index=[a.split(" ")[0] for a in arms], columns=list(labels)[:m.shape[1]]),
                            vmin=0, vmax=100, cmap="viridis", annot=True, fmt=".0f", annot_kws={"size": 6},
                            cbar=False, ax=ax)
                ax.tick_params(axis="x", labelrotation=60, labelsize=6)
            ax.set_title(name, fontsize=8)
        fig.suptitle(title, fontsize=9)
    return fig


def figure_rgba(fig: Figure) -> np.ndarray:
    """``fig`` rendered to an RGBA array ``[H, W, 4]`` (no file)."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())
