"""Schedules of layer training: which blocks step when. Pure Python, no Lightning.

The config group is ``schedule`` (``schedule=simultaneous`` or ``schedule=greedy``; ``schedule.optimizer_layout``,
``schedule.shares``). It used to be called ``coordinator``, a name it shared with OctopusNet's coordinator block
(``model.coordinator``); the old name is refused with a one-line hint (:mod:`octo.utils.renames`).
"""

from __future__ import annotations

from collections.abc import Sequence

from octo.utils.errors import ConfigError, check_choice

LAYOUTS = ("joint", "per_block")


class Schedule:
    """Base schedule: every block steps on every batch.

    Args:
        optimizer_layout: ``joint`` = one optimiser with one parameter group per block (fast; identical updates
            when block inputs are detached, see tests/test_module.py); ``per_block`` = one optimiser per block,
            stepped one after another, as the reference FF code does.
    """

    def __init__(self, optimizer_layout: str = "joint") -> None:
        check_choice("schedule.optimizer_layout", optimizer_layout, LAYOUTS)
        self.optimizer_layout = optimizer_layout

    def check(self, blocks: Sequence[str]) -> None:
        """Raise ConfigError if this schedule cannot drive ``blocks`` (called before training)."""

    def active(self, blocks: Sequence[str], epoch: int, max_epochs: int) -> list[str]:
        return list(blocks)


class Simultaneous(Schedule):
    """All blocks learn on every batch."""


class Greedy(Schedule):
    """Greedy layer-by-layer: the epochs are split over the blocks, block k trains alone in its share, then freezes.

    With ``trainer.max_epochs=2000`` and 2 layers, layer 0 gets epochs 0..999 and layer 1 epochs 1000..1999: with a
    full-batch loader this is the reference FF recipe of 1000 steps per layer.

    Args:
        optimizer_layout: see :class:`Schedule`.
        shares: relative share of the epochs for each block, in block order (``null`` = equal shares). The
            unsupervised FF extension trains 4 layers for 1000 steps and its read-out for 500:
            ``shares=[2, 2, 2, 2, 1]`` with ``trainer.max_epochs=4500``.
    """

    def __init__(self, optimizer_layout: str = "joint", shares: Sequence[float] | None = None) -> None:
        super().__init__(optimizer_layout)
        if shares is not None:
            shares = list(shares)
            if not shares or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                     for v in shares):
                raise ConfigError(f"schedule.shares={shares!r} must be a non-empty list of positive numbers "
                                  "(one per block) or null")
        self.shares = shares

    def check(self, blocks: Sequence[str]) -> None:
        if self.shares is not None and len(self.shares) != len(blocks):
            raise ConfigError(f"schedule.shares has {len(self.shares)} entries but the algorithm has "
                              f"{len(blocks)} blocks {list(blocks)}: give one share per block")

    def active(self, blocks: Sequence[str], epoch: int, max_epochs: int) -> list[str]:
        if self.shares is None:
            k = min(epoch * len(blocks) // max(max_epochs, 1), len(blocks) - 1)
            return [blocks[k]]
        self.check(blocks)
        # block k owns the epochs e with cum[k-1] <= e * total / max_epochs < cum[k] (compared without dividing)
        total, bound = sum(self.shares), 0.0
        for name, share in zip(blocks, self.shares):
            bound += share
            if epoch * total < bound * max(max_epochs, 1):
                return [name]
        return [blocks[-1]]
