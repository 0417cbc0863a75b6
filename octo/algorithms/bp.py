"""Backprop baseline: the same network trained end to end with cross-entropy through a linear head."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from octo.algorithms.base import LocalAlgorithm


class BP(LocalAlgorithm):
    """One block (the whole network plus a linear classifier); the "local" loss is the global loss.

    ``model`` is any module that returns a list of activities (last = features), like :class:`octo.nn.mlp.MLP`,
    or a tensor of features. ``model.out_features`` gives the head's input width.
    """

    def __init__(self, model: nn.Module, num_classes: int) -> None:
        super().__init__(num_classes)
        # one ModuleDict so the whole network is one block with one parameter group
        self.net = nn.ModuleDict({"model": model, "head": nn.Linear(model.out_features, num_classes)})

    def blocks(self) -> dict[str, nn.Module]:
        return {"network": self.net}

    def logits(self, x: Tensor) -> Tensor:
        feats = self.net["model"](x)
        if isinstance(feats, (list, tuple)):
            feats = feats[-1]
        return self.net["head"](feats.flatten(1))

    def local_losses(self, x: Tensor, y: Tensor, phase: str, active: Sequence[str]) -> dict[str, Tensor]:
        return {"network": F.cross_entropy(self.logits(x), y)} if "network" in active else {}

    def predict(self, x: Tensor) -> Tensor:
        return self.logits(x)
