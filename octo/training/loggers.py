"""Loggers from config: CSV always works; W&B goes offline by itself when there is no network or key."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf


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
    """Final numbers into each logger's run summary (W&B) and metrics file (CSV)."""
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.summary.update(flat)
        lg.finalize("success" if metrics.get("status") == "ok" else "failed")


def finish_wandb(loggers: list[Logger]) -> None:
    """Close the W&B run so that the next job of a multirun gets its own (template #289)."""
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        wandb.finish()
