"""Collect a sweep folder into one tidy DataFrame: one row per job, unfinished ones included.

A sweep is a folder; every job is a sub-folder (any depth) holding ``.hydra/config.yaml``,
``.hydra/overrides.yaml`` and, once the job has ended, ``metrics.json``. A job with a config but without
``metrics.json`` was interrupted (or is still running) and is listed with ``status="incomplete"``, so that
no run silently disappears from a table.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import yaml
from omegaconf import OmegaConf

from octo.utils.files import read_json
from octo.utils.renames import current_key

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
CONFIG_FILE = Path(".hydra") / "config.yaml"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"

STATUS_OK, STATUS_FAILED, STATUS_INCOMPLETE = "ok", "failed", "incomplete"

# Config values copied into every row (the context a table caption or a reader needs).
DEFAULT_CONFIG_KEYS: tuple[str, ...] = ("sweep_name", "dataset.name", "algorithm._target_")
# Provenance columns, in this order, right after the config values.
PROVENANCE_COLUMNS: tuple[str, ...] = ("seed", "device", "commit", "epochs", "wall_time_s")
# Headline metrics, placed before the long tail of flattened per-block / extra columns.
HEADLINE_METRICS: tuple[str, ...] = ("test/acc", "val/acc_best", "train_images_per_s", "failure")

# Hydra override prefixes: "+key" adds, "++key" forces, "~key" deletes; the column is the bare config key.
_OVERRIDE_PREFIX = re.compile(r"^(\+\+|\+|~)")


def current_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its columns under today's config group names (:mod:`octo.utils.renames`: an old runs.csv
    keeps e.g. ``coordinator.optimizer_layout``); where a file holds both spellings, the new column keeps its
    values and the old one fills its gaps."""
    out = df
    for old in [c for c in df.columns if current_key(str(c)) != c]:
        new = current_key(str(old))
        if new in out.columns:
            out = out.assign(**{new: out[new].where(out[new].notna(), out[old])}).drop(columns=[old])
        else:
            out = out.rename(columns={old: new})
    return out


def read_runs_csv(path: str | Path) -> pd.DataFrame:
    """A committed ``runs.csv`` (any age), columns under today's group names (:func:`current_columns`)."""
    return current_columns(pd.read_csv(path))


def find_job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Job folders below ``sweep_dir``: those holding ``metrics.json`` or ``.hydra/config.yaml``.

    A folder that lies inside another job folder with a ``.hydra`` directory is not a job of its own (a
    stray ``metrics.json`` written by a logger, say), so it is dropped.
    """
    sweep_dir = Path(sweep_dir)
    found = {p.parent for p in sweep_dir.glob(f"**/{METRICS_FILE}")}
    found |= {p.parent.parent for p in sweep_dir.glob(f"**/{CONFIG_FILE.as_posix()}")}
    hydra_jobs = {d for d in found if (d / ".hydra").is_dir()}
    jobs = [d for d in found if not any(parent in hydra_jobs for parent in d.parents)]
    return sorted(jobs, key=lambda d: natural_key(d.as_posix()))


def collect(sweep_dir: str | Path, config_keys: Sequence[str] = DEFAULT_CONFIG_KEYS) -> pd.DataFrame:
    """One tidy row per job of the sweep in ``sweep_dir`` (finished, failed and incomplete alike).

    Columns: ``run_dir`` (relative to ``sweep_dir``), ``status``, one column per override key (values
    parsed as YAML scalars), the ``config_keys`` from the config (``algorithm._target_`` shortened to the
    class name), provenance (:data:`PROVENANCE_COLUMNS`), and the flattened metrics (``test/acc``,
    ``blocks.<block>.<metric>``, ``algorithm.<switch>``, ``extra.*``, ``versions.*``...).
    ``df.attrs["override_keys"]`` lists the override columns (what varied); ``df.attrs["sweep_dir"]`` the
    folder. Rows are sorted by the override values, then by ``run_dir``.

    Raises:
        FileNotFoundError: ``sweep_dir`` is missing or holds no job.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory not found: {sweep_dir}")
    jobs = find_job_dirs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"no runs in {sweep_dir} (no metrics.json or .hydra/config.yaml below it)")

    rows, override_keys = [], []
    for job in jobs:
        row, keys = _job_row(job, sweep_dir, config_keys)
        rows.append(row)
        override_keys += [k for k in keys if k not in override_keys]

    df = pd.DataFrame(rows)
    df = df[_column_order(list(df.columns), override_keys, config_keys)]
    df = sort_rows(df, [*[k for k in override_keys if k != "seed"], "seed", "run_dir"])
    df.attrs["override_keys"] = override_keys
    df.attrs["sweep_dir"] = str(sweep_dir)
    return df


def _job_row(job: Path, sweep_dir: Path, config_keys: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The row of one job and the override keys it sets."""
    overrides = read_overrides(job / OVERRIDES_FILE)
    config = _config_values(job / CONFIG_FILE, config_keys)
    metrics_path = job / METRICS_FILE
    metrics = read_json(metrics_path) if metrics_path.exists() else None
    if metrics_path.exists() and not isinstance(metrics, dict):
        # metrics.json is written atomically, so an unreadable one means something else broke it.
        log.warning("unreadable %s: listed as incomplete", metrics_path)
        metrics = None

    row: dict[str, Any] = {"run_dir": job.relative_to(sweep_dir).as_posix()}
    if metrics is None:
        row["status"] = STATUS_INCOMPLETE
    else:
        # Paths (selected_checkpoint, resumed_from, images) are recorded as absolute paths of the machine that
        # ran the job; runs.csv is committed, so it keeps them relative to the run folder instead.
        row.update({k: run_relative(v, job) if isinstance(v, str) else v for k, v in flatten(metrics).items()})
        # A job that wrote metrics.json without a status predates the field: it ended, so it is "ok".
        row["status"] = str(metrics.get("status") or STATUS_OK)
    # Config values fill gaps only: metrics.json describes what really ran (the seed, for one).
    for key, value in config.items():
        row.setdefault(key, value)
    # Override values are what varied, so they win over a same-named metric (e.g. algorithm.<switch>).
    row.update(overrides)
    return row, list(overrides)


def run_relative(value: str, job: Path) -> str:
    """``value`` relative to the run folder ``job`` when it is an absolute path inside it; other text unchanged.

    ``/srv/octo/results/runs/s/seed=0/checkpoints/best.ckpt`` -> ``checkpoints/best.ckpt``. A run folder copied from
    another machine still records that machine's paths: the part after the folder's own name is kept then, or,
    for a folder renamed since, the part after ``runs/<sweep>/<job>/`` (the layout octo.train writes). Any other
    absolute path keeps only its file name, so no machine path reaches a committed file.
    """
    path = PurePosixPath(value)
    if not path.is_absolute():
        return value
    for base in (job.resolve(), job.absolute()):
        try:
            return path.relative_to(base.as_posix()).as_posix()
        except ValueError:
            pass
    parts = path.parts
    if job.name in parts[:-1]:
        last = len(parts) - 1 - parts[::-1].index(job.name)
        return PurePosixPath(*parts[last + 1:]).as_posix()
    if "runs" in parts[:-3]:
        runs = max(i for i, part in enumerate(parts[:-3]) if part == "runs")
        return PurePosixPath(*parts[runs + 3:]).as_posix()
    return f"<outside the run folder>/{path.name}"


#: per-epoch series in metrics.json that runs.csv leaves out (see :func:`flatten`)
SERIES = ("history", "test_curve.rows")


def flatten(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics.json`` flattened with dots: ``{"blocks": {"b0": {"acc": x}}}`` -> ``{"blocks.b0.acc": x}``.

    Empty sub-dicts (``"blocks": {}``) give no column; lists stay as one cell. The per-epoch series
    (:data:`SERIES`: ``history``, the test curve's rows) are left out: one row per epoch would make a cell of
    hundreds of kilobytes for a full-batch run; they stay in the run's metrics.json and csv/metrics.csv, and the
    curve's best and final epochs are columns of their own.
    """
    metrics = {k: v for k, v in metrics.items() if k != "history"}
    if isinstance(metrics.get("test_curve"), dict):
        metrics["test_curve"] = {k: v for k, v in metrics["test_curve"].items() if k != "rows"}
    records = pd.json_normalize(metrics, sep=".").to_dict("records")
    return records[0] if records else {}


def read_overrides(path: Path) -> dict[str, Any]:
    """The ``key=value`` overrides of a job as ``{key: parsed value}``; empty if the file is absent."""
    if not path.exists():
        return {}
    try:
        items = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as err:  # a broken file must not hide the other runs
        log.warning("unreadable %s (%s): overrides ignored", path, err)
        return {}
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        deleted = key.startswith("~")
        key = current_key(_OVERRIDE_PREFIX.sub("", key.strip()))
        if key.startswith("hydra.") or (not sep and not deleted):
            continue  # hydra.* settings describe the launcher, not the experiment
        out[key] = "deleted" if deleted else parse_scalar(value)
    return out


def parse_scalar(text: str) -> Any:
    """An override value as a YAML scalar (``1`` -> int, ``1e-3`` -> float, ``null`` -> None, ``x`` -> str).

    PyYAML follows YAML 1.1, where ``1e-3`` (no dot) is a string while Hydra reads it as a float, hence
    the float fallback. Lists and dicts are kept as their text so the column stays hashable for groupby.
    """
    text = text.strip()
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and value == text:
        try:
            number = float(text)
        except ValueError:
            return value
        return number if math.isfinite(number) else value  # "nan"/"inf" stay text: NaN would drop out
    if isinstance(value, (list, dict)):
        return text
    return value


def _config_values(path: Path, keys: Iterable[str]) -> dict[str, Any]:
    """Selected values of the job's config (unresolved: interpolations that fail become None)."""
    if not path.exists():
        return {}
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # a broken config must not hide the other runs
        log.warning("unreadable %s (%s): config values left empty", path, err)
        return {}
    out = {}
    for key in keys:
        try:
            value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        except Exception:  # e.g. a key that walks through a list
            value = None
        if OmegaConf.is_config(value):
            value = str(OmegaConf.to_container(value, resolve=False))
        if key.endswith("._target_") and isinstance(value, str):
            value = value.rsplit(".", 1)[-1]  # "octo.algorithms.ff.ForwardForward" -> "ForwardForward"
        out[key] = value
    # The seed is provenance: take it from the config when metrics.json does not say (incomplete jobs).
    out["seed"] = OmegaConf.select(cfg, "seed", default=None, throw_on_resolution_failure=False)
    return out


def _column_order(columns: list[str], override_keys: list[str], config_keys: Sequence[str]) -> list[str]:
    """Stable order: identity, what varied, context, provenance, headline metrics, then the rest sorted."""
    head = ["run_dir", "status", *[k for k in override_keys if k != "seed"], *config_keys,
            *PROVENANCE_COLUMNS, *HEADLINE_METRICS]
    ordered = list(dict.fromkeys(c for c in head if c in columns))
    return ordered + sorted(c for c in columns if c not in ordered)


def format_value(value: Any) -> str:
    """A config value as a short label: ``1.0`` -> ``1``, ``0.001`` -> ``0.001``, missing -> ``-``."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def natural_key(text: str) -> tuple:
    """Sort key that orders ``job/2`` before ``job/10``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text))


def value_key(value: Any) -> tuple:
    """Total-order sort key for a column that may mix numbers, strings and missing values."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return (3, 0, ())  # missing values last
    if isinstance(value, (bool, np.bool_)):
        return (0, int(value), ())
    if isinstance(value, numbers.Real):  # also numpy scalars, which are not int/float subclasses
        return (0, float(value), ())
    try:
        return (1, 0, natural_key(str(value)))
    except TypeError:
        return (2, 0, (repr(value),))


def sort_rows(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """``df`` sorted by the columns ``by`` (those present), robust to mixed types; index reset."""
    by = [c for c in by if c in df.columns]
    if not by or df.empty:
        return df.reset_index(drop=True)
    order = sorted(range(len(df)), key=lambda i: tuple(value_key(df[c].iat[i]) for c in by))
    out = df.iloc[order].reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out
