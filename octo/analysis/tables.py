"""Sweep tables: mean ± sd over seeds per configuration, as Markdown, plus runs.csv and a figure.

Every cell says its spread (sample sd, ddof=1) and its n (finished runs), and failed or incomplete runs
stay visible: counted in the cell, listed in ``runs.csv``.

Command line::

    octo-tables results/runs/<sweep> [--out results/<sweep>] [--metric test/acc] [--keys k1 k2]
    octo-tables --all [results/runs]          # every sweep folder below, into results/<sweep>/
    python -m octo.analysis.tables ...        # the same
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import yaml

from octo.analysis.collect import (STATUS_INCOMPLETE, STATUS_OK, collect, find_job_dirs, format_value,
                                   read_runs_csv, run_relative, sort_rows)
from octo.utils.files import write_text_atomic

SPREAD = "sd"  # the spread every table and figure reports: the sample standard deviation over seeds
# The metric a table marks the best row by. Choosing a configuration on its test mean would report a number that
# was itself used for the choice; the validation split exists for that.
SELECT_METRIC = "val/acc_best"
DAGGER = "†"  # marks a row resting on code that is not exactly a commit


def unpinned_commit(commit: Any) -> bool:
    """Whether a recorded commit does not pin the code: ``-dirty`` (uncommitted changes) or ``unknown`` (no git)."""
    text = format_value(commit)
    return text.endswith("-dirty") or text == "unknown"


def default_keys(df: pd.DataFrame) -> list[str]:
    """The override keys that really vary across the runs of ``df``, ``seed`` excluded.

    Override keys set to one value in every job (a fixed ``trainer.max_epochs=5`` on the sweep command, say)
    would only add constant columns; :func:`fixed_overrides` reports them in the caption instead.
    """
    keys = [k for k in df.attrs.get("override_keys", []) if k != "seed" and k in df.columns]
    return [k for k in keys if df[k].map(format_value).nunique() > 1]


def fixed_overrides(df: pd.DataFrame, keys: Sequence[str]) -> dict[str, Any]:
    """Override keys (not in ``keys``, not ``seed``) that have one value across all runs, with that value."""
    out = {}
    for k in df.attrs.get("override_keys", []):
        if k != "seed" and k not in keys and k in df.columns and df[k].map(format_value).nunique() == 1:
            out[k] = df[k].iloc[0]
    return out


def summarize(df: pd.DataFrame, keys: Sequence[str] | None = None, metric: str = "test/acc",
              scale: float = 100.0, decimals: int = 2, select_metric: str | None = SELECT_METRIC) -> pd.DataFrame:
    """One row per configuration (unique values of ``keys``): ``metric`` × ``scale`` over its seeds.

    Columns: the ``keys``, ``mean``, ``sd`` (sample sd, ddof=1; NaN for n=1), ``n`` (ok runs with a value),
    ``n_failed`` (any status other than ok/incomplete), ``n_incomplete``, ``n_missing`` (ok runs without
    the metric), ``select_mean`` (mean of ``select_metric`` × ``scale`` over the ok runs; NaN without that
    column), ``n_unpinned`` (runs whose commit ends in ``-dirty`` or is ``unknown``) and ``cell``, e.g.
    ``"52.41 ± 0.37 (n=3)"``, ``"52.41 (n=1)"``, ``"60.50 ± 0.71 (n=2; 1 failed)"``, ``"failed (n_failed=2)"`` or
    ``"incomplete"``. ``keys=None`` uses :func:`default_keys`. Rows are sorted by the keys. ``attrs`` keeps
    metric, select metric, scale, keys and provenance for :func:`render_markdown`.

    Raises:
        ValueError: a key is not a column of ``df``, or ``metric`` is absent although some runs finished.
    """
    keys = list(default_keys(df) if keys is None else keys)
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ValueError(f"key(s) {', '.join(missing)} not in the runs; columns are: {', '.join(df.columns)}")
    status = df["status"].astype(str) if "status" in df.columns else pd.Series(STATUS_OK, index=df.index)
    if metric not in df.columns and (status == STATUS_OK).any():
        numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        raise ValueError(f"metric {metric!r} not in the runs; numeric columns are: {', '.join(numeric)}")

    values = pd.to_numeric(df[metric], errors="coerce") * scale if metric in df.columns else np.nan
    selected = (pd.to_numeric(df[select_metric], errors="coerce") * scale
                if select_metric and select_metric in df.columns else np.nan)
    commits = df["commit"] if "commit" in df.columns else pd.Series(None, index=df.index)
    ok = status == STATUS_OK
    work = pd.DataFrame({
        "_v": pd.Series(values, index=df.index).where(ok),
        "_sel": pd.Series(selected, index=df.index).where(ok),
        "_failed": ~ok & ~status.isin([STATUS_INCOMPLETE, "diverged", "timeout"]),
        "_diverged": status == "diverged",
        "_incomplete": status.isin([STATUS_INCOMPLETE, "timeout"]),  # a timed-out run resumes: not finished
        "_missing": ok & pd.Series(values, index=df.index).isna(),
        "_unpinned": commits.map(unpinned_commit).astype(bool),
    }, index=df.index)
    # No keys: the whole sweep is one group (groupby needs something to group by).
    by = [df[k] for k in keys] if keys else [pd.Series(0, index=df.index)]
    stats = work.groupby(by, dropna=False, sort=False).agg(
        mean=("_v", "mean"), sd=("_v", "std"), n=("_v", "count"), n_failed=("_failed", "sum"),
        n_diverged=("_diverged", "sum"),
        n_incomplete=("_incomplete", "sum"), n_missing=("_missing", "sum"), select_mean=("_sel", "mean"),
        n_unpinned=("_unpinned", "sum"))
    stats = stats.reset_index(drop=not keys)
    stats = sort_rows(stats, keys)
    for col in ("n", "n_failed", "n_diverged", "n_incomplete", "n_missing", "n_unpinned"):
        stats[col] = stats[col].astype(int)
    stats["cell"] = [format_cell(r.mean, r.sd, r.n, r.n_failed, r.n_incomplete, r.n_missing, decimals,
                                 r.n_diverged) for r in stats.itertuples()]
    stats.attrs = {"metric": metric, "select_metric": select_metric, "scale": scale, "keys": keys,
                   "fixed": fixed_overrides(df, keys), "provenance": provenance(df)}
    return stats


def format_cell(mean: float, sd: float, n: int, n_failed: int = 0, n_incomplete: int = 0, n_missing: int = 0,
                decimals: int = 2, n_diverged: int = 0) -> str:
    """``"52.41 ± 0.37 (n=3)"``; failed / diverged / incomplete (or timed-out) / metric-less runs are appended
    after a ``;``."""
    if n_diverged and not (n or n_failed):
        return f"diverged (n_diverged={n_diverged})"
    extra = [f"{c} {what}" for c, what in ((n_failed, "failed"), (n_diverged, "diverged"),
                                           (n_incomplete, "incomplete"), (n_missing, "without metric")) if c]
    if n >= 1:
        spread = f" ± {sd:.{decimals}f}" if n >= 2 else ""
        return f"{mean:.{decimals}f}{spread} (n={n}{'; ' + ', '.join(extra) if extra else ''})"
    if n_failed:
        return f"failed (n_failed={n_failed}{'; ' + ', '.join(extra[1:]) if extra[1:] else ''})"
    if n_missing:
        return f"no value (n_ok={n_missing}{'; ' + ', '.join(extra[:-1]) if extra[:-1] else ''})"
    return "incomplete"


def provenance(df: pd.DataFrame) -> dict[str, list]:
    """Distinct datasets, algorithms, devices, precisions, commits, epochs, seeds and run statuses in ``df``."""
    def seen(col: str) -> list:
        if col not in df.columns:
            return []
        return sorted({format_value(v) for v in df[col].dropna()})

    statuses = df["status"].value_counts() if "status" in df.columns else pd.Series(dtype=int)
    # the training precision (metrics.json "precision"; runs older than that field: the trainer option)
    precision = seen("precision.trainer") or seen("trainer.precision")
    return {"datasets": seen("dataset.name"), "algorithms": seen("algorithm._target_"),
            "devices": seen("device"), "precision": precision or ["not recorded"],
            "commits": seen("commit"), "epochs": seen("epochs"),
            "seeds": sorted(seen("seed"), key=lambda s: (len(s), s)),
            "runs": [f"{int(n)} {s}" for s, n in sorted(statuses.items())]}


def best_rows(summary: pd.DataFrame, best: str | None = "auto") -> pd.Series:
    """Rows to mark as the best configuration: the best ``select_mean`` (validation), never the test mean.

    ``best`` = ``"max"`` / ``"min"``, or ``"auto"``: ``"max"`` when the selection metric is an accuracy. Nothing is
    marked without a selection metric, with fewer than two rows that have one, or with ``best=None``.
    """
    select = summary.attrs.get("select_metric") or ""
    means = summary["select_mean"] if "select_mean" in summary.columns else pd.Series(np.nan, index=summary.index)
    if best == "auto":
        best = "max" if "acc" in select else None
    if not best or means.notna().sum() < 2:
        return pd.Series(False, index=summary.index)
    return means == (means.max() if best == "max" else means.min())


def render_markdown(summary: pd.DataFrame, title: str, notes: Sequence[str] | str | None = None,
                    best: str | None = "auto") -> str:
    """A Markdown table of ``summary`` (from :func:`summarize`) with a caption and a provenance line.

    The caption names the metric, the spread (sd, ddof=1) and n per row; the provenance line lists the
    devices, commits, epochs and seeds seen. The row with the best mean *validation* score (``select_mean``, see
    :func:`best_rows`) is bold, so that the test column is only reported, never used to choose. A row with a run
    made from uncommitted changes or outside git gets a dagger and a footnote. ``notes`` are appended as extra
    lines.
    """
    attrs = summary.attrs
    metric, scale, keys = attrs.get("metric", "metric"), attrs.get("scale", 1.0), attrs.get("keys", [])
    unit = " (%)" if scale == 100.0 else ""
    table = pd.DataFrame({k: summary[k].map(format_value) for k in keys}, index=summary.index)
    cells = summary["cell"].copy()
    bold = best_rows(summary, best)
    cells[bold] = "**" + cells[bold] + "**"
    unpinned = summary["n_unpinned"] > 0 if "n_unpinned" in summary.columns else pd.Series(False, summary.index)
    cells[unpinned] = cells[unpinned] + " " + DAGGER
    table[f"{metric}{unit}"] = cells

    n = summary.loc[summary["n"] > 0, "n"]
    n_text = "no finished runs" if n.empty else (f"n = {n.min()}" if n.min() == n.max()
                                                 else f"n = {n.min()}-{n.max()}")
    caption = (f"{metric}{' in %' if unit else ''}: mean ± {SPREAD} over seeds ({SPREAD} = sample standard "
               f"deviation, ddof=1; none for n=1); {n_text} finished runs per row. Failed and incomplete "
               f"runs are not averaged; they are counted in the cells.")
    if bold.any():
        caption += (f" Bold: the row with the best mean {attrs.get('select_metric')} (validation), the one model "
                    f"selection would pick; the {metric} column is not used to choose it.")
    lines = [f"## {title}", "", table.to_markdown(index=False, disable_numparse=True), "", caption, ""]
    if unpinned.any():
        lines += [(f"{DAGGER} At least one run of this row records a commit ending in -dirty (uncommitted changes) "
                   f"or unknown (made outside git): the code it ran is not exactly any commit."), ""]
    prov = attrs.get("provenance", {})
    if prov:
        parts = [f"{name}: {', '.join(map(str, prov[name])) or 'unknown'}"
                 for name in ("datasets", "algorithms", "devices", "precision", "commits", "epochs", "seeds", "runs")
                 if name in prov]
        lines += ["Provenance: " + "; ".join(parts) + ".", ""]
    if attrs.get("fixed"):
        lines += ["Fixed overrides: " + ", ".join(f"{k}={format_value(v)}" for k, v in attrs["fixed"].items())
                  + ".", ""]
    for note in [notes] if isinstance(notes, str) else (notes or []):
        lines += [note, ""]
    return "\n".join(lines)


def scaled_title(name: str, df: pd.DataFrame) -> str:
    """``name`` with the scale its runs were made at, when that is not the published one: a smoke run (a
    ``scale`` override such as ``+scale=smoke``) or a budget-scale sweep (``<sweep>_<N>ep``) says so in the title
    of its table and figure, not only in an index."""
    scales = sorted({str(v) for v in df["scale"].dropna()}) if "scale" in df.columns else []
    if any(v.startswith("smoke") for v in scales):
        return f"{name} [SMOKE SCALE: tiny data and budget, tests the pipeline only]"
    budget = re.search(r"_(\d+)ep$", name)
    if budget and int(budget.group(1)) not in _recipe_epochs(df):
        return f"{name} [budget scale: {budget.group(1)} epochs, not the published budget]"
    return name


def _recipe_epochs(df: pd.DataFrame) -> set[int]:
    """``trainer.max_epochs`` written in the ``experiments/<name>.yaml`` recipes the runs used: a sweep named
    ``<recipe>_60ep`` that runs a 60-epoch recipe is at the published budget."""
    root = Path(os.environ.get("OCTO_ROOT") or Path(__file__).resolve().parents[2])
    epochs = set()
    for name in (df["experiments"].dropna().unique() if "experiments" in df.columns else []):
        try:
            recipe = yaml.safe_load((root / "experiments" / f"{name}.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        value = (recipe.get("trainer") or {}).get("max_epochs")
        if isinstance(value, int):
            epochs.add(value)
    return epochs


def write_sweep_outputs(sweep_dir: str | Path, out_dir: str | Path, metric: str = "test/acc",
                        keys: Sequence[str] | None = None) -> dict[str, Path]:
    """Collect the sweep and write ``runs.csv``, ``table.md``, ``figure.png`` and ``figure.pdf``.

    ``runs.csv`` has every run (failed and incomplete too), columns in :func:`collect`'s order, rows sorted. Runs
    already in ``out_dir/runs.csv`` whose folders are not in ``sweep_dir`` are kept (:func:`merge_runs`), so a
    sweep made in pieces on different machines adds up instead of the last piece replacing the others.
    Returns ``{"runs": ..., "table": ..., "figure": ..., "figure_pdf": ...}``.
    """
    from octo.analysis.plots import sweep_figure  # seaborn takes a second to import: only load it here

    out_dir = Path(out_dir)
    df = merge_runs(out_dir / "runs.csv", collect(sweep_dir))
    keys = default_keys(df) if keys is None else list(keys)
    summary = summarize(df, keys, metric)
    names = df["sweep_name"].dropna().unique() if "sweep_name" in df.columns else []
    title = scaled_title(str(names[0]) if len(names) == 1 else Path(sweep_dir).resolve().name, df)

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"runs": out_dir / "runs.csv", "table": out_dir / "table.md", "figure": out_dir / "figure.png",
             "figure_pdf": out_dir / "figure.pdf"}
    write_text_atomic(paths["runs"], df.to_csv(index=False))
    write_text_atomic(paths["table"], render_markdown(summary, title, [f"Runs: {paths['runs'].name}; "
                                                                       f"sweep folder: {shown_path(sweep_dir)}."]))
    sweep_figure(df, keys, metric, paths["figure"], title=title)
    sweep_figure(df, keys, metric, paths["figure_pdf"], title=title)
    return paths


def shown_path(path: str | Path) -> str:
    """``path`` as a table may print it: relative to the working folder, else only its name (never a machine's
    absolute path in a committed file)."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix() if not path.is_absolute() else path.name


def relative_paths(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with absolute paths in its text cells made relative to each row's run folder (``run_dir``).

    Rows collected before runs.csv stored relative paths keep the recording machine's absolute paths; this
    rewrites them the way :func:`octo.analysis.collect.run_relative` does for new rows.
    """
    if "run_dir" not in df.columns:
        return df
    out = df.copy()
    for col in out.columns:
        if col == "run_dir" or pd.api.types.is_numeric_dtype(out[col]):
            continue
        out[col] = [run_relative(v, Path(str(d))) if isinstance(v, str) else v
                    for v, d in zip(out[col], out["run_dir"])]
    return out


def merge_runs(runs_csv: str | Path, new: pd.DataFrame) -> pd.DataFrame:
    """``new`` plus the rows of an existing ``runs_csv`` that ``new`` does not have (keyed by ``run_dir``).

    A re-collected run replaces its old row (it may have finished since); a row whose folder is gone (another
    machine, a cleaned ``results/runs``) stays, with its paths made relative (:func:`relative_paths`). Nothing is
    written here.
    """
    path = Path(runs_csv)
    if not (path.exists() and path.stat().st_size):
        return new
    old = relative_paths(read_runs_csv(path))
    if old.empty or "run_dir" not in old.columns:
        return new
    old = old[~old["run_dir"].isin(new["run_dir"])] if "run_dir" in new.columns else old
    if old.empty:
        return new
    return sort_rows(pd.concat([old, new], ignore_index=True), ["run_dir"])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="octo-tables", description="Tables and figures (mean ± sd over seeds) "
                                "from a sweep folder of runs.")
    p.add_argument("sweep_dir", nargs="?", help="sweep folder holding the job folders")
    p.add_argument("--out", help="output folder (default results/<sweep folder name>); with --all, the "
                   "folder that receives one sub-folder per sweep (default results)")
    p.add_argument("--metric", default="test/acc", help="metric column to tabulate (default test/acc)")
    p.add_argument("--keys", nargs="+",
                   help="config keys to group by (default: the varied overrides, without seed)")
    p.add_argument("--all", nargs="?", const="results/runs", dest="runs_root", metavar="RUNS_ROOT",
                   help="process every sweep folder in RUNS_ROOT (default results/runs)")
    return p


def _report(sweep: Path, paths: dict[str, Path]) -> str:
    """One line about what was written for ``sweep``."""
    return f"{sweep}: wrote {', '.join(str(p) for p in paths.values())}"


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``octo-tables``; returns the exit code (0 ok, 2 bad input, 1 a sweep of --all failed).

    Messages go to stderr as one line each (``octo-tables: error: ...``).
    """
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="octo-tables: %(levelname)s: %(message)s")

    def fail(message: str) -> int:
        print(f"octo-tables: error: {message}", file=sys.stderr)
        return 2

    if (args.sweep_dir is None) == (args.runs_root is None):
        return fail("give either SWEEP_DIR or --all [RUNS_ROOT], not both or neither")
    if args.sweep_dir is not None:
        sweep = Path(args.sweep_dir)
        out = Path(args.out) if args.out else Path("results") / sweep.resolve().name
        try:
            print(_report(sweep, write_sweep_outputs(sweep, out, args.metric, args.keys)))
        except (FileNotFoundError, ValueError) as err:
            return fail(str(err))
        return 0

    root = Path(args.runs_root)
    if not root.is_dir():
        return fail(f"runs folder not found: {root}")
    sweeps = [d for d in sorted(root.iterdir()) if d.is_dir() and find_job_dirs(d)]
    if not sweeps:
        return fail(f"no sweep folders with runs in {root}")
    out_root, code = Path(args.out) if args.out else Path("results"), 0
    for sweep in sweeps:
        try:
            print(_report(sweep, write_sweep_outputs(sweep, out_root / sweep.name, args.metric, args.keys)))
        except (FileNotFoundError, ValueError) as err:  # one bad sweep must not stop the others
            print(f"octo-tables: error: {sweep}: {err}", file=sys.stderr)
            code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
