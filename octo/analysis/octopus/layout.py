"""Where the OctopusNet study's runs and outputs live at each scale (:class:`Layout`), and the overrides that pick
a scale for a sweep.

Its own module so that the renderer (:mod:`octo.analysis.octopus.outputs`) and the runner
(:mod:`octo.analysis.octopus.reproduce`) share it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from octo.analysis.octopus.registry import sweep

REPO = Path(__file__).resolve().parents[3]
SCALES = ("full", "smoke")


@dataclass(frozen=True)
class Layout:
    """Where one scale's runs and outputs live."""

    scale: str
    results: Path
    runs: Path

    @classmethod
    def for_scale(cls, scale: str, results: str | Path | None = None, runs: str | Path | None = None) -> Layout:
        smoke = scale == "smoke"
        res = Path(results) if results else REPO / "results" / "smoke" if smoke else REPO / "results"
        default_runs = res / "runs" if smoke else REPO / "results" / "runs"
        return cls(scale, res, Path(runs) if runs else default_runs)

    @property
    def tables(self) -> Path:
        return self.results / "tables"

    @property
    def figures(self) -> Path:
        return self.results / "figures"

    def runs_csv(self, name: str) -> Path:
        return self.results / name / "runs.csv"


def scale_overrides(name: str, scale: str) -> list[str]:
    """Hydra overrides that pick ``scale`` for sweep ``name``: none at full scale (the sweep file's budgets)."""
    return [f"+scale=smoke_{sweep(name).family}"] if scale == "smoke" else []
