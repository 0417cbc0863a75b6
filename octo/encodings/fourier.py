"""OctopusNet's Fourier label patterns.

Class c gets a sinusoidal grating with orientation theta_c = [0, 45, 90, 135] degrees [c mod 4] and frequency
f_c = 1 + c // 4. For c < 12 this is exactly the published table (f in [1, 2, 3]); the published code stops there
(IndexError for CIFAR-100), octo continues the same rule so any number of classes works.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

_ORIENTATIONS_DEG = (0.0, 45.0, 90.0, 135.0)


@lru_cache(maxsize=32)
def _patterns_cpu(num_classes: int, height: int, width: int) -> Tensor:
    # inclusive grid 0 .. 2*pi along each axis, as in the published code
    u = torch.linspace(0, 2 * math.pi, width, dtype=torch.float64)
    v = torch.linspace(0, 2 * math.pi, height, dtype=torch.float64)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    pats = []
    for c in range(num_classes):
        theta = math.radians(_ORIENTATIONS_DEG[c % 4])
        freq = 1 + c // 4
        raw = torch.sin(freq * (uu * math.cos(theta) + vv * math.sin(theta)))
        pats.append((raw - raw.min()) / (raw.max() - raw.min() + 1e-8))
    return torch.stack(pats).float()


def fourier_patterns(num_classes: int, height: int, width: int, device=None) -> Tensor:
    """``[C, H, W]`` patterns in [0, 1]."""
    return _patterns_cpu(num_classes, height, width).to(device)


def fourier_overlay(x: Tensor, y: Tensor, num_classes: int, strength: float = 0.5) -> Tensor:
    """x+ = (1 - K) x + K P_y with P_y broadcast over channels; ``x`` is ``[B, C, H, W]``."""
    pats = fourier_patterns(num_classes, x.shape[-2], x.shape[-1], device=x.device).to(x.dtype)
    return (1 - strength) * x + strength * pats[y].unsqueeze(1)


def downsample(x: Tensor, size: int) -> Tensor:
    """Bilinear resize to ``size x size`` (align_corners=False), a no-op at the input resolution."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
