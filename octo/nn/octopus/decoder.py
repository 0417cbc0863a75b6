"""The module decoder of the A16 "sleep phase" (``ModuleDecoder`` of the published code).

The published code defines it and never trains or uses it; ``octo.algorithms.octopus.Octopus`` does both behind
``algorithm.sleep_phase`` (off by default).

Architecture as published: Linear(B -> 64*2*2) -> reshape 64x2x2 -> repeated [ConvTranspose(4, stride 2, pad 1) +
ReLU] that halve the channels (never below the output channels) until the map is at least the target size
(2 -> 4 -> 8 -> 16 -> 32; 64 -> 32 -> 16 -> 8 -> 4 channels) -> 1x1 conv to the output channels -> sigmoid, i.e. an
image with pixels in [0, 1]. For a target size that is not 2 * 2^k (e.g. 28, 14, 7 on MNIST) the last map is larger
than the target; it is resized to the target (bilinear, antialiased). The published code says nothing about that
case (it only ran CIFAR-10's 32 / 16 / 8 / 4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ModuleDecoder(nn.Module):
    """Token ``[b, B]`` -> image ``[b, out_channels, size, size]`` in [0, 1]."""

    def __init__(self, dim: int, out_channels: int, size: int, base_channels: int = 64, base_size: int = 2) -> None:
        super().__init__()
        self.size, self.base_channels, self.base_size = int(size), int(base_channels), int(base_size)
        self.linear = nn.Linear(dim, base_channels * base_size * base_size)
        ups, ch, spatial = [], base_channels, base_size
        while spatial < size:
            nxt = max(ch // 2, out_channels)
            ups += [nn.ConvTranspose2d(ch, nxt, 4, stride=2, padding=1), nn.ReLU()]
            ch, spatial = nxt, spatial * 2
        self.ups = nn.Sequential(*ups)
        self.out = nn.Conv2d(ch, out_channels, 1)

    def forward(self, token: Tensor) -> Tensor:
        h = self.linear(token).view(-1, self.base_channels, self.base_size, self.base_size)
        h = torch.sigmoid(self.out(self.ups(h)))
        if h.shape[-1] != self.size:
            h = F.interpolate(h, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return h
