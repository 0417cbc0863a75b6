"""Test accuracy at every validation epoch (and the last), recorded for comparison with published curves, never for selection.

Published numbers are often the test accuracy of the final or the best epoch (the OctopusNet tables, Hinton's
"error after 60 epochs"). To compare like with like a run can record that curve too. It is kept apart from
everything that selects: it is logged as ``test_curve/<metric>`` (not ``val/``), checkpoint selection and the
value returned to sweepers read only ``val/``, and metrics.json stores it under ``test_curve`` beside a note
saying so. The pass snapshots and restores the module's buffers, so tracking changes no training state.
"""

from __future__ import annotations

import lightning as L
import torch


def _limit(limit: int | float, full: int) -> int:
    """Batches Lightning would take for ``limit_test_batches`` (an int count or a fraction)."""
    return min(full, limit) if isinstance(limit, int) else max(1, int(full * limit))


class TestCurve(L.Callback):
    """After each validation pass, evaluate the test split with the current weights and keep
    ``{"epoch": e, "acc": ...}`` rows in :attr:`rows` (saved in checkpoints, so a resumed run keeps them)."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._frozen = False

    def freeze(self) -> None:
        """Keep the rows as they are now: loading the selected checkpoint for the test would roll them back."""
        self._frozen = True

    @torch.no_grad()
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # at the validation epochs (every check_val_every_n_epoch), also when there is no validation split
        if (trainer.current_epoch + 1) % (trainer.check_val_every_n_epoch or 1) and \
                trainer.current_epoch + 1 != trainer.max_epochs:
            return
        pl_module._stop_clock()  # evaluation is not training time (idempotent: the module stops it again)
        algorithm = pl_module.algorithm
        buffers = {k: b.detach().clone() for k, b in pl_module.named_buffers()}
        sums: dict[str, torch.Tensor] = {}
        n = 0
        loader = trainer.datamodule.test_dataloader()
        for i, (x, y) in enumerate(loader):
            if i >= _limit(trainer.limit_test_batches, len(loader)):
                break  # a limited (smoke / dry) run evaluates as many test batches as its test
            pl_module._check_stop("during the test curve")
            x, y = x.to(pl_module.device), y.to(pl_module.device)
            for key, value in algorithm.evaluate(x, y).items():
                sums[key] = sums.get(key, 0) + value.float() * x.shape[0]
            n += x.shape[0]
        for name, buf in pl_module.named_buffers():  # the test pass must not move training state
            buf.copy_(buffers[name])
        row = {"epoch": trainer.current_epoch + 1, **{k: float(v / n) for k, v in sums.items()}}
        self.rows.append(row)
        for key, value in row.items():
            if key != "epoch":
                pl_module.log(f"test_curve/{key}", value, on_epoch=True)

    def state_dict(self) -> dict:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._frozen:
            self.rows = list(state_dict.get("rows", []))

    def summary(self) -> dict:
        """What metrics.json stores: the curve, the best and final epochs, and the reminder."""
        if not self.rows:
            return {}
        best = max(self.rows, key=lambda r: r.get("acc", float("-inf")))
        return {"note": "test accuracy after each validation epoch; reported for comparison with published "
                        "best/final-epoch numbers, never used for selection",
                "rows": self.rows, "final": self.rows[-1], "best": best}
