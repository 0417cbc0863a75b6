"""``make reproduce-tables``: run or resume every sweep of the OctopusNet study, then render every table.

Subcommands (``python -m octo.analysis.octopus.reproduce <cmd> --help``)::

    run      [--scale full|smoke] [--piece S1,S2] [--parallel N] [-- hydra overrides]   run/resume, then render
    render   [--scale ...]                       tables, figures and the index from what exists (no training)
    estimate                                     estimated GPU-minutes per sweep (Markdown)

Layout (``--scale full``; ``smoke`` puts everything under ``results/smoke/``, which git ignores, so CI artifacts
never overwrite full-scale tables):

- runs: ``results/runs/<sweep>/<overrides>/`` (git-ignored), one Hydra multirun per sweep;
- ``results/<sweep>/runs.csv``: every run of the sweep (committed). New runs are *merged* into it, keyed by the
  run folder, so pieces run on different machines add up instead of overwriting each other; tables are rendered
  from these files, so a fresh clone re-renders without any run folder;
- ``results/tables/<table>.md``, ``results/figures/<name>.png`` and the index ``results/tables/README.md``.

A sweep that exits non-zero does not stop the others; tables are rendered anyway (its cells say what is missing)
and the exit code is 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import pandas as pd

from octo.analysis.collect import collect, find_job_dirs, read_runs_csv
from octo.analysis.octopus.layout import REPO, SCALES, Layout, scale_overrides
from octo.analysis.octopus.registry import SWEEPS
from octo.analysis.tables import merge_runs
from octo.utils.files import write_text_atomic


def sweep_command(name: str, layout: Layout, overrides: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "octo.train", "-m", f"sweeps={name}", f"paths.runs_dir={layout.runs}",
            *scale_overrides(name, layout.scale), *overrides]


def run_sweep(name: str, layout: Layout, overrides: Sequence[str] = ()) -> int:
    """Run (or resume: finished jobs are skipped) one sweep; its output goes to ``<runs>/_logs/<name>.log``."""
    log = layout.runs / "_logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OCTO_ROOT": str(REPO)}
    with open(log, "w", encoding="utf-8") as f:
        rc = subprocess.run(sweep_command(name, layout, overrides), cwd=REPO, env=env, stdout=f,
                            stderr=subprocess.STDOUT).returncode
    print(f"reproduce: {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} (log {log})", flush=True)
    return rc


def load_runs(name: str, layout: Layout) -> pd.DataFrame:
    """The runs of sweep ``name``: its run folders merged into ``runs.csv`` (rewritten), or ``runs.csv`` alone."""
    path = layout.runs_csv(name)
    folder = layout.runs / name
    if not (folder.is_dir() and find_job_dirs(folder)):
        return read_runs_csv(path) if path.exists() and path.stat().st_size else pd.DataFrame()
    merged = merge_runs(path, collect(folder))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, merged.to_csv(index=False))
    return merged


def run(layout: Layout, names: Sequence[str], overrides: Sequence[str] = (), parallel: int = 1) -> int:
    """Run ``names`` (``parallel`` sweeps at a time), then render everything; returns the exit code."""
    print(f"reproduce: {len(names)} sweep(s) at scale {layout.scale}; runs in {layout.runs}", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        codes = list(pool.map(lambda n: run_sweep(n, layout, overrides), names))
    failed = [n for n, rc in zip(names, codes) if rc]
    render(layout)
    if failed:
        print(f"reproduce: failed sweeps: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def render(layout: Layout) -> list[Path]:
    """Every table, figure and the index, from the runs that exist now; returns the files written."""
    from octo.analysis.octopus.outputs import write_outputs  # seaborn is slow to import: only when rendering

    runs = {s.name: load_runs(s.name, layout) for s in SWEEPS}
    written = write_outputs(layout, runs)
    print(f"reproduce: wrote {len(written)} files under {layout.results} (index {layout.tables / 'README.md'})")
    return written


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m octo.analysis.octopus.reproduce", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for cmd in ("run", "render"):
        q = sub.add_parser(cmd)
        q.add_argument("--scale", choices=SCALES, default="full")
        q.add_argument("--results", help="output folder (default results/, or results/smoke/ for smoke)")
        q.add_argument("--runs", help="run folders (default results/runs/, or results/smoke/runs/)")
        if cmd == "run":
            q.add_argument("--piece", help="comma-separated sweep names (default: every sweep)")
            q.add_argument("--parallel", type=int, default=None,
                           help="sweeps run at the same time (default 1; 2 at smoke scale, where most of the time "
                                "is Python start-up on a CPU)")
            q.add_argument("overrides", nargs=argparse.REMAINDER,
                           help="after --: Hydra overrides for every sweep (launcher=joblib, seed=0, ...)")
    sub.add_parser("estimate")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("OCTO_ROOT", str(REPO))
    if args.cmd == "estimate":
        from octo.analysis.octopus import budget

        print(budget.estimate_markdown(budget.estimate()))
        return 0
    layout = Layout.for_scale(args.scale, args.results, args.runs)
    if args.cmd == "render":
        render(layout)
        return 0
    names = [n.strip() for n in args.piece.split(",") if n.strip()] if args.piece else [s.name for s in SWEEPS]
    unknown = [n for n in names if n not in {s.name for s in SWEEPS}]
    if unknown:
        print(f"reproduce: error: unknown sweep(s) {', '.join(unknown)}; known: "
              f"{', '.join(s.name for s in SWEEPS)}", file=sys.stderr)
        return 2
    overrides = [o for o in args.overrides if o != "--"]
    parallel = args.parallel if args.parallel is not None else (2 if args.scale == "smoke" else 1)
    return run(layout, names, overrides, parallel)


if __name__ == "__main__":
    sys.exit(main())
