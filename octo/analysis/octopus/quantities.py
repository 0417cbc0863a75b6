"""Named quantities of a run, read from the tidy runs table (``octo.analysis.collect``).

A published table speaks of "arm 2 failed", "the worst pair", "the simple average"; a run's ``metrics.json``
stores them under ``test/...``, ``blocks.<block>.<metric>`` and ``evaluation...`` (the algorithm's
``final_evaluation``). This module is the one place that maps the first onto the second, so renderers never
hard-code column names. Resilience entries are looked up under ``evaluation.resilience.`` and, for an algorithm
that returns the report unwrapped, under ``evaluation.``.

Quantities: ``acc``, ``acc_ensemble``, ``acc_ensemble_logits``, ``arm_acc.<arm>``, ``weight.<arm>``,
``attention.<arm>``, ``sep_mean``, ``intact``, ``single.<unit>``, ``pair.<a>+<b>``, ``alone.<unit>``,
``floor_single``, ``floor_double``, ``degradation_single``, ``critical`` (a label), ``distinct.<unit>``.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from octo.analysis.collect import STATUS_INCOMPLETE, STATUS_OK, format_value
from octo.analysis.tables import format_cell

EVAL_PREFIXES = ("evaluation.resilience.", "evaluation.")
_TEST = {"acc": "test/acc", "acc_ensemble": "test/acc_ensemble", "acc_ensemble_logits": "test/acc_ensemble_logits",
         # the test curve (track_test / faithful_eval): best and final epoch, as the published tables report them
         "acc_best_epoch": "test_curve.best.acc", "acc_final_epoch": "test_curve.final.acc"}
_EVAL = {"single": "single_failure", "pair": "pair_failure", "alone": "alone", "distinct": "distinct_predictions"}
_SCALARS = ("intact", "floor_single", "floor_double", "degradation_single")


@dataclass(frozen=True)
class Kind:
    """How a quantity is shown: multiplied by ``scale`` with ``decimals``; ``label`` = a category, not a number."""

    scale: float = 100.0
    decimals: int = 2
    label: bool = False


def kind(quantity: str) -> Kind:
    """Display settings of ``quantity`` (accuracies in %, weights and separations as they are)."""
    head = quantity.split(".", 1)[0]
    if quantity == "critical":
        return Kind(label=True)
    if head in ("weight", "attention", "sep_mean"):
        return Kind(1.0, 3)
    if head == "distinct":
        return Kind(1.0, 1)
    return Kind()


def _eval_column(df: pd.DataFrame, *names: str) -> str | None:
    for prefix in EVAL_PREFIXES:
        for name in names:
            if prefix + name in df.columns:
                return prefix + name
    return None


def column(df: pd.DataFrame, quantity: str) -> str | None:
    """The column of ``df`` that holds ``quantity`` (None if no run recorded it)."""
    head, _, rest = quantity.partition(".")
    if quantity in _TEST:
        return _TEST[quantity] if _TEST[quantity] in df.columns else None
    if head == "arm_acc":
        return f"blocks.{rest}.acc" if f"blocks.{rest}.acc" in df.columns else _eval_column(df, f"arm_accuracy.{rest}")
    if head == "weight":
        own = f"blocks.{rest}.weight"
        return own if own in df.columns else _eval_column(df, f"attention.{rest}")
    if head == "attention":
        own = f"blocks.{rest}.attention"
        return own if own in df.columns else _eval_column(df, f"attention.{rest}")
    if head in _EVAL:
        return _eval_column(df, f"{_EVAL[head]}.{rest}")
    if quantity in _SCALARS:
        return _eval_column(df, quantity)
    if quantity == "critical":
        return _eval_column(df, "critical_arm", "critical_block")
    raise KeyError(f"unknown quantity {quantity!r}")


def values(df: pd.DataFrame, quantity: str) -> pd.Series:
    """Per-run values of ``quantity`` (raw, unscaled; NaN / None where a run has none)."""
    if quantity == "sep_mean":
        cols = [c for c in df.columns if re.fullmatch(r"blocks\.arm\d+\.sep", c)]
        if not cols:
            return pd.Series(np.nan, index=df.index)
        return df[cols].apply(pd.to_numeric, errors="coerce").mean(axis=1)
    col = column(df, quantity)
    if col is None:
        return pd.Series(None if kind(quantity).label else np.nan, index=df.index, dtype=object
                         if kind(quantity).label else float)
    return df[col] if kind(quantity).label else pd.to_numeric(df[col], errors="coerce")


def select(df: pd.DataFrame, cell: Mapping[str, Any]) -> pd.DataFrame:
    """Runs of ``df`` whose override values equal ``cell`` (compared as labels: ``0.0`` == ``0``, ``True``)."""
    if df.empty:
        return df
    mask = pd.Series(True, index=df.index)
    for key, want in cell.items():
        if key not in df.columns:
            return df.iloc[0:0]
        mask &= df[key].map(format_value) == format_value(want)
    return df[mask]


def summarize_cell(runs: pd.DataFrame, quantity: str) -> dict[str, Any]:
    """``{"text", "mean", "sd", "n", "values"}`` of ``quantity`` over the runs of one cell.

    Numbers: mean ± sd over finished runs, cell text as in ``octo.analysis.tables.format_cell`` (failed and
    incomplete runs counted, never averaged; finished runs that lack the quantity give ``"no value (n_ok=k)"``).
    Labels: the most frequent one with its count, e.g. ``"arm1 (3/3)"``. No run of the cell at all: ``"missing"``.
    """
    k = kind(quantity)
    if runs.empty:
        return {"text": "missing", "mean": np.nan, "sd": np.nan, "n": 0, "values": []}
    status = runs["status"].astype(str) if "status" in runs.columns else pd.Series(STATUS_OK, index=runs.index)
    ok = status == STATUS_OK
    n_failed = int((~ok & (status != STATUS_INCOMPLETE)).sum())
    n_incomplete = int((status == STATUS_INCOMPLETE).sum())
    raw = values(runs, quantity)[ok]
    if k.label:
        seen = [str(v) for v in raw if v is not None and not (isinstance(v, float) and np.isnan(v))]
        if not seen:
            return {"text": format_cell(np.nan, np.nan, 0, n_failed, n_incomplete, int(ok.sum())), "mean": np.nan,
                    "sd": np.nan, "n": 0, "values": []}
        top, count = Counter(seen).most_common(1)[0]
        return {"text": f"{top} ({count}/{len(seen)})", "mean": np.nan, "sd": np.nan, "n": len(seen), "values": seen}
    vals = raw.dropna() * k.scale
    n_missing = int(raw.isna().sum())
    mean, sd = (float(vals.mean()), float(vals.std())) if len(vals) else (np.nan, np.nan)
    text = format_cell(mean, sd, len(vals), n_failed, n_incomplete, n_missing, k.decimals)
    return {"text": text, "mean": mean, "sd": sd, "n": len(vals), "values": vals.tolist()}


def per_class(runs: pd.DataFrame, arm: str) -> np.ndarray | None:
    """Mean over finished runs of one arm's per-class accuracy list (``specialization.<arm>``), in [0, 1]."""
    col = _eval_column(runs, f"specialization.{arm}")
    if col is None:
        return None
    ok = runs["status"].astype(str) == STATUS_OK if "status" in runs.columns else slice(None)
    rows = [_as_list(v) for v in runs.loc[ok, col]]
    rows = [r for r in rows if r]
    return np.mean(np.array(rows, dtype=float), axis=0) if rows else None


def _as_list(value: Any) -> list[float] | None:
    """A list cell as collected (a list) or as read back from runs.csv (its text)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [float(v) for v in value]
    if isinstance(value, str) and value.startswith("["):
        return [float(v) for v in ast.literal_eval(value)]
    return None
