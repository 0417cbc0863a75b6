"""Small pieces shared by the OctopusNet arms: per-sample LayerNorm, kernel clamp, per-arm scale/kernel lists.

Used by the FF-standard CNN arms and the channel-grouping (CG) arms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from octo.utils.errors import ConfigError, check_int_list

#: the published CG kernel sizes by arm position, cycled for more than 4 arms
CG_KERNELS = (3, 5, 7, 9)


def merged(name: str, defaults: Mapping, given: Mapping | None) -> dict:
    """``defaults`` updated by ``given``; unknown keys are a ConfigError naming the valid ones."""
    given = dict(given or {})
    unknown = set(given) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown {name} keys {sorted(unknown)}; valid: {', '.join(sorted(defaults))}")
    return {**defaults, **given}


def per_sample_layer_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Non-affine layer norm over every non-batch dimension (C, H, W), one mean/variance per sample.

    Written with reductions instead of ``F.layer_norm`` so that it keeps a channels_last layout; statistics are
    computed in float32 (bf16 autocast safe).
    """
    xf = x.float()
    dims = tuple(range(1, x.ndim))
    var, mean = torch.var_mean(xf, dim=dims, keepdim=True, unbiased=False)
    return ((xf - mean) * torch.rsqrt(var + eps)).to(x.dtype)


def l2_normalize(x: Tensor) -> Tensor:
    """Unit length along the last dimension (F.normalize, eps 1e-12)."""
    return F.normalize(x, dim=-1)


def clamp_kernel(k: int, resolution: int) -> int:
    """The published kernel clamp: k, or the largest odd number <= the arm's resolution if k is larger."""
    if k <= resolution:
        return k
    return max(1, resolution if resolution % 2 else resolution - 1)


def default_scales(base: int, n: int) -> list[int]:
    """base, base/2, base/4, max(base/8, 4), cycled for n > 4; no scale below min(4, base)."""
    cycle = [base, base // 2, base // 4, max(base // 8, 4)]
    floor = min(4, base)
    return [max(cycle[i % 4], floor) for i in range(n)]


def _int_list(name: str, values, n: int, minimum: int = 1) -> list[int]:
    if not isinstance(values, (list, tuple)) or len(values) != n:
        raise ConfigError(f"{name}={values!r} must list one value per arm ({n} arms); or null for the defaults")
    return check_int_list(name, values, minimum, length=n)


def resolve_scales(scales, n: int, base: int, multiscale: bool) -> list[int]:
    """Input resolution of each arm (explicit list of length n, or the default rule)."""
    if not multiscale:
        return [base] * n
    if scales is None:
        return default_scales(base, n)
    out = _int_list("model.scales", scales, n)
    if max(out) > base:
        raise ConfigError(f"model.scales={out} go above the input resolution {base}")
    return out


def resolve_kernels(kernel_sizes, arm_types: Sequence[str]) -> list[int]:
    """Kernel of each arm: explicit list, or 3 for CNN arms and [3, 5, 7, 9][position % 4] for CG arms."""
    n = len(arm_types)
    if kernel_sizes is None:
        return [CG_KERNELS[i % 4] if t == "cg" else 3 for i, t in enumerate(arm_types)]
    out = _int_list("model.kernel_sizes", kernel_sizes, n)
    if any(k % 2 == 0 for k in out):
        raise ConfigError(f"model.kernel_sizes={out} must be odd (padding k//2 keeps the resolution)")
    return out


def resize_gain(gain: Tensor, channels: int) -> Tensor:
    """A feedback vector [B] (or [b, B]) stretched to ``channels`` entries by linear interpolation (identity if equal)."""
    if gain.shape[-1] == channels:
        return gain
    g = gain.reshape(-1, 1, gain.shape[-1]).float()
    return F.interpolate(g, size=channels, mode="linear", align_corners=True).reshape(*gain.shape[:-1], channels)


def add_label_part(image_part: Tensor, label_part: Tensor, labels: Tensor) -> Tensor:
    """``image_part[b] + label_part[labels[k, b]]`` for every row k of ``labels`` (``[K, B]``), as ``[K * B, ...]``
    rows, label-major (all of row 0 first), like ``torch.cat`` of the K labelled batches.

    One gather and one in-place add over the K-times larger result: on a CPU this memory-bound pass costs about as
    much as a plain broadcast add, so the same code serves K = 2 (positives, negatives) and K = C (scoring).
    """
    label_part = label_part.expand(-1, *image_part.shape[1:])  # one-channel maps: the same on every channel
    return label_part[labels].add_(image_part).flatten(0, 1)


def labelled_conv(conv: nn.Conv2d, x: Tensor, label_maps: Tensor, labels: Tensor) -> Tensor:
    """``conv(x[b] + label_maps[labels[k, b]])`` for every row k of ``labels`` (``[K, B]``), as ``[K * B, ...]``
    rows, label-major: one convolution per image and one bias-free convolution per label map, where the direct
    path convolves every (image, label) pair.

    Exact up to float rounding: a convolution with zero padding is linear in its input, plus the bias, which the
    image part carries once. ``label_maps`` is ``[C, 1 or c, H, W]`` (one channel = the same map on every channel).
    """
    if conv.padding_mode != "zeros":
        raise ValueError(f"labelled_conv needs zero padding (linear); got padding_mode={conv.padding_mode!r}")
    maps = label_maps.expand(-1, x.shape[1], -1, -1)
    label_part = F.conv2d(maps, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    return add_label_part(conv(x), label_part, labels)


class FeatureMapArm:
    """Mixin for FF arms whose trunk output is a feature map ``[B, C, H, W]`` (the CNN arm, the Transformer's patch
    embedding): goodness = mean square over the map, token = the arm's ``bottleneck``, pooled = global average."""

    def goodness(self, f: Tensor) -> Tensor:
        return f.float().pow(2).mean(dim=(1, 2, 3))

    def token(self, f: Tensor) -> Tensor:
        return self.bottleneck(f)

    def pooled(self, f: Tensor) -> Tensor:
        """Global average pool (the SFF heads' input)."""
        return f.mean(dim=(2, 3))
