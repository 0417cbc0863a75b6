"""Goodness and the FF loss, shared by every FF-family algorithm."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

GOODNESS = ("mean", "sum")


def goodness(h: Tensor, reduction: str = "mean") -> Tensor:
    """Sum or mean of squared activities over every non-batch dimension -> ``[B]``.

    The reference code uses the mean (so theta = 2.0 is per unit); the paper uses the sum.
    """
    sq = h.pow(2).flatten(1)
    return sq.mean(1) if reduction == "mean" else sq.sum(1)


def ff_loss(g_pos: Tensor, g_neg: Tensor, threshold: float | Tensor) -> Tensor:
    """Mean over the 2B values of softplus([theta - g+, g- - theta]).

    Positives are pushed above theta, negatives below (p(positive) = sigmoid(g - theta)). softplus is the
    overflow-safe form of the reference's log(1 + exp(.)).
    """
    return 0.5 * (F.softplus(threshold - g_pos).mean() + F.softplus(g_neg - threshold).mean())
