"""OctopusNet's local rules and small helpers: label overlay, the per-arm FF loss,
the class-grouped (CG) loss, module dropout and calls through frozen blocks.

Loss convention: OctopusNet's per-arm loss is the *sum* of two batch means, mean softplus(theta - g+) +
mean softplus(g- - theta), which starts at 2 ln 2 = 1.386 with the midpoint threshold. octo's shared
:func:`octo.algorithms.goodness.ff_loss` averages over the 2B values, i.e. half of it, so
:func:`arm_ff_loss` = 2 * ff_loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from octo.algorithms.goodness import ff_loss
from octo.encodings.fourier import fourier_patterns
from octo.encodings.onehot import onehot_overlay, onehot_split
from octo.utils.errors import ConfigError, check_choice

LABEL_ENCODINGS = ("fourier", "onehot")


def arm_ff_loss(g_pos: Tensor, g_neg: Tensor, threshold: float | Tensor) -> Tensor:
    """mean softplus(theta - g+) + mean softplus(g- - theta) (= 2 * octo's ff_loss)."""
    return 2 * ff_loss(g_pos, g_neg, threshold)


def midpoint_threshold(g_pos: Tensor, g_neg: Tensor) -> Tensor:
    """The adaptive threshold: (mean g+ + mean g-) / 2 of the current batch, a constant (no gradient)."""
    return 0.5 * (g_pos.mean() + g_neg.mean()).detach()


def cg_loss(group_goodness: Tensor, y: Tensor, threshold: float = 2.0) -> Tensor:
    """Class-grouped loss of one arm: mean softplus(theta - G_y) + mean softplus(mean_{j != y} G_j - theta).

    ``group_goodness`` is ``[b, C]`` (G_j = mean square of class group j's features).
    """
    c = group_goodness.shape[1]
    g_true = group_goodness.gather(1, y.view(-1, 1)).squeeze(1)
    g_wrong = (group_goodness.sum(1) - g_true) / (c - 1)
    return F.softplus(threshold - g_true).mean() + F.softplus(g_wrong - threshold).mean()


class LabelOverlay(nn.Module):
    """Writes labels into full-resolution images: OctopusNet's Fourier patterns (x+ = (1-K) x + K P_y, patterns
    cached on the device) or Hinton's one-hot pixels (A13)."""

    def __init__(self, encoding: str, num_classes: int, height: int, width: int, strength: float = 0.5,
                 label_value: float | None = None) -> None:
        super().__init__()
        check_choice("algorithm.label_encoding", encoding, LABEL_ENCODINGS)
        if not 0 < strength <= 1:
            raise ConfigError(f"algorithm.overlay_strength={strength!r} must be in (0, 1]")
        if encoding == "onehot" and num_classes > height * width:
            raise ConfigError(f"one-hot label encoding needs {num_classes} pixels; images have {height * width}")
        self.encoding, self.num_classes, self.strength, self.label_value = encoding, num_classes, strength, label_value
        pats = fourier_patterns(num_classes, height, width) if encoding == "fourier" else torch.zeros(0)
        self.register_buffer("patterns", pats, persistent=False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if self.encoding == "onehot":
            return onehot_overlay(x, y, self.num_classes, self.label_value)
        k = self.strength
        return (1 - k) * x + k * self.patterns[y].unsqueeze(1).to(x.dtype)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The overlay as a label-free image part ``[B, c, H, W]`` and one additive map per label ``[C, 1 or c, H,
        W]`` (Fourier: one channel, broadcast over the image's), with ``self(x, y) == image + maps[y]`` bit for bit.

        Both encodings are affine in the image with a label term that does not depend on it (one-hot: apart from
        the batch-max label value, a scalar), so linear maps after the overlay can be applied to each part once.
        """
        if self.encoding == "onehot":
            return onehot_split(x, self.num_classes, self.label_value)
        k = self.strength
        return (1 - k) * x, k * self.patterns.unsqueeze(1).to(x.dtype)


def module_dropout_keep(num_arms: int, p: float, device) -> Tensor:
    """``[N]`` keep mask: with probability p one uniformly chosen arm is 0 (drawn on the device, no host sync)."""
    drop = torch.rand((), device=device) < p
    arm = torch.randint(num_arms, (), device=device)
    return 1.0 - (drop & (torch.arange(num_arms, device=device) == arm)).float()


def frozen_call(module: nn.Module, *args):
    """``module(*args)`` with detached parameter copies: gradient flows to the inputs but never to ``module``.

    Copies, not views: with per-block optimisers ``module`` may be stepped (in place) before this loss's
    backward runs, which would invalidate tensors saved for it.
    """
    params = {n: p.detach().clone() for n, p in module.named_parameters()}
    return functional_call(module, params, args)
