"""Resumable runs: ``checkpoints/last.ckpt`` holds the whole training state every N epochs, written atomically.

Lightning's ``ModelCheckpoint(save_top_k=0, save_last=True)`` is not enough: since Lightning 2.6 it writes
``last.ckpt`` only in a step where it also saved a top-k checkpoint, so with top-k off it writes it once, when
training ends, and a job killed mid-run restarted from scratch. This callback saves it itself.

Every checkpoint (``best.ckpt`` too) is written through :class:`AtomicCheckpointIO`: Lightning's own writer puts
the file in the system temporary folder and moves it over; where that is another disk (as /tmp often is) the
move is a copy in place, and a full run disk left a truncated ``best.ckpt``.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint

from octo.utils.errors import check_positive


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file beside it, flush it to disk, then ``os.replace`` it over the old
    one: a full disk, a read-only folder or a kill mid-write leaves the previous checkpoint whole. An OSError
    names the checkpoint's path."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        tmp = path.with_name(path.name + ".part")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialise first: a failure here touches no file
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())  # some disks (network, delayed allocation) report a full disk only here
            os.replace(tmp, path)
        except BaseException as err:
            with contextlib.suppress(OSError):  # a read-only folder may refuse this too
                tmp.unlink(missing_ok=True)
            if isinstance(err, OSError) and err.filename is None:  # a failed write() does not say which file
                err.filename = str(path)
            raise


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
