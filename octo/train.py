"""Train one configuration, or a whole sweep with ``-m``: ``python -m octo.train [group=option ...] [key=value ...]``.

A job writes into its own folder: the resolved config (``.hydra/``), checkpoints (``checkpoints/best.ckpt``,
``checkpoints/last.ckpt``), logger output, and at the very end ``metrics.json`` (atomically). A job whose folder
already holds a finished ``metrics.json`` is skipped (after checking it was trained with the same config), and one
with only ``last.ckpt`` resumes from it, so re-running a sweep never redoes or overwrites finished work. A job
folder is trained by one process at a time (``.lock``); in a sweep a failed job is recorded and the others go on.
"""

from __future__ import annotations

import errno
import os
import sys
import time
import traceback
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
from omegaconf import DictConfig, OmegaConf, open_dict

from octo.training.checkpoints import AtomicCheckpointIO, LastCheckpoint
from octo.training.interrupt import StopOnSignal
from octo.training.loggers import build_loggers, finish_wandb, log_summary
from octo.training.module import LocalLearningModule
from octo.training.optim import split_optimizer_node
from octo.training.test_curve import TestCurve
from octo.training.validate import (
    check_cli_overrides,
    resolve_progress_bar,
    silence_repeated_messages,
    validate_config,
    validate_optimization,
)
from octo.utils.errors import ConfigError, DivergenceError, OctoError, RunDirError, RunInterrupted
from octo.utils.files import read_json, write_json_atomic
from octo.utils.job_config import check_same_config, save_job_config
from octo.utils.locks import JobLock
from octo.utils.provenance import device_name, git_commit, versions
from octo.utils.sweep import BUSY, record_outcome, sweep_job


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


def algorithm_record(cfg: DictConfig, algorithm) -> dict:
    """metrics.json's ``algorithm``: its class name, its resolved config (the switches, written once, in YAML) and
    the derived facts its ``describe()`` adds."""
    switches = OmegaConf.to_container(cfg.algorithm, resolve=True)
    switches = {k: v for k, v in switches.items() if not (k.startswith("_") and k.endswith("_"))}
    return {"name": cfg.algorithm._target_.rsplit(".", 1)[-1], **switches, **algorithm.describe()}


def _instantiate(node: DictConfig, what: str, **kwargs):
    """instantiate with ``_convert_="all"`` (constructors get plain lists and dicts, never ListConfig / DictConfig),
    turning Hydra's wrapped errors into one ConfigError line naming the config group."""
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, OctoError):
            raise cause from None
        raise ConfigError(f"cannot build {what}: {cause or err}") from None


def build(cfg: DictConfig):
    """Everything a run needs, built before any training so that bad config values fail fast.

    Also resolves ``trainer.enable_progress_bar: null`` (on only when stdout is a terminal) in ``cfg``, and
    drops Lightning's per-checkpoint ``weights_only`` message (see :mod:`octo.training.validate`).
    """
    validate_config(cfg)
    if cfg.get("faithful_eval"):
        # compare like for like with published numbers that trained on every training image and report test
        # accuracy per epoch: no validation split, nothing selected, the test curve recorded
        with open_dict(cfg):
            cfg.dataset.val_size = 0
            cfg.track_test = True
    resolve_progress_bar(cfg)
    silence_repeated_messages()
    datamodule = _instantiate(cfg.dataset, "dataset")
    model = _instantiate(cfg.model, "model")
    algorithm = _instantiate(cfg.algorithm, "algorithm", model=model, num_classes=cfg.dataset.num_classes)
    schedule = _instantiate(cfg.schedule, "schedule")
    # octo's keys (clipping, per-block values) never reach torch
    torch_args, optim_settings = split_optimizer_node(OmegaConf.to_container(cfg.optimizer, resolve=True))
    optimizer = _instantiate(OmegaConf.create(torch_args), "optimizer")
    scheduler = _instantiate(cfg.scheduler, "scheduler") if cfg.get("scheduler") else None
    divergence = cfg.get("divergence")
    module = LocalLearningModule(algorithm, schedule, optimizer, scheduler,
                                 optim_settings=optim_settings,
                                 finite_check_every=cfg.finite_check_every,
                                 divergence=OmegaConf.to_container(divergence) if divergence else None)
    validate_optimization(module, cfg)
    datamodule.train_passes = len(algorithm.phases)
    return datamodule, module


def run(cfg: DictConfig) -> dict:
    """Train, select on validation, test once, write metrics.json; returns the metrics.

    SIGTERM / SIGINT (a time limit, Ctrl-C) stop the run at the next batch boundary: metrics.json then says
    ``"status": "timeout"`` with the epochs done and every per-epoch number so far, :class:`RunInterrupted` is
    raised (non-zero exit), and the same command resumes the run from ``checkpoints/last.ckpt``.

    Any other error is recorded as ``"status": "failed"`` with its one-line cause (:func:`_failed`): a single run
    then raises it, a sweep job returns so that the sweep goes on. A job folder another process holds is skipped.
    """
    out = Path(cfg.paths.output_dir)
    metrics_path = out / "metrics.json"
    lock = JobLock(out)
    started = False  # True once the folder holds this attempt's config: from then on a failure is recorded there
    try:
        if not lock.acquire():  # another launch of the same sweep is training this job: leave it alone
            print(f"octo: skipping {out}: running in another process (pid {lock.holder or '?'})")
            metrics = {"status": BUSY}
        elif (previous := read_json(metrics_path)) and cfg.skip_done and (
                previous.get("status") == "ok" or (previous.get("status") != "timeout" and not cfg.retry_failed)):
            check_same_config(cfg, out)  # a finished job is never relabelled with another config
            print(f"octo: skipping finished job ({previous.get('status')}): {metrics_path}")
            metrics = previous
        else:
            started = True
            save_job_config(cfg, out)
            with StopOnSignal() as stop:
                metrics = _train_and_test(cfg, out, metrics_path, stop)
    except RunInterrupted:
        raise  # also inside a sweep: a time limit stops the whole sweep, not just this job
    except Exception as err:  # noqa: BLE001 - every failure is recorded the same way; _failed re-raises bugs
        # _train_and_test recorded a divergence itself, with the epochs so far
        metrics = _failed(cfg, out, err, record=started and not isinstance(err, DivergenceError))
    finally:
        lock.release()
    record_outcome(out, metrics.get("status") or "ok")  # a metrics.json older than the status field ended ok
    return metrics


# an OSError with one of these means a folder could not be written: the disk, not the code, is at fault
_FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_NO_ACCESS = (errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST)


def _as_octo_error(err: BaseException, out: Path) -> OctoError | None:
    """``err`` as the one-line error a user can act on, or None for an unexpected error (a bug: traceback)."""
    if isinstance(err, OctoError):
        return err
    while err is not None and not isinstance(err, OSError):  # libraries may wrap it (RuntimeError from ...)
        err = err.__cause__ or err.__context__
    if err is None:
        return None
    path = Path(err.filename) if err.filename else out
    if err.errno in _FULL_DISK or (err.errno in _NO_ACCESS and (path == out or out in path.parents)):
        return RunDirError(f"cannot write {path}: {err.strerror or os.strerror(err.errno)}")
    return None


def _failed(cfg: DictConfig, out: Path, err: Exception, record: bool) -> dict:
    """A job that raised ``err``: its one-line cause goes into metrics.json (``status: failed``) when ``record``
    and the disk still takes it. A single run raises it (one line and the error's exit code, or the traceback of
    an unexpected error); a sweep job prints it at once and returns, so that the sweep goes on."""
    error = _as_octo_error(err, out)
    line = str(error) if error is not None else f"{type(err).__name__}: {err}"
    metrics = {"status": "failed", "failure": line, "seed": cfg.get("seed"), "sweep_name": cfg.get("sweep_name")}
    if record and (read_json(out / "metrics.json") or {}).get("status") != "ok":  # never over a finished result
        try:
            write_json_atomic(out / "metrics.json", metrics)
        except OSError:
            pass  # a full or read-only disk: the line below still says what happened
    if not _is_multirun():
        if error is None or error is err:
            raise err
        raise error from err
    if error is None:
        traceback.print_exception(err)
    print(f"octo: job failed: {out.name}: {line}", file=sys.stderr)
    return metrics


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
                           default_root_dir=str(out), plugins=[AtomicCheckpointIO()])
    resume = last_cb.path
    metrics = {"status": "ok", "failure": None, "seed": cfg.seed, "commit": git_commit(),
               "precision": {"trainer": str(trainer.precision), "matmul": cfg.matmul_precision},
               "selection": ("none: faithful evaluation (all training images, test curve, final weights tested)"
                             if cfg.get("faithful_eval") else f"validation {key} ({mode})"),
               "versions": versions(trainer.strategy.root_device),
               "resumed_from": str(resume) if resume.exists() else None,
               "algorithm": algorithm_record(cfg, module.algorithm),
               "dataset": cfg.dataset.name, "sweep_name": cfg.sweep_name}
    interrupted: RunInterrupted | None = None
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume.exists() else None)
        if test_curve is not None:  # trainer.test(ckpt_path=best) restores callback state: keep the whole curve
            test_curve.freeze()
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
        metrics.update({"status": err.status, "failure": str(err), "test/acc": None, f"val/{key}_best": None})
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
    if metrics["status"] in ("failed", "diverged") and not _is_multirun():
        raise DivergenceError(metrics["failure"], status=metrics["status"])
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
                ((x.to(device), y.to(device)) for x, y in datamodule.test_dataloader()), stop,
                _test_batch_limit(trainer)))
    finally:
        algorithm.train(was_training)
        module.cpu()


def _test_batch_limit(trainer) -> int | None:
    """The test batches the trainer's ``limit_test_batches`` allowed (None = all): the final evaluation sees the
    same batches as the test it follows, so a limited (smoke / dry) run stays short."""
    counts = getattr(trainer, "num_test_batches", None) or []
    n = counts[0] if counts else float("inf")
    return None if n == float("inf") else int(n)


def _checked(batches, stop: StopOnSignal, limit: int | None = None):
    """At most ``limit`` batches, checking for a stop signal before each one (the final evaluation can take
    minutes)."""
    for i, batch in enumerate(batches):
        if limit is not None and i >= limit:
            return
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
@sweep_job  # in a sweep, a job that fails before run() could record it is counted and the sweep goes on
def _hydra_main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the best validation metric (what an optimising Hydra sweeper tunes on: never
    the test accuracy)."""
    try:
        pin_gpu()
        torch.set_float32_matmul_precision(cfg.matmul_precision)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        metrics = run(cfg)
        return next((v for k, v in metrics.items() if k.startswith("val/") and k.endswith("_best")), None)
    except OctoError as err:
        print(f"octo: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


def main() -> None:
    """``python -m octo.train`` / ``octo-train``: Hydra's main, after refusing a misspelled group name or an
    unparsable override in one line (Hydra reports these from inside its main, which ends the process)."""
    import os

    # experiments/ and sweeps/ are config groups through this root (conf/train.yaml's search path): the checkout
    # this module belongs to, so that they compose from any working directory
    os.environ.setdefault("OCTO_ROOT", str(Path(__file__).resolve().parents[1]))
    try:
        check_cli_overrides(sys.argv[1:], Path(__file__).resolve().parents[1] / "conf",
                            Path(os.environ.get("OCTO_ROOT", ".")))
    except ConfigError as err:
        print(f"octo: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    _hydra_main()


if __name__ == "__main__":
    main()
