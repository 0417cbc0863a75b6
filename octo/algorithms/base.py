"""The contract every learning algorithm in octo fulfils.

An algorithm is a plain ``nn.Module`` that owns its network and knows its *local* losses. It never touches
optimisers or Lightning: ``octo.training.module.LocalLearningModule`` does the stepping, so every algorithm gets
manual optimisation, schedules, logging and checkpoints the same way.

Terms
-----
block
    A trainable unit with its own local loss (an FF layer, an OctopusNet arm, a coordinator, a whole BP network).
    Each block gets its own optimiser or its own parameter group; no parameter may belong to two blocks.
phase
    One pass over the training set inside an epoch. Most algorithms have one (``"train"``); OctopusNet trains its
    arms in an ``"ff"`` pass and then its coordinator in a ``"coordinator"`` pass, as the published code does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn


class LocalAlgorithm(nn.Module, ABC):
    """Base class: blocks with local losses, and a predict method."""

    #: passes over the training data per epoch, in order
    phases: tuple[str, ...] = ("train",)
    #: validation metric used for model selection (checkpoint "best") and its direction
    monitor: tuple[str, str] = ("acc", "max")

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = int(num_classes)

    # --- what is trained -------------------------------------------------------------------------------------
    @abstractmethod
    def blocks(self) -> dict[str, nn.Module]:
        """Ordered name -> module of the trainable units; parameters must be disjoint."""

    def phase_blocks(self, phase: str) -> list[str]:
        """Blocks that may step during ``phase`` (the schedule, ``schedule=``, narrows this further)."""
        return list(self.blocks())

    def block_groups(self) -> dict[str, list[str]]:
        """Named sets of blocks that the optimiser config may address as one (``optimizer.blocks.<group>``, e.g.
        CCL's ``forward`` / ``feedback``). Optimiser values themselves never live in the algorithm: they are the
        ``optimizer`` node's (:mod:`octo.training.optim`)."""
        return {}

    # --- how it learns ---------------------------------------------------------------------------------------
    @abstractmethod
    def local_losses(self, x: Tensor, y: Tensor, phase: str, active: Sequence[str]) -> dict[str, Tensor]:
        """One scalar loss per *active* block.

        Locality contract: the loss of block ``b`` has a gradient only with respect to ``b``'s parameters
        (inputs are detached at block boundaries). ``tests/test_locality.py`` checks this for every algorithm.
        """

    def local_loss_steps(self, x: Tensor, y: Tensor, phase: str, active: Sequence[str]
                         ) -> Iterator[dict[str, Tensor]]:
        """Several optimiser steps on one batch: yields loss dicts (same contract as :meth:`local_losses`); the
        module backpropagates and steps after each one, before the generator resumes. Default: one step.

        For algorithms whose reference updates the weights while it iterates on a batch (PFF: an Adam step after
        each of its K inference steps). Anything carried between yields must be detached.
        """
        yield self.local_losses(x, y, phase, active)

    def after_step(self, phase: str, active: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """Called after the optimisers stepped (e.g. to refresh cached state)."""

    # --- how it is evaluated ---------------------------------------------------------------------------------
    @abstractmethod
    def predict(self, x: Tensor) -> Tensor:
        """Class scores ``[B, num_classes]`` (argmax = prediction). Called under ``torch.no_grad``."""

    def block_metrics(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Optional per-block evaluation metrics (scalars, summed/averaged over a batch by the caller)."""
        return {}

    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Metrics of one evaluation batch (0-dim tensors, averaged over batches weighted by size).

        Keys without ``/`` are model-level (``acc``); ``<block>/<metric>`` keys are per block.
        """
        return {"acc": self.accuracy(x, y), **self.block_metrics(x, y)}

    def final_evaluation(self, loader) -> dict:
        """Optional evaluation after the final test, with the selected weights, over a whole ``loader`` of
        ``(x, y)`` test batches: e.g. OctopusNet's resilience (every arm and pair failed) and specialization
        (per-arm per-class accuracy). JSON-serialisable; stored as ``metrics.json["evaluation"]``."""
        return {}

    def describe(self) -> dict:
        """Derived facts worth recording in ``metrics.json`` next to the run's switches (the resolved algorithm
        config, recorded by ``octo.train``): a resolved ``null``, a network size, which evaluation path runs. Never
        a switch again (``tests/test_contract.py`` checks)."""
        return {}

    @torch.no_grad()
    def accuracy(self, x: Tensor, y: Tensor) -> Tensor:
        """Fraction of correct predictions, as a 0-dim tensor (no host sync)."""
        return (self.predict(x).argmax(dim=1) == y).float().mean()
