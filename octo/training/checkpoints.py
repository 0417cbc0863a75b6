"""Resumable runs: ``checkpoints/last.ckpt`` holds the whole training state every N epochs, written atomically.

Lightning's ``ModelCheckpoint(save_top_k=0, save_last=True)`` is not enough: since Lightning 2.6 it writes
``last.ckpt`` only in a step where it also saved a top-k checkpoint, so with top-k off it writes it once, when
training ends, and a job killed mid-run restarted from scratch. This callback saves it itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from octo.utils.errors import check_positive


class LastCheckpoint(Checkpoint):
    """Save the trainer state to ``path`` after every ``every_n_epochs``-th training epoch and when training ends.

    A ``Checkpoint`` subclass on purpose: Lightning runs checkpoint callbacks' ``on_train_epoch_end`` after the
    LightningModule's own hook, so the saved state already holds that epoch's scheduler step and the best-model
    callback's verdict on that epoch's validation (which ran before the hook).
    """

    def __init__(self, path: str | Path, every_n_epochs: int = 1):
        check_positive("checkpoint_every_n_epochs", every_n_epochs)
        self.path = Path(path)
        self.every_n_epochs = every_n_epochs
        self._saved_step: int | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._saved_step != trainer.global_step:
            self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        # write beside, then rename: a job killed while writing keeps its previous last.ckpt
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        self._saved_step = trainer.global_step
