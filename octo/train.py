"""Train one configuration, or a whole sweep with ``-m``: ``python -m octo.train [group=option ...] [key=value ...]``.

A job writes into its own folder: the resolved config (``.hydra/``), checkpoints (``checkpoints/best.ckpt``,
``checkpoints/last.ckpt``), logger output, and at the very end ``metrics.json`` (atomically). A job whose folder
already holds a finished ``metrics.json`` is skipped, and one with only ``last.ckpt`` resumes from it, so re-running
a sweep never redoes or overwrites finished work.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from octo.training.checkpoints import LastCheckpoint
from octo.training.interrupt import StopOnSignal
from octo.training.loggers import build_loggers, finish_wandb, log_summary
from octo.training.module import LocalLearningModule
from octo.training.test_curve import TestCurve
from octo.utils.errors import ConfigError, DivergenceError, OctoError, RunInterrupted
from octo.utils.files import read_json, write_json_atomic
from octo.utils.provenance import device_name, git_commit, versions


def _is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # called outside @hydra.main (tests compose configs themselves)
        return False


def pin_gpu() -> None:
    """Spread the jobs of a parallel multirun over the visible GPUs (job k -> GPU k mod n).

    Hydra's joblib launcher shows every job every GPU (hydra #1331); this must run before CUDA is initialised.
    With one GPU all jobs share it, which is what small FF jobs want.
    """
    import os

    if not _is_multirun() or "OCTO_PINNED" in os.environ:
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    if len(ids) > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = ids[HydraConfig.get().job.num % len(ids)]
    os.environ["OCTO_PINNED"] = "1"


def _instantiate(node: DictConfig, what: str, **kwargs):
    """instantiate, turning Hydra's wrapped errors into one ConfigError line naming the config group."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, OctoError):
            raise cause from None
        raise ConfigError(f"cannot build {what}: {cause or err}") from None


def build(cfg: DictConfig):
    """Everything a run needs, built before any training so that bad config values fail fast."""
    datamodule = _instantiate(cfg.dataset, "dataset")
    model = _instantiate(cfg.model, "model")
    algorithm = _instantiate(cfg.algorithm, "algorithm", model=model, num_classes=cfg.dataset.num_classes)
    schedule = _instantiate(cfg.coordinator, "coordinator")
    optimizer = _instantiate(cfg.optimizer, "optimizer")
    scheduler = _instantiate(cfg.scheduler, "scheduler") if cfg.get("scheduler") else None
    module = LocalLearningModule(algorithm, schedule, optimizer, scheduler, grad_clip=cfg.grad_clip,
                                 finite_check_every=cfg.finite_check_every)
    datamodule.train_passes = len(algorithm.phases)
    return datamodule, module


def run(cfg: DictConfig) -> dict:
    """Train, select on validation, test once, write metrics.json; returns the metrics.

    SIGTERM / SIGINT (a time limit, Ctrl-C) stop the run at the next batch boundary: metrics.json then says
    ``"status": "timeout"`` with the epochs done and every per-epoch number so far, :class:`RunInterrupted` is
    raised (non-zero exit), and the same command resumes the run from ``checkpoints/last.ckpt``.
    """
    out = Path(cfg.paths.output_dir)
    metrics_path = out / "metrics.json"
    previous = read_json(metrics_path)
    if previous and cfg.skip_done and (previous.get("status") == "ok"
                                       or (previous.get("status") != "timeout" and not cfg.retry_failed)):
        print(f"octo: skipping finished job ({previous.get('status')}): {metrics_path}")
        return previous

    with StopOnSignal() as stop:
        return _train_and_test(cfg, out, metrics_path, stop)


def _train_and_test(cfg: DictConfig, out: Path, metrics_path: Path, stop: StopOnSignal) -> dict:
    t0 = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, module = build(cfg)
    module.stop, module.process_t0 = stop, t0
    loggers = build_loggers(cfg.get("logger"))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for lg in loggers:
        lg.log_hyperparams(resolved)

    ckpt_dir = out / "checkpoints"
    key, mode = module.algorithm.monitor
    best_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=f"val/{key}", mode=mode, save_top_k=1,
                              save_on_train_epoch_end=False)
    last_cb = LastCheckpoint(ckpt_dir / "last.ckpt", every_n_epochs=cfg.checkpoint_every_n_epochs)
    callbacks = [best_cb, last_cb]
    test_curve = TestCurve() if cfg.get("track_test") else None
    if test_curve is not None:
        callbacks.append(test_curve)
    trainer = _instantiate(cfg.trainer, "trainer", logger=loggers or False, callbacks=callbacks,
                           default_root_dir=str(out))
    resume = last_cb.path
    metrics = {"status": "ok", "failure": None, "seed": cfg.seed, "commit": git_commit(),
               "versions": versions(), "resumed_from": str(resume) if resume.exists() else None,
               "algorithm": {"name": cfg.algorithm._target_.rsplit(".", 1)[-1], **module.algorithm.describe()},
               "dataset": cfg.dataset.name, "sweep_name": cfg.sweep_name}
    interrupted: RunInterrupted | None = None
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume.exists() else None)
        stop.check("after training")
        best = best_cb.best_model_path or None
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)[0]
        module.restore_tested_buffers()
        metrics.update({k: float(v) for k, v in tested.items() if k.count("/") == 1})
        metrics.update({
            "test/acc": tested.get("test/acc"),
            f"val/{key}_best": float(best_cb.best_model_score) if best_cb.best_model_score is not None else None,
            "selected_checkpoint": best or "last weights (no validation ran)",
            "blocks": _block_metrics(tested),
        })
        evaluation = _final_evaluation(module, datamodule, trainer, stop)
        if evaluation:
            metrics["evaluation"] = evaluation
        if callable(getattr(module.algorithm, "save_images", None)):
            metrics["images"] = _save_images(module, datamodule, out)
    except DivergenceError as err:
        metrics.update({"status": "failed", "failure": str(err), "test/acc": None, f"val/{key}_best": None})
    except (RunInterrupted, SIGTERMException, KeyboardInterrupt) as err:
        interrupted = err if isinstance(err, RunInterrupted) else RunInterrupted(
            f"{stop.received or type(err).__name__} received at epoch {trainer.current_epoch}; the run is "
            "recorded as 'timeout' and resumes from checkpoints/last.ckpt when the same command is run again")
        metrics.update({"status": "timeout", "failure": str(interrupted), "test/acc": None,
                        f"val/{key}_best": float(best_cb.best_model_score)
                        if best_cb.best_model_score is not None else None})
    if test_curve is not None and test_curve.rows:
        metrics["test_curve"] = test_curve.summary()
    metrics.update({
        # completed epochs: an interrupted epoch is dropped (the resumed run trains it again)
        "epochs": trainer.current_epoch, "wall_time_s": module.wall_seconds(),
        "train_images_per_s": module.train_images_per_second(),
        "train_epoch_seconds": [round(t, 4) for t in module.epoch_seconds],
        "history": module.history,
        "device": device_name(datamodule.device),  # the training device (test teardown moves the model to CPU)
    })
    write_json_atomic(metrics_path, metrics)
    try:
        log_summary(loggers, metrics)
    finally:
        finish_wandb(loggers)
    _report(metrics, out)
    if interrupted is not None:
        raise interrupted  # also inside a sweep: a time limit stops the whole sweep, not just this job
    if metrics["status"] == "failed" and not _is_multirun():
        raise DivergenceError(metrics["failure"])
    return metrics


@torch.no_grad()
def _final_evaluation(module: LocalLearningModule, datamodule, trainer, stop: StopOnSignal) -> dict:
    """The algorithm's extra evaluation on the test split (selected weights, eval mode, training device)."""
    algorithm = module.algorithm
    device = datamodule.device  # the training device: trainer.test's teardown moved the model to the CPU
    module.to(device)
    was_training = algorithm.training
    algorithm.eval()
    try:
        with trainer.precision_plugin.forward_context():  # the test step's autocast (bf16 under trainer=gpu)
            return algorithm.final_evaluation(_checked(
                ((x.to(device), y.to(device)) for x, y in datamodule.test_dataloader()), stop))
    finally:
        algorithm.train(was_training)
        module.cpu()


def _checked(batches, stop: StopOnSignal):
    """The batches, checking for a stop signal before each one (the final evaluation can take minutes)."""
    for batch in batches:
        stop.check("during the final evaluation")
        yield batch


@torch.no_grad()
def _save_images(module: LocalLearningModule, datamodule, out: Path, n: int = 500) -> str:
    """Reconstructions / samples of algorithms with a generative part (``save_images(x, path)``), drawn from
    the first ``n`` test images with the weights just tested (the selected checkpoint)."""
    x = next(iter(datamodule.test_dataloader()))[0][:n].to(datamodule.device)
    module.to(datamodule.device)
    return str(module.algorithm.save_images(x, out / "images" / "test.png"))


def _block_metrics(tested: dict) -> dict:
    """``test/layer0/acc`` -> ``{"layer0": {"acc": ...}}``."""
    blocks: dict[str, dict] = {}
    for key, value in tested.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "test":
            blocks.setdefault(parts[1], {})[parts[2]] = float(value)
    return blocks


def _report(metrics: dict, out: Path) -> None:
    if metrics["status"] == "timeout":
        print(f"octo: run stopped: {metrics['failure']}", file=sys.stderr)
    elif metrics["status"] == "ok":
        tests = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("test/") and v is not None)
        vals = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("val/") and v is not None)
        print(f"octo: {tests} (model selected on validation: {vals or 'no validation ran'}); "
              f"{metrics['train_images_per_s']:.0f} train images/s on {metrics['device']}")
    else:
        print(f"octo: run FAILED: {metrics['failure']}")
    print(f"octo: results in {out} (metrics.json, checkpoints/, .hydra/config.yaml)")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns test accuracy (used by Hydra sweepers)."""
    try:
        pin_gpu()
        torch.set_float32_matmul_precision(cfg.matmul_precision)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        return run(cfg).get("test/acc")
    except OctoError as err:
        print(f"octo: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
