"""GPU budget of the study: the jobs of each sweep and their estimated GPU-minutes (the GPU queue, octo.gpu, cuts
them into pieces).

Jobs are enumerated from the sweep files themselves (Hydra composes ``sweeps=<name>``, the sweeper's grammar
expands ``hydra.sweeper.params``), so the estimate follows the files. The seconds per epoch are **estimates**
(``octo.analysis.octopus.registry.SWEEPS``: the speed targets 3 s/epoch FF-standard, 5 s/epoch SFF, the CG
estimate 12 s/epoch), never measurements; the estimate is runs x epochs x s/epoch, with one job at a time on one GPU.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from octo.analysis.octopus.registry import SWEEPS
from octo.analysis.octopus.study import Sweep

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Job:
    """One job of a sweep: its swept values (``{key: value text}``, seed included) and its epochs."""

    sweep: str
    values: dict
    epochs: int

    @property
    def cell(self) -> tuple:
        return tuple((k, v) for k, v in self.values.items() if k != "seed")


def sweep_jobs(name: str, extra: Sequence[str] = ()) -> list[Job]:
    """Every job of ``sweeps/<name>.yaml`` (composed with ``extra`` overrides, e.g. ``+scale=smoke_octopus``).

    Cached per process: composing takes about a second and the estimate, the plan and the index all ask."""
    return list(_sweep_jobs(name, tuple(extra)))


@functools.cache
def _sweep_jobs(name: str, extra: tuple[str, ...]) -> tuple[Job, ...]:
    os.environ.setdefault("OCTO_ROOT", str(REPO))
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[f"sweeps={name}", *extra], return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    params = {str(k): str(v) for k, v in (cfg.hydra.sweeper.params or {}).items()}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = [[(o.key_or_group, v) for v in (o.sweep_string_iterator() if o.is_sweep_override()
                                             else [o.get_value_element_as_str()])] for o in parsed]
    return tuple(Job(name, dict(combo), int(cfg.trainer.max_epochs)) for combo in itertools.product(*axes))


def seconds_per_epoch(sweep: Sweep, job: Job) -> float:
    if isinstance(sweep.s_per_epoch, (int, float)):
        return float(sweep.s_per_epoch)
    return float(sweep.s_per_epoch[str(job.values[sweep.speed_key])])


def job_minutes(sweep: Sweep, job: Job) -> float:
    return job.epochs * seconds_per_epoch(sweep, job) / 60.0


def estimate(sweeps: Sequence[Sweep] = SWEEPS) -> pd.DataFrame:
    """One row per sweep: cells, seeds, runs, epochs, s/epoch (estimate), GPU-minutes (estimate)."""
    rows = []
    for s in sweeps:
        jobs = sweep_jobs(s.name)
        speeds = sorted({seconds_per_epoch(s, j) for j in jobs})
        rows.append({"sweep": s.name, "cells": len({j.cell for j in jobs}),
                     "seeds": len({j.values.get("seed") for j in jobs}), "runs": len(jobs),
                     "epochs": jobs[0].epochs, "s/epoch (est.)": "/".join(f"{v:g}" for v in speeds),
                     "GPU-min (est.)": sum(job_minutes(s, j) for j in jobs), "basis": s.speed_note})
    return pd.DataFrame(rows)


def estimate_markdown(df: pd.DataFrame) -> str:
    """The estimate as a Markdown table with its total row."""
    body = df.copy()
    body["GPU-min (est.)"] = body["GPU-min (est.)"].map(lambda m: f"{m:.1f}")
    total = df["GPU-min (est.)"].sum()
    body.loc[len(body)] = {"sweep": "**total**", "cells": df["cells"].sum(), "seeds": "", "runs": df["runs"].sum(),
                           "epochs": "", "s/epoch (est.)": "", "GPU-min (est.)": f"**{total:.1f}** "
                           f"(≈ {total / 60:.1f} GPU-hours)", "basis": ""}
    return body.to_markdown(index=False, disable_numparse=True)
