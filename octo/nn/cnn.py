"""A plain sequential CNN: the backprop "3 conv blocks" baseline of OctopusNet's resilience table.

The published baseline (90.96 % on CIFAR-10, "sequential CNN, 3 conv blocks, trained with backprop") has no code
or architecture in the repository, so this is our reading: VGG-style blocks of ``convs_per_block`` x
[Conv3x3 -> BatchNorm -> ReLU] followed by a 2x2 max-pool, widths 64/128/256, then a global average pool. That
family reaches about 90-91 % on CIFAR-10 with crop + flip in a few tens of epochs.

The blocks are kept in ``self.blocks`` (an ``nn.ModuleList``) so that a block can be failed at test time by
zeroing its output (``octo.evaluation.block_failure``), and the network returns features, not logits, so any
algorithm can put its own head on top (``octo.algorithms.bp.BP`` reads ``out_features``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from octo.utils.errors import ConfigError


def conv_block(c_in: int, c_out: int, convs: int, batch_norm: bool, pool: bool) -> nn.Sequential:
    """``convs`` x [Conv3x3 (pad 1) -> BN -> ReLU] then an optional 2x2 max-pool."""
    layers: list[nn.Module] = []
    for k in range(convs):
        # the conv bias is redundant in front of BatchNorm (its beta does the same job)
        layers += [nn.Conv2d(c_in if k == 0 else c_out, c_out, 3, padding=1, bias=not batch_norm)]
        layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
        layers += [nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    """Sequential CNN returning ``[B, channels[-1]]`` features (global average pool of the last block).

    Args:
        input_shape: ``[C, H, W]`` of one image.
        channels: output width of each block (one block per entry), e.g. ``[64, 128, 256]``.
        convs_per_block: 3x3 convolutions per block.
        batch_norm: BatchNorm after every convolution.
        dropout: dropout on the pooled features (0 = none).
    """

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (64, 128, 256),
                 convs_per_block: int = 2, batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        shape = [int(s) for s in input_shape]
        channels = [int(c) for c in channels]
        if len(shape) != 3:
            raise ConfigError(f"model.input_shape={shape} must be [C, H, W]")
        if not channels or min(channels) < 1:
            raise ConfigError(f"model.channels={channels} must be a non-empty list of positive widths")
        if not isinstance(convs_per_block, int) or convs_per_block < 1:
            raise ConfigError(f"model.convs_per_block={convs_per_block!r} must be an int >= 1")
        if not 0 <= dropout < 1:
            raise ConfigError(f"model.dropout={dropout!r} must be in [0, 1)")
        side, blocks, c_in = min(shape[1:]), [], shape[0]
        for c_out in channels:
            pool = side >= 2  # never pool a 1x1 map away (tiny test images)
            blocks.append(conv_block(c_in, c_out, convs_per_block, batch_norm, pool))
            side, c_in = side // 2 if pool else side, c_out
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.out_features = channels[-1]

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.dropout(x.mean(dim=(2, 3)))
