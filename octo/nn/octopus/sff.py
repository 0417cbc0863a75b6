"""SFF local heads (A15b): per-arm auxiliary classifiers and the logit coordinator.

Aux head i: Linear(D_i -> C) on the detached global-average-pooled last feature map of arm i (the published code has
no conv here). Logit coordinator: Linear(N*C -> N) on the detached stacked logits -> softmax weights w; output
sum_i w_i logits_i. The "simple ensemble average" is a separate readout (mean of the arms' softmax probabilities,
and of their logits; the paper does not say which it averaged).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class LogitCoordinator(nn.Module):
    def __init__(self, num_arms: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_arms * num_classes, num_arms)

    def forward(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """``logits``: ``[b, N, C]`` (detached by the caller) -> (combined ``[b, C]``, weights ``[b, N]``)."""
        w = torch.softmax(self.linear(logits.flatten(1)).float(), dim=-1)
        return (w.unsqueeze(-1) * logits.float()).sum(1), w


class SFFHeads(nn.Module):
    """The one block trained in SFF's second pass: every aux head plus the logit coordinator."""

    def __init__(self, dims: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.aux = nn.ModuleList(nn.Linear(d, num_classes) for d in dims)
        self.logit_coordinator = LogitCoordinator(len(dims), num_classes)

    def arm_logits(self, pooled: Sequence[Tensor]) -> Tensor:
        """``[b, N, C]`` from each arm's detached pooled features."""
        return torch.stack([head(p.detach()) for head, p in zip(self.aux, pooled)], 1)
