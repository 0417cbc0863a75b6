"""Schedules ("coordinators" of layer training): which blocks step when. Pure Python, no Lightning.

The config group is ``coordinator`` (``coordinator=simultaneous`` or ``coordinator=greedy``).
"""

from __future__ import annotations

from collections.abc import Sequence

from octo.utils.errors import check_choice

LAYOUTS = ("joint", "per_block")


class Schedule:
    """Base schedule: every block steps on every batch.

    Args:
        optimizer_layout: ``joint`` = one optimiser with one parameter group per block (fast; identical updates
            when block inputs are detached, see tests/test_module.py); ``per_block`` = one optimiser per block,
            stepped one after another, as the reference FF code does.
    """

    def __init__(self, optimizer_layout: str = "joint") -> None:
        check_choice("coordinator.optimizer_layout", optimizer_layout, LAYOUTS)
        self.optimizer_layout = optimizer_layout

    def active(self, blocks: Sequence[str], epoch: int, max_epochs: int) -> list[str]:
        return list(blocks)


class Simultaneous(Schedule):
    """All blocks learn on every batch."""


class Greedy(Schedule):
    """Greedy layer-by-layer: the epochs are split evenly, block k trains alone in its share, then freezes.

    With ``trainer.max_epochs=2000`` and 2 layers, layer 0 gets epochs 0..999 and layer 1 epochs 1000..1999: with a
    full-batch loader this is the reference FF recipe of 1000 steps per layer.
    """

    def active(self, blocks: Sequence[str], epoch: int, max_epochs: int) -> list[str]:
        k = min(epoch * len(blocks) // max(max_epochs, 1), len(blocks) - 1)
        return [blocks[k]]
