"""The FF-standard arm (``CNNModule`` of the published code).

Trunk (trained by the arm's FF loss): f1 = ReLU(conv1(x)); f2 = ReLU(conv2(LN(f1))); f3 = ReLU(conv3(LN(f2))),
stride 1, padding k//2, no pooling, LN = non-affine per-sample layer norm, Xavier-uniform weights and zero biases.
Goodness = mean of f3^2 over (C, H, W). Bottleneck (outside the FF loss): 2x2 average pool of f3 -> Linear -> unit
length.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from octo.nn.octopus.common import FeatureMapArm, l2_normalize, labelled_conv, per_sample_layer_norm


class CNNTrunk(nn.Module):
    def __init__(self, in_channels: int, channels: Sequence[int], kernel: int) -> None:
        super().__init__()
        dims = [in_channels, *channels]
        self.convs = nn.ModuleList(nn.Conv2d(dims[i], dims[i + 1], kernel, padding=kernel // 2)
                                   for i in range(len(channels)))
        for conv in self.convs:
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor, mid_gain: Tensor | None = None) -> Tensor:
        return self._after_conv1(self.convs[0](x), mid_gain)

    def forward_labelled(self, x: Tensor, label_maps: Tensor, labels: Tensor,
                         mid_gain: Tensor | None = None) -> Tensor:
        """``self(x[b] + label_maps[labels[k, b]])`` for every row k of ``labels`` (``[K, B]``), as ``[K * B, ...]``
        rows, label-major. Exact up to float rounding: nothing stands between the input and conv1, which is
        linear (zero padding) - the per-sample LayerNorm only comes before conv2 - so conv1 runs once per image
        and once per label map (:func:`~octo.nn.octopus.common.labelled_conv`)."""
        return self._after_conv1(labelled_conv(self.convs[0], x, label_maps, labels), mid_gain)

    def _after_conv1(self, h: Tensor, mid_gain: Tensor | None) -> Tensor:
        h = torch.relu(h)
        if mid_gain is not None:
            # paper-style feedback: per-channel gains on the first feature maps
            h = h * mid_gain.to(h.dtype).view(-1, h.shape[1], 1, 1)
        for conv in self.convs[1:]:
            h = torch.relu(conv(per_sample_layer_norm(h)))
        return h


class CNNBottleneck(nn.Module):
    def __init__(self, channels: int, pool: int, size: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.linear = nn.Linear(channels * pool * pool, size)  # default PyTorch init, as published

    def forward(self, f: Tensor) -> Tensor:
        return l2_normalize(self.linear(self.pool(f).flatten(1)))


class CNNArm(FeatureMapArm, nn.Module):
    """One FF-standard arm at input resolution ``scale``; ``kernel`` is already clamped by the caller."""

    kind = "cnn"
    loss_kind = "ff"          # label overlay, positives and negatives
    accepts_input_gain = True  # the as-coded RGB feedback gains
    accepts_mid_gain = True    # the paper's intermediate modulation
    batch_independent = True

    def __init__(self, in_channels: int, scale: int, kernel: int, channels: Sequence[int] = (64, 128, 256),
                 bottleneck: int = 64, bottleneck_pool: int = 2) -> None:
        super().__init__()
        self.scale, self.kernel = int(scale), int(kernel)
        self.trunk = CNNTrunk(in_channels, channels, kernel)
        self.bottleneck = CNNBottleneck(channels[-1], bottleneck_pool, bottleneck)
        self.pooled_dim = channels[-1]
        self.mid_channels = channels[0]

    def forward_trunk(self, x: Tensor, in_gain: Tensor | None = None, mid_gain: Tensor | None = None) -> Tensor:
        if in_gain is not None:
            x = x * in_gain.to(x.dtype).view(1, -1, 1, 1)
        return self.trunk(x, mid_gain)

    def forward_trunk_labelled(self, x: Tensor, label_maps: Tensor, labels: Tensor, in_gain: Tensor | None = None,
                               mid_gain: Tensor | None = None) -> Tensor:
        """``forward_trunk`` of ``x[b] + label_maps[labels[k, b]]`` for every row k of ``labels`` (``[K, B]``), as
        ``[K * B, ...]`` rows, label-major. The input gains scale each channel, a linear map: applied to both parts
        (a one-channel label map becomes c channels here)."""
        if in_gain is not None:
            g = in_gain.to(x.dtype).view(1, -1, 1, 1)
            x, label_maps = x * g, label_maps * g
        return self.trunk.forward_labelled(x, label_maps, labels, mid_gain)
