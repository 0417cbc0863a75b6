"""Loggers from config: CSV always works; W&B goes offline by itself when there is no network or key."""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig, OmegaConf

from octo.data.classes import CIFAR10_CLASSES


def wandb_reachable(host: str = "api.wandb.ai", timeout: float = 1.0) -> bool:
    """True when a W&B key is configured and the server answers; False on any doubt (then log offline)."""
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (
        Path.home().joinpath(".netrc").exists() and host in Path.home().joinpath(".netrc").read_text())
    if not has_key or os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv when it starts; a resumed run keeps its rows."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = list(csv.DictReader(f).fieldnames or [])

    def drop_epochs_from(self, epoch: int) -> None:
        """Forget the rows of epochs >= ``epoch`` (they are trained and logged again after a resume)."""
        self.save()
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames or [], list(reader)
        keep = [r for r in rows if not r.get("epoch") or float(r["epoch"]) < epoch]
        with open(self.metrics_file_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(keep)


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` survives a resume: earlier rows are kept, and the rows of epochs after
    the checkpoint the run resumes from are dropped (they are logged again), so the curve has each epoch once."""

    @property
    def experiment(self) -> _KeepingWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment

    def drop_epochs_from(self, epoch: int) -> None:
        self.experiment.drop_epochs_from(epoch)


def build_loggers(logger_cfg: DictConfig | None) -> list[Logger]:
    """Instantiate every entry of the ``logger`` group that has a ``_target_`` (several may be combined)."""
    loggers: list[Logger] = []
    for name, entry in (logger_cfg or {}).items():
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            continue
        entry = OmegaConf.to_container(entry, resolve=True)
        if entry["_target_"].endswith("WandbLogger"):
            if entry.get("offline") == "auto":
                entry["offline"] = not wandb_reachable()
            Path(entry["save_dir"]).mkdir(parents=True, exist_ok=True)
        loggers.append(instantiate(entry))
    return loggers


def log_summary(loggers: list[Logger], metrics: dict) -> None:
    """Final numbers into each logger: W&B gets the run summary plus the algorithm's final evaluation
    (``metrics["evaluation"]``: resilience matrix as a ``wandb.Table``, per-arm per-class accuracy as a heatmap
    ``wandb.Image`` and a table, attention weights as a table); every logger is then finalised (CSV writes its
    metrics file)."""
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.summary.update(flat)
            items, scalars = wandb_evaluation_items(metrics.get("evaluation") or {}, metrics.get("dataset"))
            if items:
                lg.experiment.log(items)
            lg.experiment.summary.update(scalars)
        lg.finalize("success" if metrics.get("status") == "ok" else "failed")


def resilience_report(evaluation: dict) -> dict:
    """The failure report inside a final evaluation: ``evaluation["resilience"]``, or the evaluation itself when an
    algorithm returns the report unwrapped; ``{}`` when there is none."""
    report = evaluation.get("resilience", evaluation)
    return report if isinstance(report, dict) and "single_failure" in report else {}


def wandb_evaluation_items(evaluation: dict, dataset: str | None = None) -> tuple[dict, dict]:
    """``(items to log, summary scalars)`` for a final evaluation.

    Items: ``evaluation/resilience`` (Table: failure, kind, accuracy for intact, every single, every pair, each
    unit alone), ``evaluation/specialization`` (Image: arms x classes heatmap, %) with
    ``evaluation/specialization_table`` (Table: arm, class, accuracy) so a custom chart can be built from it, and
    ``evaluation/attention`` (Table: arm, weight). Scalars: intact, floors, degradation, critical unit.
    """
    report = resilience_report(evaluation)
    if not report:
        return {}, {}
    import wandb

    rows = [["intact", "intact", report.get("intact")]]
    for kind, key in (("single", "single_failure"), ("pair", "pair_failure"), ("alone", "alone")):
        rows += [[name, kind, acc] for name, acc in (report.get(key) or {}).items()]
    items: dict = {"evaluation/resilience": wandb.Table(columns=["failed", "kind", "accuracy"], data=rows)}
    spec = report.get("specialization") or {}
    if spec:
        arms = list(spec)
        n = len(next(iter(spec.values())))
        classes = _class_names(n, dataset)
        items["evaluation/specialization_table"] = wandb.Table(
            columns=["arm", "class", "accuracy"], data=[[a, classes[c], spec[a][c]] for a in arms for c in range(n)])
        items["evaluation/specialization"] = wandb.Image(_heatmap_rgba(spec, classes),
                                                         caption="per-arm per-class accuracy (%)")
    if report.get("attention"):
        items["evaluation/attention"] = wandb.Table(columns=["arm", "weight"],
                                                    data=[[a, w] for a, w in report["attention"].items()])
    scalars = {f"evaluation/{k}": report[k] for k in ("intact", "floor_single", "floor_double", "degradation_single")
               if isinstance(report.get(k), (int, float))}
    critical = report.get("critical_arm") or report.get("critical_block")
    if critical:
        scalars["evaluation/critical"] = critical
    return items, scalars


def _class_names(n: int, dataset: str | None) -> list[str]:
    return list(CIFAR10_CLASSES) if dataset == "cifar10" and n == 10 else [f"class{c}" for c in range(n)]


def _heatmap_rgba(spec: dict, classes: list[str]):
    """The specialization heatmap rendered to an RGBA array (no file, no pyplot)."""
    import numpy as np

    from octo.utils.figures import figure_rgba, heatmap_figure

    fig = heatmap_figure({"per-arm per-class accuracy": np.array(list(spec.values()), dtype=float) * 100},
                         list(spec), classes, "specialization")
    return figure_rgba(fig)


def finish_wandb(loggers: list[Logger]) -> None:
    """Close the W&B run so that the next job of a multirun gets its own (template #289)."""
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        wandb.finish()
