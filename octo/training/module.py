"""The one LightningModule of octo: manual optimisation of local losses, block by block.

Every Lightning detail lives here. Algorithms (``octo.algorithms``) only say which blocks exist and what each
block's loss is; this class owns optimisers, schedulers, stepping, logging, divergence checks and throughput.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

import lightning as L
import torch
from torch import Tensor

from octo.algorithms.base import LocalAlgorithm
from octo.training.optim import block_settings, check_clip_groups, process_gradients
from octo.training.schedules import Schedule
from octo.utils.errors import DivergenceError


class LocalLearningModule(L.LightningModule):
    """Trains a :class:`LocalAlgorithm` with manual optimisation.

    Args:
        algorithm: blocks + local losses + predict.
        schedule: which blocks step when, and the optimiser layout (joint param groups or one per block).
        optimizer: factory ``params -> torch.optim.Optimizer`` (a Hydra ``_partial_``).
        scheduler: optional factory ``optimizer -> LRScheduler``, stepped once per epoch.
        optim_settings: octo's part of the ``optimizer`` config node: gradient clipping / centralisation and the
            per-block values (``blocks``), resolved by :mod:`octo.training.optim` into each block's parameter
            group.
        finite_check_every: check for NaN/inf losses every this many batches (one host sync each time) and at
            every epoch end; a non-finite loss raises :class:`DivergenceError` (status ``failed``).
        divergence: thresholds of the rules for losses that explode without becoming NaN (``conf/train.yaml``
            ``divergence``: ``loss_ratio``, ``loss_floor``, ``end_loss_ratio``, ``chance_factor``; ``enabled``);
            None switches them off. They raise :class:`DivergenceError` with status ``diverged``:

            - at every epoch end (from the epoch-mean losses already read for :attr:`history`, so no extra host
              sync): a block whose epoch-mean loss is above ``loss_ratio`` x |its first loss| (the loss of its
              first step) and above ``loss_floor``;
            - when training ends: the last validation accuracy is at most ``chance_factor`` x chance
              (1 / classes) and some block's epoch-mean loss was, at some epoch, above ``end_loss_ratio`` x
              |its first loss|.

            Both are generous on purpose: some losses legitimately grow (unsupervised and contrastive ones, PFF's,
            CCL's warm-up starts from a scaled-down loss), by far less than these ratios.
    """

    def __init__(self, algorithm: LocalAlgorithm, schedule: Schedule, optimizer: Callable,
                 scheduler: Callable | None = None, optim_settings: Mapping | None = None,
                 finite_check_every: int = 50, divergence: Mapping | None = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.algorithm = algorithm
        self.schedule = schedule
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.optim_settings = dict(optim_settings or {})
        self.finite_check_every = max(1, int(finite_check_every))
        self.block_names = list(algorithm.blocks())
        schedule.check(self.block_names)  # a schedule that does not fit the blocks fails before training
        # our own counters: trainer.global_step counts every optimiser step (Lightning #17958), so with
        # per-block optimisers it is multiplied by the number of blocks
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long), persistent=True)
        self.images_seen = 0
        self.train_seconds = 0.0
        #: training seconds of each epoch run by this process (validation excluded): the benchmark's s/epoch
        self.epoch_seconds: list[float] = []
        self._epoch_train = 0.0
        self._epoch_t0: float | None = None
        self._nonfinite = None  # device flag, read only every finite_check_every batches
        self._steps_since_check = 0
        div = dict(divergence or {})
        self.divergence = div if div and div.get("enabled", True) else None
        #: block -> its first training loss (a device tensor until the first epoch end reads it; then a float)
        self._loss_first: dict[str, Tensor | float] = {}
        #: one row per finished epoch (training seconds, epoch-mean local losses, validation metrics when it ran);
        #: saved in every checkpoint, so a resumed run keeps the whole history
        self.history: list[dict] = []
        #: wall seconds of earlier processes of this run (restored from the checkpoint) and this one's start
        self.wall_before = 0.0
        self.process_t0 = time.perf_counter()
        self._validated = False
        #: set by octo.train: a StopOnSignal whose flag is checked after every batch
        self.stop = None

    # --- optimisers ----------------------------------------------------------------------------------------
    def configure_optimizers(self):
        optimizers, schedulers = self.build_optimizers()
        if self.schedule.optimizer_layout == "joint":
            self._opt_of = {g["name"]: 0 for g in optimizers[0].param_groups} if optimizers else {}
        else:
            self._opt_of = {o.param_groups[0]["name"]: i for i, o in enumerate(optimizers)}
        if self.scheduler_factory is None:
            return optimizers
        return optimizers, schedulers

    def build_optimizers(self, dummy: bool = False) -> tuple[list, list]:
        """(optimisers, schedulers): one parameter group per block that has trainable parameters, with its
        per-block settings (:func:`octo.training.optim.block_settings`) over the global ones. ``dummy=True`` gives
        every group one fresh scalar parameter instead of the block's own (``octo.training.validate`` builds them
        once that way at build time, so that torch's and our checks of every value run before training)."""
        overrides = block_settings(self.block_names, self.algorithm.block_groups(), self.optim_settings)
        check_clip_groups(overrides, joint=self.schedule.optimizer_layout == "joint")
        groups = []
        for n, m in self.algorithm.blocks().items():
            params = [p for p in m.parameters() if p.requires_grad]
            if params:
                params = [torch.nn.Parameter(torch.zeros(1))] if dummy else params
                groups.append({"params": params, "name": n, **overrides.get(n, {})})
        if self.schedule.optimizer_layout == "joint":
            optimizers = [self.optimizer_factory(groups)]
        else:
            optimizers = [self.optimizer_factory([g]) for g in groups]
        schedulers = [self.scheduler_factory(o) for o in optimizers] if self.scheduler_factory is not None else []
        return optimizers, schedulers

    def _optimizers(self) -> list:
        opts = self.optimizers()
        return opts if isinstance(opts, list) else [opts]

    # --- training --------------------------------------------------------------------------------------------
    def active_blocks(self, phase: str) -> list[str]:
        candidates = [b for b in self.algorithm.phase_blocks(phase) if b in self._opt_of]
        max_epochs = self.trainer.max_epochs if self._trainer is not None else 1  # no trainer: octo.bench
        return self.schedule.active(candidates, self.current_epoch, max_epochs)

    def training_step(self, batch, batch_idx: int) -> None:
        x, y, pass_idx = batch
        phase = self.algorithm.phases[pass_idx]
        self._track(self.train_batch(x, y, phase, self._optimizers()), phase, x.shape[0])

    def train_batch(self, x: Tensor, y: Tensor, phase: str, opts: list) -> dict[str, Tensor]:
        """Every optimiser step of one batch (the schedule's active blocks, the optimiser layout, several steps
        when the algorithm yields several loss dicts, clipping, ``after_step``); returns the losses to track.

        Needs no Trainer (no logging, no counters): ``octo.bench`` times training with it, given the optimisers
        of :meth:`configure_optimizers`; without a trainer, backward is plain ``loss.backward()``.
        """
        active = self.active_blocks(phase)
        tracked: dict[str, Tensor] = {}
        # usually one loss dict per batch; algorithms that update while iterating on a batch yield several
        # (every one is logged and checked for NaN; a block stepped twice logs its last loss)
        for losses in self.algorithm.local_loss_steps(x, y, phase, active):
            self._step(losses, opts)
            tracked.update(losses)
        self.algorithm.after_step(phase, active)
        return tracked

    def _step(self, losses: dict[str, Tensor], opts: list) -> None:
        backward = self.manual_backward if self._trainer is not None else Tensor.backward
        if self.schedule.optimizer_layout == "joint":
            # one backward of the sum: each parameter gets gradient from its own block's loss only (detached
            # block inputs), so this equals stepping the blocks one by one. Blocks without loss keep grad=None
            # and Adam/SGD skip them.
            opt = opts[0]
            opt.zero_grad(set_to_none=True)
            if losses:
                backward(torch.stack(list(losses.values())).sum())
                process_gradients(opt.param_groups)  # clipping, centralisation (optimizer config)
                opt.step()
        else:
            for name, loss in losses.items():
                opt = opts[self._opt_of[name]]
                opt.zero_grad(set_to_none=True)
                backward(loss)
                process_gradients(opt.param_groups)  # clipping, centralisation (optimizer config)
                opt.step()

    def _track(self, losses: dict[str, Tensor], phase: str, n: int) -> None:
        self.batches_seen += 1
        self.images_seen += n
        for name, loss in losses.items():
            self.log(f"train/loss/{name}", loss.detach(), on_step=False, on_epoch=True, batch_size=n)
        if losses:
            bad = ~torch.isfinite(torch.stack([v.detach() for v in losses.values()])).all()
            self._nonfinite = bad if self._nonfinite is None else (self._nonfinite | bad)
            if self.divergence is not None:
                for name, loss in losses.items():
                    if name not in self._loss_first:  # a copy on the device, once per block: no sync
                        self._loss_first[name] = loss.detach().float().clone()
        self._steps_since_check += 1
        if self._steps_since_check >= self.finite_check_every:
            self._check_finite()

    def _check_finite(self) -> None:
        if self._nonfinite is not None and bool(self._nonfinite):
            raise DivergenceError(
                f"non-finite local loss at epoch {self.current_epoch}; lower the learning rate or threshold "
                f"(the run is recorded as failed)")
        self._nonfinite = None
        self._steps_since_check = 0

    def on_train_epoch_start(self) -> None:
        self._validated = False
        self._sync()
        self._epoch_train = 0.0
        self._epoch_t0 = time.perf_counter()

    def _stop_clock(self) -> None:
        if self._epoch_t0 is not None:
            self._sync()
            seconds = time.perf_counter() - self._epoch_t0
            self.train_seconds += seconds
            self._epoch_train += seconds
            self._epoch_t0 = None

    def on_validation_epoch_start(self) -> None:
        self._stop_clock()  # validation inside a training epoch does not count as training time
        self._validated = True

    def on_train_epoch_end(self) -> None:
        self._stop_clock()
        self.epoch_seconds.append(self._epoch_train)
        self._check_finite()
        self._record_epoch()
        self._check_explosion()
        scheds = self.lr_schedulers()
        for s in scheds if isinstance(scheds, list) else ([scheds] if scheds else []):
            s.step()

    def _record_epoch(self) -> None:
        """Append this epoch's row to :attr:`history` (one host read of the epoch's logged means)."""
        # at on_train_epoch_end Lightning already reduces the epoch's train/ means; val/ keys are stale unless
        # validation ran in this epoch
        keep = ("train/", "val/") if self._validated else ("train/",)
        row = {"epoch": self.current_epoch + 1, "train_seconds": round(self._epoch_train, 4)}
        for key, value in self.trainer.callback_metrics.items():
            if key.startswith(keep):
                row[key] = float(value)
        self.history.append(row)

    # --- divergence without NaN (see the class docstring) ---------------------------------------------------
    def _first_losses(self) -> dict[str, float]:
        """Block -> |first loss| as floats (the device copies are read once, at the first epoch end)."""
        pending = [k for k, v in self._loss_first.items() if isinstance(v, Tensor)]
        if pending:
            values = torch.stack([self._loss_first[k].reshape(()) for k in pending]).tolist()
            self._loss_first.update(zip(pending, values))
        return {k: abs(float(v)) for k, v in self._loss_first.items()}

    def _check_explosion(self) -> None:
        if self.divergence is None or not self.history:
            return
        ratio, floor = float(self.divergence["loss_ratio"]), float(self.divergence["loss_floor"])
        row = self.history[-1]
        for name, first in self._first_losses().items():
            mean = row.get(f"train/loss/{name}")
            if mean is None or not math.isfinite(mean):
                continue  # non-finite losses are _check_finite's (status "failed")
            if abs(mean) > ratio * first and abs(mean) > floor:
                raise DivergenceError(
                    f"the loss of block {name} exploded in epoch {row['epoch']}: epoch mean {mean:.3g} is "
                    f"{abs(mean) / first if first else math.inf:.3g} x its first value {first:.3g} "
                    f"(divergence.loss_ratio={ratio:g}, loss_floor={floor:g}); lower the learning rate "
                    "(the run is recorded as diverged)", status="diverged")

    def on_train_end(self) -> None:
        """The end-of-run rule: accuracy no better than chance after a block's loss grew by end_loss_ratio."""
        if self.divergence is None:
            return
        acc = next((r["val/acc"] for r in reversed(self.history) if "val/acc" in r), None)
        chance = 1.0 / self.algorithm.num_classes
        factor = float(self.divergence["chance_factor"])
        if acc is None or acc > factor * chance:
            return
        end_ratio = float(self.divergence["end_loss_ratio"])
        for name, first in self._first_losses().items():
            means = [abs(r[f"train/loss/{name}"]) for r in self.history
                     if math.isfinite(r.get(f"train/loss/{name}", math.nan))]
            if means and max(means) > end_ratio * first:
                raise DivergenceError(
                    f"the run ended no better than chance (val/acc {acc:.4f}, chance {chance:.4f}) after the loss "
                    f"of block {name} grew to {max(means):.3g}, "
                    f"{max(means) / first if first else math.inf:.3g} x its first value {first:.3g} "
                    f"(divergence.end_loss_ratio={end_ratio:g}, chance_factor={factor:g}); lower the learning "
                    "rate (the run is recorded as diverged)", status="diverged")

    def wall_seconds(self) -> float:
        """Wall time of the whole run so far, across resumes."""
        return self.wall_before + time.perf_counter() - self.process_t0

    # --- checkpoint: what a resumed run needs to report the whole run -------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["octo_run"] = {"history": self.history, "epoch_seconds": self.epoch_seconds,
                                  "train_seconds": self.train_seconds, "images_seen": self.images_seen,
                                  "wall_seconds": self.wall_seconds(), "loss_first": self._first_losses()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self._trainer is None or self.trainer.state.fn != "fit":
            return  # the test loads best.ckpt: its weights only, not its (shorter) history
        state = checkpoint.get("octo_run") or {}
        self.history = list(state.get("history", []))
        self.epoch_seconds = list(state.get("epoch_seconds", []))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.images_seen = int(state.get("images_seen", 0))
        self.wall_before = float(state.get("wall_seconds", 0.0))
        self._loss_first = {k: float(v) for k, v in state.get("loss_first", {}).items()}
        self.process_t0 = time.perf_counter()
        for lg in self.loggers:  # rows logged after this checkpoint will be logged again
            if hasattr(lg, "drop_epochs_from"):
                lg.drop_epochs_from(int(checkpoint.get("epoch", 0)))

    # --- signals: stop at a batch boundary -------------------------------------------------------------------
    def _check_stop(self, where: str) -> None:
        if self.stop is not None:
            self.stop.check(f"{where} at epoch {self.current_epoch}")

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self._check_stop("during training")

    def on_validation_batch_end(self, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._check_stop("during validation")

    def on_test_batch_end(self, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._check_stop("during the final test")

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # --- evaluation ------------------------------------------------------------------------------------------
    def _evaluate(self, batch, stage: str) -> None:
        x, y = batch[0], batch[1]
        n = x.shape[0]
        for k, v in self.algorithm.evaluate(x, y).items():
            self.log(f"{stage}/{k}", v, on_epoch=True, batch_size=n, prog_bar=k == self.algorithm.monitor[0])

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_test_start(self) -> None:
        # the tested weights are in place now (Lightning loads the checkpoint before this hook); evaluation
        # forwards may move buffers (OctopusNet's feedback gains), so remember where the test pass started
        self._tested_buffers = {k: b.detach().clone() for k, b in self.named_buffers()}

    @torch.no_grad()
    def restore_tested_buffers(self) -> None:
        """Put back the buffers the last test pass started from, so that a later evaluation (the final
        resilience pass) starts where the test started: its intact accuracy is the test accuracy and nothing
        depends on the order in which evaluations run."""
        for name, buf in self.named_buffers():
            if name in getattr(self, "_tested_buffers", {}):
                buf.copy_(self._tested_buffers[name].to(buf.device))

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def train_images_per_second(self) -> float:
        return self.images_seen / self.train_seconds if self.train_seconds > 0 else float("nan")
