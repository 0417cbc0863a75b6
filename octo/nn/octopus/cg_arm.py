"""Channel-grouping arms (the published ``CGCNNModule`` / ``CGCNNModuleA21``) and the A19/A20/A22 variants.

T = C * S channels; the second conv (and every later one) is grouped with C groups, so channel group j belongs to
class j. Goodness of group j = mean square of its channels; the loss pushes the true class's group above theta and
the mean of the other groups below it (no label overlay, no negative images).

Reduction: ``pool`` = AdaptiveAvgPool(P) of the conv block (A18b/A6b); ``stride`` = 2 x [grouped 3x3 stride-2 conv -
BN - ReLU] then AdaptiveAvgPool(P) (A21/A21b). Projection Linear(T*P*P -> B), not normalised, outside the FF loss.
Variants not in the published code (our reading of the paper): ``residual_blocks`` (A19: 2 blocks of grouped 3x3
conv - GroupNorm(C) - ReLU - grouped 3x3 conv - GroupNorm(C), plus identity, then ReLU, after the conv block),
``pool_size`` (A20: 6) and ``goodness_before_pool`` (A22: goodness on the maps before the final adaptive pool).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from octo.utils.errors import check_choice

CG_COMPRESS = ("pool", "stride")


def _conv_bn(c_in: int, c_out: int, k: int, groups: int = 1, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, groups=groups),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=groups), nn.GroupNorm(groups, channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, groups=groups), nn.GroupNorm(groups, channels))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.body(x))


class CGTrunk(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, per_group: int, kernel: int, compress: str,
                 pool_size: int, residual_blocks: int, goodness_before_pool: bool) -> None:
        super().__init__()
        t = num_classes * per_group
        self.block1 = _conv_bn(in_channels, t, kernel)           # ungrouped: shared first-layer maps
        self.block2 = _conv_bn(t, t, kernel, groups=num_classes)
        self.residual = nn.Sequential(*[ResidualBlock(t, num_classes) for _ in range(residual_blocks)])
        self.compress = (nn.Sequential(_conv_bn(t, t, 3, num_classes, 2), _conv_bn(t, t, 3, num_classes, 2))
                         if compress == "stride" else nn.Identity())
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.goodness_before_pool = goodness_before_pool

    def forward(self, x: Tensor, mid_gain: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.block1(x)
        if mid_gain is not None:
            h = h * mid_gain.to(h.dtype).view(-1, h.shape[1], 1, 1)
        h = self.compress(self.residual(self.block2(h)))
        reduced = self.pool(h)
        return (h if self.goodness_before_pool else reduced), reduced


class CGArm(nn.Module):
    kind = "cg"
    loss_kind = "cg"            # class-grouped goodness on clean images
    accepts_input_gain = False  # the published CG arms have no feedback hook (bug 5): a no-op here
    accepts_mid_gain = True
    batch_independent = False   # BatchNorm

    def __init__(self, in_channels: int, num_classes: int, scale: int, kernel: int, bottleneck: int = 64,
                 channels_per_group: int = 16, compress: str = "pool", pool_size: int = 4,
                 residual_blocks: int = 0, goodness_before_pool: bool = False) -> None:
        super().__init__()
        check_choice("model.cg.compress", compress, CG_COMPRESS)
        self.scale, self.kernel = int(scale), int(kernel)
        self.num_classes, self.per_group = int(num_classes), int(channels_per_group)
        t = self.num_classes * self.per_group
        self.trunk = CGTrunk(in_channels, num_classes, channels_per_group, kernel, compress, pool_size,
                             residual_blocks, goodness_before_pool)
        self.bottleneck = nn.Linear(t * pool_size * pool_size, bottleneck)  # "proj": not normalised
        self.pooled_dim = t
        self.mid_channels = t

    def forward_trunk(self, x: Tensor, in_gain: Tensor | None = None,
                      mid_gain: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.trunk(x, mid_gain)

    def goodness(self, t: tuple[Tensor, Tensor]) -> Tensor:
        """``[b, C]``: mean square of each class group's channels over all positions (float32)."""
        g = t[0].float().pow(2).mean(dim=(2, 3))
        return g.view(g.shape[0], self.num_classes, self.per_group).mean(-1)

    def token(self, t: tuple[Tensor, Tensor]) -> Tensor:
        return self.bottleneck(t[1].flatten(1))

    def pooled(self, t: tuple[Tensor, Tensor]) -> Tensor:
        return t[1].mean(dim=(2, 3))
