"""The Transformer and LSTM arms of the heterogeneous configuration (A9).

As published, the FF goodness of the Transformer arm is taken on its patch embeddings (before the encoder), so only
the patch conv learns; the positional embedding, encoder and projection form its "bottleneck" (untrained unless
``train_bottleneck``). The LSTM arm reads each image row as one time step (C*W features), RMS-normalised over the
whole sequence; its goodness is the mean square of the last time step's output (both directions, 2*hidden values).
Neither arm takes feedback (as published).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from octo.nn.octopus.common import FeatureMapArm, add_label_part, l2_normalize, labelled_conv
from octo.utils.errors import ConfigError


class TransformerReadout(nn.Module):
    def __init__(self, num_patches: int, dim: int, layers: int, heads: int, ffn: int, dropout: float,
                 bottleneck: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, num_patches, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, ffn, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.linear = nn.Linear(dim, bottleneck)

    def forward(self, patches: Tensor) -> Tensor:
        z = patches.flatten(2).transpose(1, 2) + self.pos.to(patches.dtype)
        return l2_normalize(self.linear(self.encoder(z).mean(1)))


class TransformerArm(FeatureMapArm, nn.Module):
    kind = "transformer"
    loss_kind = "ff"
    accepts_input_gain = False
    accepts_mid_gain = False
    batch_independent = True

    def __init__(self, in_channels: int, scale: int, bottleneck: int = 64, patch: int = 4, dim: int = 64,
                 layers: int = 2, heads: int = 4, ffn: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        if scale < patch:
            raise ConfigError(f"a transformer arm at {scale}x{scale} cannot cut {patch}x{patch} patches; "
                              f"raise its model.scales entry or lower model.transformer.patch")
        self.scale, self.kernel = int(scale), int(patch)
        self.trunk = nn.Conv2d(in_channels, dim, patch, stride=patch)   # patch embedding: the only FF-trained part
        self.bottleneck = TransformerReadout((scale // patch) ** 2, dim, layers, heads, ffn, dropout, bottleneck)
        self.pooled_dim = dim

    def forward_trunk(self, x: Tensor, in_gain: Tensor | None = None, mid_gain: Tensor | None = None) -> Tensor:
        return self.trunk(x)

    def forward_trunk_labelled(self, x: Tensor, label_maps: Tensor, labels: Tensor, in_gain: Tensor | None = None,
                               mid_gain: Tensor | None = None) -> Tensor:
        """``forward_trunk`` of ``x[b] + label_maps[labels[k, b]]`` for every row k of ``labels`` (``[K, B]``), as
        ``[K * B, ...]`` rows, label-major. The trunk is the patch convolution alone (no padding, linear): one
        convolution per image and one per label map, exact up to float rounding."""
        return labelled_conv(self.trunk, x, label_maps, labels)


class LSTMArm(nn.Module):
    kind = "lstm"
    loss_kind = "ff"
    accepts_input_gain = False
    accepts_mid_gain = False
    batch_independent = True

    def __init__(self, in_channels: int, scale: int, bottleneck: int = 64, hidden: int = 128, layers: int = 2,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.scale, self.kernel, self.eps = int(scale), 0, eps
        self.trunk = nn.LSTM(in_channels * scale, hidden, layers, batch_first=True, bidirectional=True)
        # the published code does not say whether this token is normalised; like the other arms, it is
        self.bottleneck = nn.Linear(2 * hidden, bottleneck)
        self.pooled_dim = 2 * hidden

    def forward_trunk(self, x: Tensor, in_gain: Tensor | None = None, mid_gain: Tensor | None = None) -> Tensor:
        b, c, h, w = x.shape
        seq = x.permute(0, 2, 1, 3).reshape(b, h, c * w)       # one row = one time step
        seq = seq.float()
        seq = seq * seq.pow(2).mean(dim=(1, 2), keepdim=True).add(self.eps).rsqrt()
        # float32 even under autocast: low-precision LSTM kernels are not available everywhere (oneDNN on CPU)
        with torch.autocast(device_type=x.device.type, enabled=False):
            out, _ = self.trunk(seq)
        return out[:, -1]

    def forward_trunk_labelled(self, x: Tensor, label_maps: Tensor, labels: Tensor, in_gain: Tensor | None = None,
                               mid_gain: Tensor | None = None) -> Tensor:
        """``forward_trunk`` of ``x[b] + label_maps[labels[k, b]]`` for every row k of ``labels`` (``[K, B]``), as
        ``[K * B, ...]`` rows, label-major. No saving here: the RMS normalisation of the whole sequence comes
        before the first linear map and depends on the label, and the LSTM kernel takes the sequence itself, so the
        labelled inputs are built (at the arm's small resolution) and run as they are."""
        return self.forward_trunk(add_label_part(x, label_maps, labels))

    def goodness(self, last: Tensor) -> Tensor:
        return last.float().pow(2).mean(dim=1)

    def token(self, last: Tensor) -> Tensor:
        return l2_normalize(self.bottleneck(last))

    def pooled(self, last: Tensor) -> Tensor:
        return last
